"""Build a Llama-family decoder as an ONNX graph from numpy weights.

The graph has optimum's ``text-generation-with-past`` interface, so a plain decode loop (feed the
``present.*`` outputs back as ``past_key_values.*``) and left-padded batches work unchanged:

inputs
    ``input_ids`` [B, S] int64, ``attention_mask`` [B, P+S] int64, ``position_ids`` [B, S] int64,
    ``past_key_values.{i}.key`` / ``.value`` [B, n_kv_heads, P, head_dim] (model dtype).
outputs
    ``logits`` [B, S, vocab] float32 (always), ``present.{i}.key`` / ``.value``
    [B, n_kv_heads, P+S, head_dim] (model dtype).

Only standard ONNX ops (opset :data:`OPSET`) are used. The attention block is chosen through the
``attention`` argument so that an onnxruntime ``GroupQueryAttention`` (com.microsoft) variant can be
added later without touching the rest of the builder; that variant also changes the I/O (shared
past/present buffer, ``seqlens_k``), which is why it is a named kind and not a silent swap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from services.inference.core.llama_config import LlamaConfig, rope_inv_freq, weight_shapes

OPSET = 17
"""Default-domain opset of the generated graph."""
IR_VERSION = 8
"""ONNX IR version; pinned because onnx 1.23 defaults to IR 14, newer than onnxruntime 1.31 reads."""
MODEL_FILE = "model.onnx"
"""File name of the graph inside a model directory."""
EXTERNAL_DATA_FILE = "model.onnx.data"
"""File name of the weights when they are stored outside the graph."""
EXTERNAL_DATA_THRESHOLD_BYTES = 64 * 1024 * 1024
"""Weights above this total size go to :data:`EXTERNAL_DATA_FILE` (protobuf caps one file at 2 GiB)."""

Dtype = Literal["fp32", "fp16"]
"""Storage and compute precision of a built graph."""
AttentionKind = Literal["standard", "group_query_attention"]
"""Attention implementations the builder knows about (only ``standard`` is implemented)."""

_NP_DTYPES: dict[str, type[np.floating[Any]]] = {"fp32": np.float32, "fp16": np.float16}
_ONNX_DTYPES = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16}


def numpy_dtype(dtype: Dtype) -> type[np.floating[Any]]:
    """The numpy scalar type of a graph dtype name."""
    return _NP_DTYPES[dtype]


def past_input_names(config: LlamaConfig) -> list[str]:
    """Names of the past key/value inputs, in graph order (key then value, per layer)."""
    return [f"past_key_values.{i}.{kv}" for i in range(config.num_hidden_layers) for kv in ("key", "value")]


def present_output_names(config: LlamaConfig) -> list[str]:
    """Names of the present key/value outputs, in graph order (key then value, per layer)."""
    return [f"present.{i}.{kv}" for i in range(config.num_hidden_layers) for kv in ("key", "value")]


def build_llama_graph(
    config: LlamaConfig,
    weights: Mapping[str, np.ndarray],
    *,
    dtype: Dtype = "fp32",
    attention: AttentionKind = "standard",
) -> onnx.ModelProto:
    """Build the decoder graph with the weights embedded as initializers.

    Args:
        config: architecture hyper-parameters.
        weights: tensors by Hugging Face name in HF layout (``[out, in]`` for projections); any float
            dtype, converted to ``dtype``. Extra tensors are ignored. With tied embeddings
            ``lm_head.weight`` is not needed (and ignored if present).
        dtype: ``fp32``, or ``fp16`` (fp16 weights, activations and KV cache; RMSNorm statistics and
            the attention softmax run in fp32 as in HF; logits are cast to fp32).
        attention: attention implementation; only ``standard`` (opset ops) exists today.

    Returns:
        A checked-in-memory ``ModelProto``; pass it to :func:`save_model`.

    Raises:
        ValueError: for a missing or mis-shaped weight, non-finite weights after the dtype cast, or an
            unknown dtype/attention kind.
        NotImplementedError: for ``attention="group_query_attention"``.
    """
    if dtype not in _NP_DTYPES:
        raise ValueError(f"unknown dtype {dtype!r} (expected fp32 or fp16)")
    builder = _ATTENTION_BUILDERS.get(attention)
    if builder is None:
        if attention == "group_query_attention":
            raise NotImplementedError("the GroupQueryAttention graph variant is not implemented yet")
        raise ValueError(f"unknown attention kind {attention!r}")
    _check_weights(config, weights)
    return _GraphBuilder(config, weights, dtype, builder).build()


def save_model(
    model: onnx.ModelProto,
    out_dir: str | Path,
    *,
    external_data: bool | None = None,
) -> Path:
    """Write ``model.onnx`` (plus ``model.onnx.data`` for external weights) into ``out_dir``.

    Args:
        model: a graph from :func:`build_llama_graph`. Saving with external data moves the tensor
            bytes out of this proto, so do not reuse it afterwards.
        out_dir: target directory (created if needed).
        external_data: force weights in or out of the graph file; ``None`` decides by size
            (:data:`EXTERNAL_DATA_THRESHOLD_BYTES`).

    Returns:
        Path of the written ``model.onnx``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / MODEL_FILE
    data_path = out / EXTERNAL_DATA_FILE
    if data_path.exists():
        # onnx appends to an existing data file, which would corrupt the offsets of a rebuild.
        data_path.unlink()
    if external_data is None:
        total = sum(len(t.raw_data) for t in model.graph.initializer)
        external_data = total > EXTERNAL_DATA_THRESHOLD_BYTES
    if external_data:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=EXTERNAL_DATA_FILE,
            size_threshold=1024,
        )
    else:
        onnx.save_model(model, str(path))
    # Checking by path works for external data and for models beyond protobuf's 2 GiB limit.
    onnx.checker.check_model(str(path))
    return path


