"""The serving graph: a Llama-family decoder on onnxruntime's GroupQueryAttention with a shared KV buffer.

Same weights, RMSNorm, RoPE and SwiGLU as :mod:`llama_graph` (it reuses that builder); only the
attention block and the I/O differ, because this graph is made for continuous batching:

inputs
    ``input_ids`` [B, S] int64, ``position_ids`` [B, S] int64 (absolute positions of the new tokens),
    ``seqlens_k`` [B] int32 (per row: tokens in the cache after this step, minus one),
    ``total_sequence_length`` [] int32 (max over rows of ``seqlens_k + 1``),
    ``past_key_values.{i}.key`` / ``.value`` [B, n_kv_heads, max_seq, head_dim] (model dtype).
outputs
    ``logits`` [B, 1, vocab] float32 — the **last** position only, ``present.{i}.key`` / ``.value``
    with the shape of the past buffers.

Bind the same buffer to ``past_key_values.{i}.*`` and ``present.{i}.*`` (IOBinding): GroupQueryAttention
then writes the new keys/values in place at each row's positions ``seqlens_k - S + 1 .. seqlens_k``,
so rows of different lengths share one batch without padding copies, and nothing is concatenated per
step. Logits only for the last position matter at prefill: with a 49k vocabulary the LM head over a
256-token prompt would cost as much as a third of the layers.
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


def _unused_attention(g: _GraphBuilder, a: _AttentionInputs) -> str:  # pragma: no cover - never called
    raise AssertionError("the GQA builder emits its own attention")


class _GqaBuilder(_GraphBuilder):
    def __init__(self, config: LlamaConfig, weights: Mapping[str, np.ndarray], dtype: Dtype) -> None:
        super().__init__(config, weights, dtype, _unused_attention)

    def build(self) -> onnx.ModelProto:
        cfg = self.cfg
        n_heads, n_kv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        cos, sin = self._rope_tables()
        hidden = self.op("Gather", self.weight("model.embed_tokens.weight"), "input_ids", axis=0)
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}."
            x = self.rms_norm(hidden, p + "input_layernorm.weight")
            q = self.linear(x, p + "self_attn.q_proj", bias=cfg.attention_bias)
            k = self.linear(x, p + "self_attn.k_proj", bias=cfg.attention_bias)
            v = self.linear(x, p + "self_attn.v_proj", bias=cfg.attention_bias)
            q, k = self._rope(q, n_heads, cos, sin), self._rope(k, n_kv, cos, sin)
            self._counter += 1
            ctx = f"gqa_{i}"
            self.nodes.append(
                helper.make_node(
                    "GroupQueryAttention",
                    [
                        q,
                        k,
                        v,
                        f"past_key_values.{i}.key",
                        f"past_key_values.{i}.value",
                        "seqlens_k",
                        "total_sequence_length",
                    ],
                    [ctx, f"present.{i}.key", f"present.{i}.value"],
                    name=f"GroupQueryAttention_{i}",
                    domain=MS_DOMAIN,
                    num_heads=n_heads,
                    kv_num_heads=n_kv,
                    scale=float(1.0 / np.sqrt(d)),
                    do_rotary=0,
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

    def _rope_tables(self) -> tuple[str, str]:
        """cos/sin [B, S, 1, D] for ``position_ids`` (fp32 like HF, then the model dtype)."""
        inv_freq = np.array(rope_inv_freq(self.cfg), dtype=np.float32)
        pos = self.op("Unsqueeze", self.op("Cast", "position_ids", to=TensorProto.FLOAT), self.i64(2))
        freqs = self.op("Mul", pos, self.const(inv_freq))
        emb = self.op("Concat", freqs, freqs, axis=-1)
        cos, sin = self.op("Cos", emb), self.op("Sin", emb)
        if self.dtype == "fp16":
            cos = self.op("Cast", cos, to=TensorProto.FLOAT16)
            sin = self.op("Cast", sin, to=TensorProto.FLOAT16)
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
            helper.make_tensor_value_info(
                "position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]
            ),
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
