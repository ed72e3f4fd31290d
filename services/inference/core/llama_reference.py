"""Pure numpy forward pass of a Llama-family decoder (full recompute, no KV cache).

This is the oracle the ONNX graph is tested against. It is written for clarity, follows Hugging
Face's modelling code step by step (including ``repeat_kv``, which the graph avoids), and runs in
float64 by default so that its own rounding is negligible next to the graph's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from services.inference.core.llama_config import LlamaConfig, rope_inv_freq


def reference_forward(
    config: LlamaConfig,
    weights: Mapping[str, np.ndarray],
    input_ids: np.ndarray,
    attention_mask: np.ndarray | None = None,
    position_ids: np.ndarray | None = None,
    *,
    dtype: type[np.floating[Any]] = np.float64,
) -> np.ndarray:
    """Logits for every position of ``input_ids``.

    Args:
        config: architecture hyper-parameters.
        weights: tensors by Hugging Face name (HF ``[out, in]`` layout).
        input_ids: [B, S] token ids.
        attention_mask: [B, S], 1 for real tokens, 0 for padding; all ones when omitted.
        position_ids: [B, S]; ``arange(S)`` per row when omitted.
        dtype: compute precision.

    Returns:
        [B, S, vocab] logits in ``dtype``. Rows at padded positions are finite but meaningless.
    """
    ids = np.asarray(input_ids, dtype=np.int64)
    batch, seq = ids.shape
    mask = np.ones((batch, seq), np.int64) if attention_mask is None else np.asarray(attention_mask)
    pos = np.broadcast_to(np.arange(seq), (batch, seq)) if position_ids is None else np.asarray(position_ids)

    def w(name: str) -> np.ndarray:
        return np.asarray(weights[name], dtype=dtype)

    n_heads, n_kv, d = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    inv_freq = np.array(rope_inv_freq(config), dtype=dtype)
    freqs = pos[..., None].astype(dtype) * inv_freq  # [B, S, D/2]
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb)[:, None], np.sin(emb)[:, None]  # [B, 1, S, D]

    causal = np.tril(np.ones((seq, seq), dtype=bool))
    allowed = causal[None, None] & (mask[:, None, None, :] != 0)  # [B, 1, S, S]
    neg = np.finfo(np.float32).min  # the same finite fill as the graph, so pad rows stay finite

    h = w("model.embed_tokens.weight")[ids]
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        x = _rms_norm(h, w(p + "input_layernorm.weight"), config.rms_norm_eps)
        q = _linear(x, w, p + "self_attn.q_proj", config.attention_bias)
        k = _linear(x, w, p + "self_attn.k_proj", config.attention_bias)
        v = _linear(x, w, p + "self_attn.v_proj", config.attention_bias)
        q = q.reshape(batch, seq, n_heads, d).transpose(0, 2, 1, 3)
        k = k.reshape(batch, seq, n_kv, d).transpose(0, 2, 1, 3)
        v = v.reshape(batch, seq, n_kv, d).transpose(0, 2, 1, 3)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        k, v = _repeat_kv(k, n_heads // n_kv), _repeat_kv(v, n_heads // n_kv)
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
        scores = np.where(allowed, scores, neg)
        scores = scores - scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, n_heads * d)
        h = h + _linear(ctx, w, p + "self_attn.o_proj", config.o_proj_bias)

        x = _rms_norm(h, w(p + "post_attention_layernorm.weight"), config.rms_norm_eps)
        gate = _linear(x, w, p + "mlp.gate_proj", False)
        up = _linear(x, w, p + "mlp.up_proj", False)
        h = h + _linear(gate / (1 + np.exp(-gate)) * up, w, p + "mlp.down_proj", False)

    x = _rms_norm(h, w("model.norm.weight"), config.rms_norm_eps)
    head = w("model.embed_tokens.weight") if config.tie_word_embeddings else w("lm_head.weight")
    logits: np.ndarray = x @ head.T
    return logits


def _rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    variance = np.mean(x * x, axis=-1, keepdims=True)
    out: np.ndarray = weight * (x / np.sqrt(variance + eps))
    return out


def _linear(x: np.ndarray, w: Callable[[str], np.ndarray], prefix: str, bias: bool) -> np.ndarray:
    y: np.ndarray = x @ w(prefix + ".weight").T
    if bias:
        y = y + w(prefix + ".bias")
    return y


def _rotate_half(x: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def _repeat_kv(x: np.ndarray, n_rep: int) -> np.ndarray:
    # HF repeat_kv: KV head j serves query heads j*n_rep .. j*n_rep + n_rep - 1.
    return np.repeat(x, n_rep, axis=1)
