"""The serving graph: a Llama-family decoder on onnxruntime's GroupQueryAttention with a shared KV buffer.

Same weights, RMSNorm, RoPE and SwiGLU as :mod:`llama_graph` (it reuses that builder); the attention
block, the I/O and the layout of the projections differ, because this graph is made for continuous
batching:

inputs
    ``input_ids`` [B, S] int64,
    ``seqlens_k`` [B] int32 (per row: tokens in the cache after this step, minus one),
    ``total_sequence_length`` [] int32 (max over rows of ``seqlens_k + 1``),
    ``past_key_values.{i}.key`` / ``.value`` [B, n_kv_heads, max_seq, head_dim] (model dtype).
outputs
    ``logits`` [B, 1, vocab] float32 — the **last** position only, ``present.{i}.key`` / ``.value``
    with the shape of the past buffers.

Bind the same buffer to ``past_key_values.{i}.*`` and ``present.{i}.*`` (IOBinding): GroupQueryAttention
then writes the new keys/values in place at each row's positions ``seqlens_k - S + 1 .. seqlens_k``,
so rows of different lengths share one batch without padding copies, and nothing is concatenated per
step. Those are also the positions RoPE rotates the new tokens by, so there is no ``position_ids``
input: a call with S > 1 covers one row (a prompt, or a chunk of one on top of a cached prefix); a
call over several rows has S = 1 (a decode step). Logits only for the last position matter at
prefill: with a 49k vocabulary the LM head over a 256-token prompt would cost as much as a third of
the layers.

Per layer, q, k and v come from one MatMul (``self_attn.qkv_proj.weight`` = the three HF matrices
transposed and concatenated, plus ``.bias`` when the model has q/k/v biases) and go to
GroupQueryAttention packed. The softmax scale ``1/sqrt(head_dim)`` is folded into the q part of that
weight (and bias) and the op runs with ``scale=1``: onnxruntime's CPU kernel then computes q.k for a
single query with MLAS's un-packed M=1 routine (see :func:`runner.prefer_gemm_attention`). The op
applies RoPE itself (``do_rotary=1``, non-interleaved as in HF; rotation is linear, so it commutes
with the folded scale) from cos/sin tables for positions ``0 .. total_sequence_length - 1`` that the
graph computes once per call in fp32 (then the model dtype) from the same inverse frequencies as
:mod:`llama_graph`. onnxruntime's rotary needs ``head_dim`` to be a multiple of 16
(:func:`rotary_in_attention`); for other head sizes the graph splits q, k, v and rotates q and k
itself (the same positions, derived from ``seqlens_k``, and the same fp32 tables) before the op. The
MLP keeps separate gate and up MatMuls (one fused MatMul plus the Split it needs measured slower).

Directories built before this layout (a ``position_ids`` input, RoPE always outside the op, separate
q/k/v projections, the scale in the op) still run:
:class:`~services.inference.core.runner.SlotRunner` feeds ``position_ids`` when the graph declares it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import onnx
from onnx import TensorProto, helper

from services.inference.core.llama_config import LlamaConfig, rope_inv_freq
from services.inference.core.llama_graph import (
    _NP_DTYPES,
    IR_VERSION,
    OPSET,
    Dtype,
    _AttentionInputs,
    _check_weights,
    _GraphBuilder,
    past_input_names,
    present_output_names,
)

ATTENTION_KIND: Final = "group_query_attention"
"""Value of ``avatar.attention`` in ``config.json`` for graphs built here."""
GRAPH_REVISION: Final = 2
"""Layout of the graphs built here (1: separate q/k/v projections, RoPE outside the op from a
``position_ids`` input; 2: one q/k/v MatMul with the scale folded in, RoPE in the op). Caches of built
graphs key on it."""
MS_DOMAIN = "com.microsoft"
MS_OPSET = 1


def build_gqa_graph(
    config: LlamaConfig, weights: Mapping[str, np.ndarray], *, dtype: Dtype = "fp32"
) -> onnx.ModelProto:
    """Build the serving graph (see the module docstring for its I/O).

    Args:
        config: architecture hyper-parameters.
        weights: tensors by Hugging Face name, HF layout (as for :func:`llama_graph.build_llama_graph`).
        dtype: ``fp32`` or ``fp16``.

    Returns:
        The model; write it with :func:`llama_graph.save_model`.

    Raises:
        ValueError: a missing or mis-shaped weight, or an unknown dtype.
    """
    if dtype not in _NP_DTYPES:
        raise ValueError(f"unknown dtype {dtype!r} (expected fp32 or fp16)")
    _check_weights(config, weights)
    return _GqaBuilder(config, weights, dtype).build()


def rotary_in_attention(config: LlamaConfig) -> bool:
    """Whether GroupQueryAttention applies RoPE itself (onnxruntime needs ``head_dim % 16 == 0``)."""
    return config.head_dim % 16 == 0


def _unused_attention(g: _GraphBuilder, a: _AttentionInputs) -> str:  # pragma: no cover - never called
    raise AssertionError("the GQA builder emits its own attention")


class _GqaBuilder(_GraphBuilder):
    def __init__(self, config: LlamaConfig, weights: Mapping[str, np.ndarray], dtype: Dtype) -> None:
        super().__init__(config, weights, dtype, _unused_attention)

    def build(self) -> onnx.ModelProto:
        cfg = self.cfg
        n_heads, n_kv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        rotary = rotary_in_attention(cfg)
        if rotary:
            cos_cache, sin_cache = self._rope_caches()
        else:
            cos, sin = self._rope_tables(self._positions())
        # 1/sqrt(head_dim) is folded into the q projection (RoPE is linear, so it commutes) and the op
        # runs with scale 1: onnxruntime's CPU kernel then takes its un-packed GEMV path for decode.
        qkv_scales = [float(1.0 / np.sqrt(d)), 1.0, 1.0]
        hidden = self.op("Gather", self.weight("model.embed_tokens.weight"), "input_ids", axis=0)
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}."
            x = self.rms_norm(hidden, p + "input_layernorm.weight")
            projections = [p + f"self_attn.{name}_proj" for name in ("q", "k", "v")]
            qkv = self.op(
                "MatMul",
                x,
                self.fused_weight(
                    p + "self_attn.qkv_proj.weight",
                    [n + ".weight" for n in projections],
                    transpose=True,
                    scales=qkv_scales,
                ),
            )
            if cfg.attention_bias:
                bias = self.fused_weight(
                    p + "self_attn.qkv_proj.bias", [n + ".bias" for n in projections], scales=qkv_scales
                )
                qkv = self.op("Add", qkv, bias)
            cache = [
                f"past_key_values.{i}.key",
                f"past_key_values.{i}.value",
                "seqlens_k",
                "total_sequence_length",
            ]
            if rotary:
                attention_inputs = [qkv, "", "", *cache, cos_cache, sin_cache]
            else:
                q, k, v = self._split(qkv, [n_heads * d, n_kv * d, n_kv * d])
                attention_inputs = [
                    self._rope(q, n_heads, cos, sin),
                    self._rope(k, n_kv, cos, sin),
                    v,
                    *cache,
                ]
            self._counter += 1
            ctx = f"gqa_{i}"
            self.nodes.append(
                helper.make_node(
                    "GroupQueryAttention",
                    attention_inputs,
                    [ctx, f"present.{i}.key", f"present.{i}.value"],
                    name=f"GroupQueryAttention_{i}",
                    domain=MS_DOMAIN,
                    num_heads=n_heads,
                    kv_num_heads=n_kv,
                    scale=1.0,
                    do_rotary=int(rotary),
                    rotary_interleaved=0,
                )
            )
            hidden = self.op("Add", hidden, self.linear(ctx, p + "self_attn.o_proj", bias=cfg.o_proj_bias))
            x = self.rms_norm(hidden, p + "post_attention_layernorm.weight")
            gate = self.linear(x, p + "mlp.gate_proj", bias=False)
            up = self.linear(x, p + "mlp.up_proj", bias=False)
            act = self.op("Mul", self.op("Mul", gate, self.op("Sigmoid", gate)), up)
            hidden = self.op("Add", hidden, self.linear(act, p + "mlp.down_proj", bias=False))

        # Only the last position feeds the LM head (sampling needs nothing else).
        last = self.op("Slice", hidden, self.i64(-1), self.i64(np.iinfo(np.int64).max), self.i64(1))
        x = self.rms_norm(last, "model.norm.weight")
        if cfg.tie_word_embeddings:
            flat = self.op("Reshape", x, self.i64(-1, cfg.hidden_size))
            scores = self.op("Gemm", flat, "model.embed_tokens.weight", transB=1)
            logits = self.op("Reshape", scores, self.i64(-1, 1, cfg.vocab_size))
        else:
            logits = self.linear(x, "lm_head", bias=False)
        if self.dtype == "fp16":
            logits = self.op("Cast", logits, to=TensorProto.FLOAT)
        self.op("Identity", logits, name="logits")
        return self._model()

    def _split(self, x: str, sizes: list[int]) -> list[str]:
        """Split the last axis of ``x`` into parts of ``sizes``."""
        self._counter += 1
        outputs = [f"split_{self._counter}_{j}" for j in range(len(sizes))]
        self.nodes.append(
            helper.make_node("Split", [x, self.i64(*sizes)], outputs, name=f"Split_{self._counter}", axis=-1)
        )
        return outputs

    def _angles(self, positions: str) -> str:
        """``positions`` (any int shape) times the inverse frequencies, in fp32: shape + [D/2]."""
        inv_freq = np.array(rope_inv_freq(self.cfg), dtype=np.float32)
        pos = self.op("Unsqueeze", self.op("Cast", positions, to=TensorProto.FLOAT), self.i64(-1))
        return self.op("Mul", pos, self.const(inv_freq))

    def _to_model_dtype(self, x: str) -> str:
        return self.op("Cast", x, to=TensorProto.FLOAT16) if self.dtype == "fp16" else x

    def _rope_caches(self) -> tuple[str, str]:
        """GroupQueryAttention's cos/sin caches [total_sequence_length, D/2] (fp32, then the model dtype)."""
        zero, one = self.const(np.array(0, dtype=np.int32)), self.const(np.array(1, dtype=np.int32))
        freqs = self._angles(self.op("Range", zero, "total_sequence_length", one))
        return self._to_model_dtype(self.op("Cos", freqs)), self._to_model_dtype(self.op("Sin", freqs))

    def _positions(self) -> str:
        """[B, S] int64 positions of the new tokens: ``seqlens_k - S + 1 .. seqlens_k`` per row."""
        seq_len = self.op("Shape", "input_ids", start=1, end=2)  # [1]
        first = self.op(
            "Add", self.op("Sub", self.op("Cast", "seqlens_k", to=TensorProto.INT64), seq_len), self.i64(1)
        )
        zero, one = self.const(np.array(0, dtype=np.int64)), self.const(np.array(1, dtype=np.int64))
        steps = self.op("Range", zero, self.op("Squeeze", seq_len, self.i64(0)), one)  # [S]
        return self.op(
            "Add", self.op("Unsqueeze", first, self.i64(1)), self.op("Unsqueeze", steps, self.i64(0))
        )

    def _rope_tables(self, positions: str) -> tuple[str, str]:
        """cos/sin [B, S, 1, D] for ``positions`` [B, S] (fp32 like HF, then the model dtype)."""
        freqs = self._angles(positions)
        emb = self.op("Concat", freqs, freqs, axis=-1)
        cos, sin = self._to_model_dtype(self.op("Cos", emb)), self._to_model_dtype(self.op("Sin", emb))
        return self.op("Unsqueeze", cos, self.i64(2)), self.op("Unsqueeze", sin, self.i64(2))

    def _rope(self, x: str, n_heads: int, cos: str, sin: str) -> str:
        """RoPE on [B, S, n*D] in the [B, S, n, D] view GroupQueryAttention wants (no transposes)."""
        d = self.cfg.head_dim
        half = d // 2
        heads = self.op("Reshape", x, self.i64(0, 0, n_heads, d))
        x1 = self.op("Slice", heads, self.i64(0), self.i64(half), self.i64(-1))
        x2 = self.op("Slice", heads, self.i64(half), self.i64(2 * half), self.i64(-1))
        rotated = self.op("Concat", self.op("Neg", x2), x1, axis=-1)
        out = self.op("Add", self.op("Mul", heads, cos), self.op("Mul", rotated, sin))
        return self.op("Reshape", out, self.i64(0, 0, n_heads * d))

    def _model(self) -> onnx.ModelProto:
        cfg = self.cfg
        kv_shape: list[str | int | None] = [
            "batch_size",
            cfg.num_key_value_heads,
            "max_sequence_length",
            cfg.head_dim,
        ]
        inputs = [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
            helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch_size"]),
            helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
        ]
        inputs += [helper.make_tensor_value_info(n, self.onnx_dtype, kv_shape) for n in past_input_names(cfg)]
        outputs = [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", 1, cfg.vocab_size])
        ]
        outputs += [
            helper.make_tensor_value_info(n, self.onnx_dtype, kv_shape) for n in present_output_names(cfg)
        ]
        graph = helper.make_graph(
            self.nodes, "llama_decoder_gqa", inputs, outputs, initializer=self.initializers
        )
        return helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, MS_OPSET)],
            ir_version=IR_VERSION,
            producer_name="creator-avatar",
            doc_string=f"{cfg.architecture} decoder ({self.dtype}), GroupQueryAttention, shared KV buffer",
        )
