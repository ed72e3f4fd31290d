"""Build an ONNX graph of a BERT sentence encoder (all-MiniLM-L6-v2 shapes) from safetensors weights.

The graph is written with plain ``onnx.helper`` and standard ONNX ops only (opset 17), so it needs
neither torch nor an exporter at build time and runs on any ONNX Runtime execution provider. It contains
the whole sentence-transformers pipeline after tokenisation:

    input_ids, attention_mask [B, S] int64
      -> embeddings (word + position + token type 0) -> LayerNorm
      -> N x (multi-head self-attention -> Add & LayerNorm -> GELU FFN -> Add & LayerNorm)
      -> masked mean pooling -> L2 normalisation
      -> sentence_embedding [B, hidden] float32

so one ``InferenceSession.run`` returns unit vectors. GELU is the exact erf form (BERT's ``"gelu"``);
ONNX Runtime's graph optimiser fuses the Erf pattern and its bias Add into one BiasGelu kernel and
LayerNormalization is a native op, so writing plain ops costs little at run time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
"""ONNX opset of the generated graph: the first with LayerNormalization as a standard op."""

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
OUTPUT_NAME = "sentence_embedding"

# Added to attention scores of padding keys. Large enough that exp() underflows to exactly 0 in fp32,
# small enough that score + bias never overflows to -inf (finfo.min would, and -inf - -inf is NaN
# inside Softmax's max-subtraction on some kernels).
_MASK_NEG = -1.0e9
# torch.nn.functional.normalize's default eps, which sentence-transformers' Normalize module uses.
_NORM_EPS = 1.0e-12
# sentence-transformers' mean pooling clamps the token count at this value.
_COUNT_EPS = 1.0e-9

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class BertConfig:
    """The subset of a Hugging Face ``config.json`` for ``BertModel`` that shapes the graph."""

    vocab_size: int
    """Rows of the word-embedding table."""
    hidden_size: int
    """Width of the residual stream and of the sentence embedding."""
    num_hidden_layers: int
    """Number of transformer blocks."""
    num_attention_heads: int
    """Attention heads per block; must divide ``hidden_size``."""
    intermediate_size: int
    """Width of the feed-forward inner layer."""
    max_position_embeddings: int
    """Rows of the absolute position-embedding table (upper bound on sequence length)."""
    type_vocab_size: int
    """Rows of the token-type table."""
    layer_norm_eps: float
    """Epsilon of every LayerNorm."""

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BertConfig:
        """Read the fields from a parsed ``config.json``.

        Args:
            raw: The parsed JSON object.

        Returns:
            The config.

        Raises:
            ValueError: If the model is not an absolute-position BERT with exact GELU, or the head count
                does not divide the hidden size.
        """
        if raw.get("model_type", "bert") != "bert":
            raise ValueError(f"expected a BERT config, got model_type={raw.get('model_type')!r}")
        if raw.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"only exact erf GELU is supported, got hidden_act={raw.get('hidden_act')!r}")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are supported")
        cfg = cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            num_attention_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            max_position_embeddings=int(raw["max_position_embeddings"]),
            type_vocab_size=int(raw.get("type_vocab_size", 2)),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
        )
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ValueError("num_attention_heads must divide hidden_size")
        return cfg

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        """Read a Hugging Face ``config.json``.

        Args:
            path: Path to the file.

        Returns:
            The config.
        """
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


class _GraphBuilder:
    """Accumulates nodes and initializers, handing out unique tensor names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def const(self, name: str, value: npt.ArrayLike, dtype: type[np.generic] = np.float32) -> str:
        array = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attrs: Any) -> str:
        self._count += 1
        out = name or f"{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"n{self._count}_{op_type}", **attrs))
        return out

    def linear(self, x: str, weight: FloatArray, bias: FloatArray, prefix: str) -> str:
        # Torch stores Linear weights as [out, in]; transpose once here so the run-time op is a plain
        # MatMul against [in, out] with no Transpose node.
        w = self.const(f"{prefix}.weight_t", weight.T)
        b = self.const(f"{prefix}.bias", bias)
        return self.op("Add", [self.op("MatMul", [x, w]), b])

    def layer_norm(self, x: str, weights: dict[str, FloatArray], prefix: str, eps: float) -> str:
        scale = self.const(f"{prefix}.weight", weights[f"{prefix}.weight"])
        bias = self.const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return self.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=eps)