def _check_weights(config: LlamaConfig, weights: Mapping[str, np.ndarray]) -> None:
    for name, shape in weight_shapes(config).items():
        if name not in weights:
            raise ValueError(f"missing weight {name!r}")
        actual = tuple(weights[name].shape)
        if actual != shape:
            raise ValueError(f"weight {name!r} has shape {actual}, expected {shape}")


@dataclass(frozen=True)
class _AttentionInputs:
    """What an attention implementation gets for one layer (all names of graph values)."""

    layer: int
    q: str  # [B, n_heads, S, D], RoPE applied
    k: str  # [B, n_kv, S, D], RoPE applied
    v: str  # [B, n_kv, S, D]
    allowed: str  # bool [B, 1, 1, S, P+S]: may query s attend to key t


_AttentionBuilder = Callable[["_GraphBuilder", _AttentionInputs], str]
"""Emits one layer's attention; returns the context value [B, S, n_heads * D]."""


class _GraphBuilder:
    """Accumulates nodes and initializers; one instance builds one graph."""

    def __init__(
        self,
        config: LlamaConfig,
        weights: Mapping[str, np.ndarray],
        dtype: Dtype,
        attention: _AttentionBuilder,
    ) -> None:
        self.cfg = config
        self.weights = weights
        self.dtype = dtype
        self.np_dtype = _NP_DTYPES[dtype]
        self.onnx_dtype = _ONNX_DTYPES[dtype]
        self.attention = attention
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._counter = 0
        self._consts: dict[tuple[str, bytes, tuple[int, ...]], str] = {}

    # -- primitives -------------------------------------------------------------------------------

    def op(self, op_type: str, *inputs: str, name: str | None = None, **attrs: Any) -> str:
        """Append a single-output node and return its output name."""
        self._counter += 1
        out = name or f"{op_type.lower()}_{self._counter}"
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [out], name=f"{op_type}_{self._counter}", **attrs)
        )
        return out

    def const(self, value: np.ndarray) -> str:
        """A small constant initializer, de-duplicated by value."""
        key = (value.dtype.str, value.tobytes(), value.shape)
        if key not in self._consts:
            name = f"const_{len(self._consts)}"
            self.initializers.append(numpy_helper.from_array(value, name))
            self._consts[key] = name
        return self._consts[key]

    def i64(self, *values: int) -> str:
        return self.const(np.array(values, dtype=np.int64))

    def weight(self, hf_name: str, *, transpose: bool = False) -> str:
        """Register an HF tensor as an initializer in the model dtype (optionally ``[in, out]``)."""
        arr = np.asarray(self.weights[hf_name])
        return self._initializer(hf_name, arr.T if transpose else arr, hf_name)

    def fused_weight(
        self,
        name: str,
        hf_names: list[str],
        *,
        transpose: bool = False,
        scales: list[float] | None = None,
    ) -> str:
        """Register HF tensors concatenated along their output axis as one initializer ``name``.

        With ``transpose`` each ``[out_i, in]`` matrix becomes ``[in, out_i]`` and the result is
        ``[in, sum(out_i)]``, so one MatMul computes every projection; 1-D tensors (biases) are
        simply concatenated. ``scales`` multiplies each part (in fp32, before the dtype cast).
        """
        parts = [np.asarray(self.weights[n], dtype=np.float32) for n in hf_names]
        if scales is not None:
            parts = [part * np.float32(s) for part, s in zip(parts, scales, strict=True)]
        arr = np.concatenate([p.T for p in parts] if transpose else parts, axis=-1)
        return self._initializer(name, arr, " + ".join(hf_names))

    def _initializer(self, name: str, arr: np.ndarray, source: str) -> str:
        with np.errstate(over="ignore"):  # overflow is reported below, with the tensor's name
            arr = np.ascontiguousarray(arr, dtype=self.np_dtype)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"weight {source!r} is not finite in {self.dtype} (overflow on conversion?)")
        self.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def linear(self, x: str, prefix: str, *, bias: bool) -> str:
        # HF stores [out, in]; pre-transposing at build time lets a plain MatMul do x @ W.
        y = self.op("MatMul", x, self.weight(prefix + ".weight", transpose=True))
        if bias:
            y = self.op("Add", y, self.weight(prefix + ".bias"))
        return y

    def rms_norm(self, x: str, weight_name: str) -> str:
        # The Pow/ReduceMean/Add/Sqrt/Div/Mul spelling is what onnxruntime fuses into
        # SimplifiedLayerNormalization. fp16 statistics overflow easily, so (as HF does) they are
        # computed in fp32 and the normalised value is cast back before the weight multiply.
        xf = self.op("Cast", x, to=TensorProto.FLOAT) if self.dtype == "fp16" else x
        sq = self.op("Pow", xf, self.const(np.array(2.0, dtype=np.float32)))
        var = self.op("ReduceMean", sq, axes=[-1], keepdims=1)
        std = self.op(
            "Sqrt", self.op("Add", var, self.const(np.array(self.cfg.rms_norm_eps, dtype=np.float32)))
        )
        y = self.op("Div", xf, std)
        if self.dtype == "fp16":
            y = self.op("Cast", y, to=TensorProto.FLOAT16)
        return self.op("Mul", y, self.weight(weight_name))

    # -- graph ------------------------------------------------------------------------------------

    def build(self) -> onnx.ModelProto:
        cfg = self.cfg
        n_kv = cfg.num_key_value_heads

        # Lengths: S new tokens, P past tokens, T = P + S total (attention_mask covers all T).
        seq_len = self.op("Squeeze", self.op("Shape", "input_ids", start=1, end=2), self.i64(0))
        total_len = self.op("Squeeze", self.op("Shape", "attention_mask", start=1, end=2), self.i64(0))
        past_len = self.op("Sub", total_len, seq_len)
        zero, one = self.const(np.array(0, dtype=np.int64)), self.const(np.array(1, dtype=np.int64))
        key_pos = self.op("Range", zero, total_len, one)  # [T]
        query_pos = self.op("Range", past_len, total_len, one)  # [S], absolute positions of new tokens
        causal = self.op(
            "LessOrEqual",
            self.op("Unsqueeze", key_pos, self.i64(0)),
            self.op("Unsqueeze", query_pos, self.i64(1)),
        )  # [S, T]
        not_pad = self.op(
            "Unsqueeze", self.op("Cast", "attention_mask", to=TensorProto.BOOL), self.i64(1, 2, 3)
        )
        allowed = self.op("And", causal, not_pad)  # [B, 1, 1, S, T]

        cos, sin = self.rope_tables()

        hidden = self.op("Gather", self.weight("model.embed_tokens.weight"), "input_ids", axis=0)
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}."
            x = self.rms_norm(hidden, p + "input_layernorm.weight")
            q = self.heads(
                self.linear(x, p + "self_attn.q_proj", bias=cfg.attention_bias), cfg.num_attention_heads
            )
            k = self.heads(self.linear(x, p + "self_attn.k_proj", bias=cfg.attention_bias), n_kv)
            v = self.heads(self.linear(x, p + "self_attn.v_proj", bias=cfg.attention_bias), n_kv)
            q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
            ctx = self.attention(self, _AttentionInputs(layer=i, q=q, k=k, v=v, allowed=allowed))
            hidden = self.op("Add", hidden, self.linear(ctx, p + "self_attn.o_proj", bias=cfg.o_proj_bias))

            x = self.rms_norm(hidden, p + "post_attention_layernorm.weight")
            gate = self.linear(x, p + "mlp.gate_proj", bias=False)
            up = self.linear(x, p + "mlp.up_proj", bias=False)
            act = self.op("Mul", self.op("Mul", gate, self.op("Sigmoid", gate)), up)  # SwiGLU: silu(g) * u
            hidden = self.op("Add", hidden, self.linear(act, p + "mlp.down_proj", bias=False))

        x = self.rms_norm(hidden, "model.norm.weight")
        logits = self.lm_head(x)
        if self.dtype == "fp16":
            logits = self.op("Cast", logits, to=TensorProto.FLOAT)
        self.op("Identity", logits, name="logits")
        return self.model()

    def heads(self, x: str, n_heads: int) -> str:
        """[B, S, n*D] -> [B, n, S, D]."""
        shaped = self.op("Reshape", x, self.i64(0, 0, n_heads, self.cfg.head_dim))
        return self.op("Transpose", shaped, perm=[0, 2, 1, 3])

    def rope_tables(self) -> tuple[str, str]:
        """cos/sin [B, 1, S, D] for ``position_ids``, computed in fp32 like HF, then cast."""
        inv_freq = np.array(rope_inv_freq(self.cfg), dtype=np.float32)
        pos = self.op("Unsqueeze", self.op("Cast", "position_ids", to=TensorProto.FLOAT), self.i64(2))
        freqs = self.op("Mul", pos, self.const(inv_freq))  # [B, S, D/2]
        emb = self.op("Concat", freqs, freqs, axis=-1)
        cos, sin = self.op("Cos", emb), self.op("Sin", emb)
        if self.dtype == "fp16":
            cos = self.op("Cast", cos, to=TensorProto.FLOAT16)
            sin = self.op("Cast", sin, to=TensorProto.FLOAT16)
        return self.op("Unsqueeze", cos, self.i64(1)), self.op("Unsqueeze", sin, self.i64(1))

    def rope(self, x: str, cos: str, sin: str) -> str:
        """HF ``apply_rotary_pos_emb``: x * cos + rotate_half(x) * sin, rotate_half = [-x2, x1]."""
        half = self.cfg.head_dim // 2
        x1 = self.op("Slice", x, self.i64(0), self.i64(half), self.i64(-1))
        x2 = self.op("Slice", x, self.i64(half), self.i64(2 * half), self.i64(-1))
        rotated = self.op("Concat", self.op("Neg", x2), x1, axis=-1)
        return self.op("Add", self.op("Mul", x, cos), self.op("Mul", rotated, sin))

    def lm_head(self, x: str) -> str:
        cfg = self.cfg
        if not cfg.tie_word_embeddings:
            return self.linear(x, "lm_head", bias=False)
        # Tied: Gemm(transB=1) reads the [V, H] embedding as is, so the largest matrix of a small
        # model is stored once instead of once per orientation. Gemm wants 2-D operands.
        flat = self.op("Reshape", x, self.i64(-1, cfg.hidden_size))
        scores = self.op("Gemm", flat, "model.embed_tokens.weight", transB=1)
        out_shape = self.op("Concat", self.op("Shape", "input_ids"), self.i64(cfg.vocab_size), axis=0)
        return self.op("Reshape", scores, out_shape)

    def model(self) -> onnx.ModelProto:
        cfg = self.cfg
        past_shape: list[str | int | None] = [
            "batch_size",
            cfg.num_key_value_heads,
            "past_sequence_length",
            cfg.head_dim,
        ]
        present_shape: list[str | int | None] = [
            "batch_size",
            cfg.num_key_value_heads,
            "total_sequence_length",
            cfg.head_dim,
        ]
        inputs = [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
            helper.make_tensor_value_info(
                "attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]
            ),
            helper.make_tensor_value_info(
                "position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]
            ),
        ]
        inputs += [
            helper.make_tensor_value_info(n, self.onnx_dtype, past_shape) for n in past_input_names(cfg)
        ]
        outputs = [
            helper.make_tensor_value_info(
                "logits", TensorProto.FLOAT, ["batch_size", "sequence_length", cfg.vocab_size]
            )
        ]
        outputs += [
            helper.make_tensor_value_info(n, self.onnx_dtype, present_shape)
            for n in present_output_names(cfg)
        ]
        graph = helper.make_graph(self.nodes, "llama_decoder", inputs, outputs, initializer=self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="creator-avatar",
            doc_string=f"{cfg.architecture} decoder ({self.dtype}), text-generation-with-past I/O",
        )
        return model


