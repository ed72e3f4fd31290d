"""Architecture hyper-parameters of a Llama-family decoder (Llama, Qwen2, Mistral).

The three architectures share one computation (RMSNorm, RoPE, grouped-query attention, SwiGLU); they
differ only in which projections carry a bias and in config spelling. ``LlamaConfig`` normalises the
Hugging Face ``config.json`` of each into one frozen value that the graph builder, the numpy reference
and the engine all read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM")
"""``architectures[0]`` values accepted by :meth:`LlamaConfig.from_hf_dict`."""

_MODEL_TYPES = {
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "MistralForCausalLM": "mistral",
}


@dataclass(frozen=True)
class RopeScaling:
    """RoPE frequency scaling (``rope_scaling`` in HF configs).

    Only the schemes that change nothing but the inverse frequencies are supported: ``default``
    (none), ``linear`` (positions divided by ``factor``) and ``llama3`` (Llama 3.1+ wavelength-banded
    scaling). Schemes that also rescale attention (YaRN, LongRoPE) are rejected at load time.
    """

    rope_type: str = "default"
    """One of ``default``, ``linear``, ``llama3``."""
    factor: float = 1.0
    """Scaling factor (``linear`` and ``llama3``)."""
    low_freq_factor: float = 1.0
    """``llama3`` only: wavelengths above ``original_max / low_freq_factor`` are fully scaled."""
    high_freq_factor: float = 4.0
    """``llama3`` only: wavelengths below ``original_max / high_freq_factor`` are left alone."""
    original_max_position_embeddings: int = 8192
    """``llama3`` only: the context length the model was pre-trained at."""

    @classmethod
    def from_hf(cls, raw: Mapping[str, Any] | None) -> RopeScaling:
        """Parse an HF ``rope_scaling`` entry (``None`` means no scaling).

        Raises:
            ValueError: if the scheme is not supported.
        """
        if not raw:
            return cls()
        rope_type = str(raw.get("rope_type", raw.get("type", "default")))
        if rope_type == "default":
            return cls()
        if rope_type == "linear":
            return cls(rope_type="linear", factor=float(raw["factor"]))
        if rope_type == "llama3":
            return cls(
                rope_type="llama3",
                factor=float(raw["factor"]),
                low_freq_factor=float(raw["low_freq_factor"]),
                high_freq_factor=float(raw["high_freq_factor"]),
                original_max_position_embeddings=int(raw["original_max_position_embeddings"]),
            )
        raise ValueError(f"unsupported rope_scaling type {rope_type!r} (supported: default, linear, llama3)")

    def to_hf(self) -> dict[str, Any] | None:
        """The HF ``rope_scaling`` entry, or ``None`` for no scaling."""
        if self.rope_type == "default":
            return None
        if self.rope_type == "linear":
            return {"rope_type": "linear", "factor": self.factor}
        return {
            "rope_type": "llama3",
            "factor": self.factor,
            "low_freq_factor": self.low_freq_factor,
            "high_freq_factor": self.high_freq_factor,
            "original_max_position_embeddings": self.original_max_position_embeddings,
        }


@dataclass(frozen=True)
class LlamaConfig:
    """Hyper-parameters of a Llama-family decoder, normalised across Llama, Qwen2 and Mistral."""

    vocab_size: int
    """Rows of the embedding and of the LM head."""
    hidden_size: int
    """Width of the residual stream."""
    intermediate_size: int
    """Width of the SwiGLU MLP."""
    num_hidden_layers: int
    """Number of decoder layers."""
    num_attention_heads: int
    """Query heads per layer."""
    num_key_value_heads: int
    """Key/value heads per layer (grouped-query attention when fewer than query heads)."""
    head_dim: int
    """Width of one attention head."""
    rms_norm_eps: float = 1e-6
    """Epsilon inside RMSNorm."""
    rope_theta: float = 10000.0
    """RoPE base frequency."""
    max_position_embeddings: int = 2048
    """Longest context the model supports (prompt plus generated tokens)."""
    tie_word_embeddings: bool = False
    """The LM head reuses the token embedding matrix."""
    attention_bias: bool = False
    """q/k/v projections carry a bias (always for Qwen2; Llama's ``attention_bias`` flag)."""
    o_proj_bias: bool = False
    """The output projection carries a bias (Llama with ``attention_bias``; never Qwen2)."""
    bos_token_id: int | None = None
    """Beginning-of-sequence token, if the model has one."""
    eos_token_ids: tuple[int, ...] = ()
    """Tokens that end generation (HF allows one id or a list)."""
    architecture: str = "LlamaForCausalLM"
    """HF ``architectures[0]``; one of :data:`SUPPORTED_ARCHITECTURES`."""
    rope_scaling: RopeScaling = field(default_factory=RopeScaling)
    """RoPE frequency scaling."""
    sliding_window: int | None = None
    """Mistral/Qwen2 sliding-window size; the graph uses full attention, so the usable context is
    capped at this many tokens (inside the window both are identical)."""

    def __post_init__(self) -> None:
        positive = {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even for RoPE, got {self.head_dim}")
        if not (self.rms_norm_eps > 0 and math.isfinite(self.rms_norm_eps)):
            raise ValueError(f"rms_norm_eps must be positive, got {self.rms_norm_eps}")
        if not (self.rope_theta > 0 and math.isfinite(self.rope_theta)):
            raise ValueError(f"rope_theta must be positive, got {self.rope_theta}")
        if self.architecture not in SUPPORTED_ARCHITECTURES:
            supported = ", ".join(SUPPORTED_ARCHITECTURES)
            raise ValueError(f"unsupported architecture {self.architecture!r} (supported: {supported})")
        # Accept lists from callers; a frozen dataclass must hold hashable tuples.
        object.__setattr__(self, "eos_token_ids", tuple(int(t) for t in self.eos_token_ids))

    @property
    def num_key_value_groups(self) -> int:
        """Query heads sharing one key/value head."""
        return self.num_attention_heads // self.num_key_value_heads

    @property
    def max_context(self) -> int:
        """Longest sequence the full-attention graph computes exactly."""
        if self.sliding_window is not None:
            return min(self.max_position_embeddings, self.sliding_window)
        return self.max_position_embeddings

    @classmethod
    def from_hf_dict(cls, raw: Mapping[str, Any]) -> LlamaConfig:
        """Build from a Hugging Face ``config.json`` (already parsed).

        Args:
            raw: the parsed JSON. ``architectures[0]`` selects the family; a missing ``architectures``
                falls back to ``model_type``.

        Returns:
            The normalised config.

        Raises:
            ValueError: for an unsupported architecture, activation, RoPE scaling or missing field.
        """
        architecture = _architecture_of(raw)
        act = raw.get("hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"unsupported hidden_act {act!r}: Llama-family MLPs use silu")
        if raw.get("mlp_bias"):
            raise ValueError("mlp_bias=true is not supported")
        try:
            hidden = int(raw["hidden_size"])
            heads = int(raw["num_attention_heads"])
            kv_heads = int(raw.get("num_key_value_heads") or heads)
            head_dim = int(raw.get("head_dim") or hidden // heads)
            eos = raw.get("eos_token_id")
            eos_ids = (eos,) if isinstance(eos, int) else tuple(eos or ())
            if architecture == "Qwen2ForCausalLM":
                # Qwen2 hard-codes biases on q/k/v and none on o_proj; its config has no flag for it.
                qkv_bias, o_bias = True, False
            else:
                qkv_bias = o_bias = bool(raw.get("attention_bias", False))
            sliding = raw.get("sliding_window")
            if architecture == "Qwen2ForCausalLM" and not raw.get("use_sliding_window", False):
                sliding = None
            return cls(
                vocab_size=int(raw["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(raw["intermediate_size"]),
                num_hidden_layers=int(raw["num_hidden_layers"]),
                num_attention_heads=heads,
                num_key_value_heads=kv_heads,
                head_dim=head_dim,
                rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
                rope_theta=float(raw.get("rope_theta", 10000.0)),
                max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
                tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
                attention_bias=qkv_bias,
                o_proj_bias=o_bias,
                bos_token_id=None if raw.get("bos_token_id") is None else int(raw["bos_token_id"]),
                eos_token_ids=tuple(int(t) for t in eos_ids),
                architecture=architecture,
                rope_scaling=RopeScaling.from_hf(raw.get("rope_scaling")),
                sliding_window=None if sliding is None else int(sliding),
            )
        except KeyError as exc:
            raise ValueError(f"config.json is missing required field {exc.args[0]!r}") from exc

    def to_dict(self) -> dict[str, Any]:
        """An HF-compatible ``config.json`` body; ``from_hf_dict(to_dict())`` round-trips."""
        out: dict[str, Any] = {
            "architectures": [self.architecture],
            "model_type": _MODEL_TYPES[self.architecture],
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": self.rope_scaling.to_hf(),
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": list(self.eos_token_ids),
            "sliding_window": self.sliding_window,
        }
        if self.architecture == "Qwen2ForCausalLM":
            out["use_sliding_window"] = self.sliding_window is not None
        else:
            out["attention_bias"] = self.attention_bias
        return out


def _architecture_of(raw: Mapping[str, Any]) -> str:
    archs = raw.get("architectures") or []
    if archs:
        arch = str(archs[0])
    else:
        by_type = {v: k for k, v in _MODEL_TYPES.items()}
        arch = by_type.get(str(raw.get("model_type", "")), str(raw.get("model_type", "<missing>")))
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"unsupported architecture {arch!r} (supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    return arch


def rope_inv_freq(config: LlamaConfig) -> list[float]:
    """RoPE inverse frequencies (length ``head_dim // 2``), scaling applied, as HF computes them.

    Shared by the ONNX graph and the numpy reference so both rotate by exactly the same angles.
    """
    dim = config.head_dim
    base = [1.0 / (config.rope_theta ** (i / dim)) for i in range(0, dim, 2)]
    scaling = config.rope_scaling
    if scaling.rope_type == "linear":
        return [f / scaling.factor for f in base]
    if scaling.rope_type == "llama3":
        low_wavelen = scaling.original_max_position_embeddings / scaling.low_freq_factor
        high_wavelen = scaling.original_max_position_embeddings / scaling.high_freq_factor
        out = []
        for f in base:
            wavelen = 2 * math.pi / f
            if wavelen < high_wavelen:
                out.append(f)
            elif wavelen > low_wavelen:
                out.append(f / scaling.factor)
            else:
                smooth = (scaling.original_max_position_embeddings / wavelen - scaling.low_freq_factor) / (
                    scaling.high_freq_factor - scaling.low_freq_factor
                )
                out.append((1 - smooth) * f / scaling.factor + smooth * f)
        return out
    return base


def weight_shapes(config: LlamaConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor the decoder needs, by Hugging Face name, with its HF (``[out, in]``) shape.

    ``lm_head.weight`` is absent when the embeddings are tied: the head reuses
    ``model.embed_tokens.weight``.
    """
    h, d = config.hidden_size, config.head_dim
    q_out, kv_out = config.num_attention_heads * d, config.num_key_value_heads * d
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (config.vocab_size, h)}
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (h,)
        shapes[p + "self_attn.q_proj.weight"] = (q_out, h)
        shapes[p + "self_attn.k_proj.weight"] = (kv_out, h)
        shapes[p + "self_attn.v_proj.weight"] = (kv_out, h)
        shapes[p + "self_attn.o_proj.weight"] = (h, q_out)
        if config.attention_bias:
            shapes[p + "self_attn.q_proj.bias"] = (q_out,)
            shapes[p + "self_attn.k_proj.bias"] = (kv_out,)
            shapes[p + "self_attn.v_proj.bias"] = (kv_out,)
        if config.o_proj_bias:
            shapes[p + "self_attn.o_proj.bias"] = (h,)
        shapes[p + "post_attention_layernorm.weight"] = (h,)
        shapes[p + "mlp.gate_proj.weight"] = (config.intermediate_size, h)
        shapes[p + "mlp.up_proj.weight"] = (config.intermediate_size, h)
        shapes[p + "mlp.down_proj.weight"] = (h, config.intermediate_size)
    shapes["model.norm.weight"] = (h,)
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (config.vocab_size, h)
    return shapes