def _attention(
    g: _GraphBuilder, x: str, mask_bias: str, w: dict[str, FloatArray], prefix: str, cfg: BertConfig
) -> str:
    heads, head_dim = cfg.num_attention_heads, cfg.head_dim
    scale = 1.0 / math.sqrt(head_dim)
    # One [hidden, 3*hidden] MatMul instead of three: fewer kernel launches and one pass over x.
    # The 1/sqrt(d) score scale is folded into the query weights, which saves a Mul over [B,H,S,S].
    qkv_w = np.concatenate(
        [w[f"{prefix}.query.weight"] * scale, w[f"{prefix}.key.weight"], w[f"{prefix}.value.weight"]]
    )
    qkv_b = np.concatenate(
        [w[f"{prefix}.query.bias"] * scale, w[f"{prefix}.key.bias"], w[f"{prefix}.value.bias"]]
    )
    qkv = g.linear(x, qkv_w, qkv_b, f"{prefix}.qkv")
    split = g.const(f"{prefix}.qkv_split", [cfg.hidden_size] * 3, np.int64)
    q, k, v = (f"{prefix}.{n}" for n in ("q", "k", "v"))
    g.nodes.append(helper.make_node("Split", [qkv, split], [q, k, v], name=f"{prefix}.split", axis=-1))

    # [B, S, hidden] -> [B, S, H, D]; the 0s copy B and S from the input so shapes stay dynamic.
    head_shape = g.const(f"{prefix}.head_shape", [0, 0, heads, head_dim], np.int64)
    qh = g.op("Transpose", [g.op("Reshape", [q, head_shape])], perm=[0, 2, 1, 3])  # [B,H,S,D]
    kh = g.op("Transpose", [g.op("Reshape", [k, head_shape])], perm=[0, 2, 3, 1])  # [B,H,D,S]
    vh = g.op("Transpose", [g.op("Reshape", [v, head_shape])], perm=[0, 2, 1, 3])  # [B,H,S,D]

    scores = g.op("Add", [g.op("MatMul", [qh, kh]), mask_bias])  # [B,H,S,S]
    probs = g.op("Softmax", [scores], axis=-1)
    ctx = g.op("Transpose", [g.op("MatMul", [probs, vh])], perm=[0, 2, 1, 3])  # [B,S,H,D]
    merged_shape = g.const(f"{prefix}.merged_shape", [0, 0, cfg.hidden_size], np.int64)
    return g.op("Reshape", [ctx, merged_shape])


def _gelu(g: _GraphBuilder, x: str, prefix: str) -> str:
    # Exact GELU, 0.5 * x * (1 + erf(x / sqrt(2))): what BERT's "gelu" means (Gelu is an ONNX op only
    # from opset 20). Keep the exact node sequence torch exports, Div by sqrt(2) included: ORT 1.31's
    # GeluFusion matches only that, and then folds the preceding bias Add in too (BiasGelu). The
    # equivalent Mul by 1/sqrt(2) is left unfused and runs as five elementwise kernels.
    sqrt2 = g.const(f"{prefix}.sqrt2", math.sqrt(2.0))
    one = g.const(f"{prefix}.one", 1.0)
    half = g.const(f"{prefix}.half", 0.5)
    erf = g.op("Erf", [g.op("Div", [x, sqrt2])])
    return g.op("Mul", [g.op("Mul", [x, g.op("Add", [erf, one])]), half])