def _standard_attention(g: _GraphBuilder, a: _AttentionInputs) -> str:
    """Causal + padding-masked attention with opset ops, writing ``present.{i}.*``.

    Grouped-query attention without materialising repeated KV heads: HF's ``repeat_kv`` maps query
    head ``h`` to KV head ``h // n_rep``, so viewing queries as [B, n_kv, n_rep, S, D] and letting
    MatMul broadcast the [B, n_kv, 1, T, D] cache gives the same result as repeating the cache.
    """
    cfg = g.cfg
    n_kv, n_rep, d = cfg.num_key_value_heads, cfg.num_key_value_groups, cfg.head_dim
    key = g.op("Concat", f"past_key_values.{a.layer}.key", a.k, axis=2, name=f"present.{a.layer}.key")
    value = g.op("Concat", f"past_key_values.{a.layer}.value", a.v, axis=2, name=f"present.{a.layer}.value")

    scale = g.const(np.array(1.0 / math.sqrt(d), dtype=g.np_dtype))
    q = g.op("Reshape", g.op("Mul", a.q, scale), g.i64(0, n_kv, n_rep, -1, d))  # [B, kv, rep, S, D]
    k_t = g.op("Transpose", g.op("Unsqueeze", key, g.i64(2)), perm=[0, 1, 2, 4, 3])  # [B, kv, 1, D, T]
    scores = g.op("MatMul", q, k_t)  # [B, kv, rep, S, T]
    if g.dtype == "fp16":
        scores = g.op("Cast", scores, to=TensorProto.FLOAT)  # HF runs the softmax in fp32
    # Replace (not add) masked scores with a finite minimum: a fully masked row (a pad query) then
    # gets a uniform, finite distribution instead of NaN, which would otherwise leak into the pad
    # positions' keys/values and from there into every real row through 0 * NaN.
    masked = g.op("Where", a.allowed, scores, g.const(np.array(np.finfo(np.float32).min, dtype=np.float32)))
    probs = g.op("Softmax", masked, axis=-1)
    if g.dtype == "fp16":
        probs = g.op("Cast", probs, to=TensorProto.FLOAT16)
    ctx = g.op("MatMul", probs, g.op("Unsqueeze", value, g.i64(2)))  # [B, kv, rep, S, D]
    ctx = g.op("Transpose", g.op("Reshape", ctx, g.i64(0, cfg.num_attention_heads, -1, d)), perm=[0, 2, 1, 3])
    return g.op("Reshape", ctx, g.i64(0, 0, cfg.num_attention_heads * d))


_ATTENTION_BUILDERS: dict[str, _AttentionBuilder] = {"standard": _standard_attention}