def build_bert_graph(weights: dict[str, FloatArray], cfg: BertConfig) -> onnx.ModelProto:
    """Build the sentence-embedding graph from BERT weights.

    Args:
        weights: Tensors named as in a Hugging Face ``BertModel`` state dict (``embeddings.*``,
            ``encoder.layer.{i}.*``), with or without a ``bert.`` prefix. Float tensors must be float32.
        cfg: The model's shape parameters.

    Returns:
        A checked ONNX model with inputs ``input_ids`` and ``attention_mask`` (int64, ``[batch, seq]``)
        and output ``sentence_embedding`` (float32, ``[batch, hidden_size]``): masked mean pooled and
        L2-normalised. Sequences must be at most ``cfg.max_position_embeddings`` long and contain at
        least one unmasked token each.

    Raises:
        KeyError: If a required tensor is missing from ``weights``.
    """
    w = {k.removeprefix("bert."): np.asarray(v, dtype=np.float32) for k, v in weights.items()}
    g = _GraphBuilder()
    eps = cfg.layer_norm_eps

    # --- embeddings ---------------------------------------------------------------------------------
    word = g.const("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"])
    # Single-sentence inputs always have token_type_id 0, so its embedding row is a constant that can be
    # folded into the position table: one Gather and one Add less, and no token_type_ids input to feed.
    pos_tt = (
        w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0][None, :]
    )
    pos = g.const("embeddings.position_plus_type0", pos_tt)
    # Positions are 0..S-1 for every row, so the position rows are a prefix of the table: Slice it to
    # [S, hidden] (broadcast over the batch) rather than Range + Gather. A 1-D [S] from Shape(start=1)
    # also avoids a scalar-Gather-into-Range chain that ORT 1.31's optimiser rewrites into an invalid Slice.
    seq_len = g.op("Shape", [INPUT_IDS], start=1, end=2)  # [1] holding S
    zero = g.const("const.zero_1d", [0], np.int64)
    pos_rows = g.op("Slice", [pos, zero, seq_len, zero])  # starts=[0], ends=[S], axes=[0]
    emb = g.op("Add", [g.op("Gather", [word, INPUT_IDS], axis=0), pos_rows])
    hidden = g.layer_norm(emb, w, "embeddings.LayerNorm", eps)

    # --- attention mask -----------------------------------------------------------------------------
    mask_f = g.op("Cast", [ATTENTION_MASK], to=TensorProto.FLOAT)  # [B,S]
    # (1 - mask) * -1e9 as an additive bias, broadcast over heads and query positions: [B,1,1,S].
    not_mask = g.op("Sub", [g.const("const.one_f", 1.0), mask_f])
    mask_bias = g.op(
        "Unsqueeze",
        [
            g.op("Mul", [not_mask, g.const("const.mask_neg", _MASK_NEG)]),
            g.const("const.axes_12", [1, 2], np.int64),
        ],
    )

    # --- encoder ------------------------------------------------------------------------------------
    for i in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{i}"
        ctx = _attention(g, hidden, mask_bias, w, f"{p}.attention.self", cfg)
        attn_out = g.linear(
            ctx,
            w[f"{p}.attention.output.dense.weight"],
            w[f"{p}.attention.output.dense.bias"],
            f"{p}.attn_out",
        )
        hidden = g.layer_norm(g.op("Add", [attn_out, hidden]), w, f"{p}.attention.output.LayerNorm", eps)
        inter = g.linear(
            hidden, w[f"{p}.intermediate.dense.weight"], w[f"{p}.intermediate.dense.bias"], f"{p}.ffn_in"
        )
        ffn = g.linear(
            _gelu(g, inter, f"{p}.gelu"),
            w[f"{p}.output.dense.weight"],
            w[f"{p}.output.dense.bias"],
            f"{p}.ffn_out",
        )
        hidden = g.layer_norm(g.op("Add", [ffn, hidden]), w, f"{p}.output.LayerNorm", eps)

    # --- masked mean pooling ------------------------------------------------------------------------
    # sum_s(mask[b,s] * h[b,s,:]) as one batched MatMul [B,1,S] x [B,S,H] -> [B,1,H]: the same sum as
    # sentence-transformers' elementwise multiply + reduce, without materialising the [B,S,H] product.
    mask_row = g.op("Unsqueeze", [mask_f, g.const("const.axes_1", [1], np.int64)])  # [B,1,S]
    summed = g.op("MatMul", [mask_row, hidden])  # [B,1,H]
    count = g.op("ReduceSum", [mask_row, g.const("const.axes_2", [2], np.int64)], keepdims=1)  # [B,1,1]
    count = g.op("Max", [count, g.const("const.count_eps", _COUNT_EPS)])
    mean = g.op("Squeeze", [g.op("Div", [summed, count]), g.const("const.axes_1_sq", [1], np.int64)])  # [B,H]

    # --- L2 normalisation (torch.nn.functional.normalize semantics: x / max(||x||, eps)) -------------
    # ReduceL2 takes axes as an attribute until opset 18 (unlike ReduceSum, an input since 13).
    norm = g.op("ReduceL2", [mean], axes=[-1], keepdims=1)
    norm = g.op("Max", [norm, g.const("const.norm_eps", _NORM_EPS)])
    g.op("Div", [mean, norm], name=OUTPUT_NAME)

    graph = helper.make_graph(
        g.nodes,
        "bert_sentence_encoder",
        inputs=[
            helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(ATTENTION_MASK, TensorProto.INT64, ["batch", "sequence"]),
        ],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", cfg.hidden_size])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="creator-avatar.bert_graph",
        # IR 8 is what ORT releases from 1.14 on read; newer onnx defaults to a higher IR than needed.
        ir_version=8,
    )
    onnx.checker.check_model(model)
    return model


def load_bert_weights(model_dir: Path) -> tuple[dict[str, FloatArray], BertConfig]:
    """Read ``config.json`` and ``model.safetensors`` from a Hugging Face BERT model directory.

    Args:
        model_dir: Directory holding ``config.json`` and ``model.safetensors``.

    Returns:
        The float tensors (integer buffers such as ``position_ids`` are dropped) and the config.

    Raises:
        FileNotFoundError: If either file is missing.
    """
    # Imported here: only building needs safetensors, serving only needs the written .onnx file.
    from safetensors.numpy import load_file

    cfg = BertConfig.from_file(model_dir / "config.json")
    raw = load_file(str(model_dir / "model.safetensors"))
    weights = {k: v for k, v in raw.items() if np.issubdtype(v.dtype, np.floating)}
    return {k: v.astype(np.float32, copy=False) for k, v in weights.items()}, cfg
