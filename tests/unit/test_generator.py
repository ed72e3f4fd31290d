"""DecoderModel's decode loop, sampling and the tiny model build (CLI included)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.inference import build_model
from services.inference.core.generator import (
    AvatarModelInfo,
    DecoderModel,
    GenerationEvent,
    PromptTooLongError,
    default_providers,
)
from services.inference.core.llama_reference import reference_forward
from services.inference.core.model_build import build_tiny, random_weights
from services.inference.core.sampling import (
    SamplingParams,
    apply_repetition_penalty,
    candidates,
    draw,
    make_rng,
    sample_batch,
    sample_next,
    top_indices,
)

pytestmark = pytest.mark.timeout(60)

DEVICES = {"cpu": ["CPUExecutionProvider"]}
if "CUDAExecutionProvider" in ort.get_available_providers():
    DEVICES["cuda"] = ["CUDAExecutionProvider", "CPUExecutionProvider"]

GREEDY = SamplingParams(max_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"), seed=0)


@pytest.fixture(scope="module", params=list(DEVICES))
def model(request: pytest.FixtureRequest, model_dir: Path) -> DecoderModel:
    return DecoderModel(model_dir, intra_op_num_threads=1, providers=DEVICES[request.param])


@pytest.fixture(scope="module")
def prompt(model: DecoderModel) -> list[int]:
    return model.tokenizer.encode_chat([{"role": "user", "content": "What should I bake this weekend? 🍪"}])


def run(
    model: DecoderModel,
    prompt: list[int],
    params: SamplingParams,
    cancelled: Callable[[], bool] | None = None,
) -> list[GenerationEvent]:
    return list(model.generate(prompt, params, cancelled))


def tokens(events: list[GenerationEvent]) -> list[int]:
    return [e.token_id for e in events if e.token_id is not None]


def text(events: list[GenerationEvent]) -> str:
    return "".join(e.text for e in events)


def test_model_dir_says_random_weights(model: DecoderModel, model_dir: Path) -> None:
    assert model.info.random_weights is True and model.info.format_version == 1 and model.info.dtype == "fp32"
    raw = json.loads((model_dir / "config.json").read_text())
    assert raw["avatar"]["random_weights"] is True
    assert model.eos_token_ids == (1, 4)
    assert model.kv_dtype is np.float32


def test_greedy_equals_argmax_loop_over_reference(model: DecoderModel, prompt: list[int]) -> None:
    events = run(model, prompt, GREEDY)
    got = tokens(events)

    weights = random_weights(model.config, seed=0)  # the build is deterministic, so these are its weights
    ids = list(prompt)
    for _ in range(GREEDY.max_tokens):
        last = reference_forward(model.config, weights, np.array([ids]))[0, -1]
        top2 = np.sort(last)[-2:]
        assert top2[1] - top2[0] > 1e-3  # the argmax is not decided by rounding noise
        ids.append(int(np.argmax(last)))
    assert got == ids[len(prompt) :]
    assert run(model, prompt, GREEDY) == events  # deterministic, event for event
    assert [e.finish_reason for e in events] == [None] * 11 + ["length"]
    assert [e.generated_tokens for e in events] == list(range(1, 13))
    assert all(e.prompt_tokens == len(prompt) for e in events)
    assert text(events) == model.tokenizer.decode(got)


def test_seeded_sampling_is_reproducible(model: DecoderModel, prompt: list[int]) -> None:
    params = SamplingParams(max_tokens=16, temperature=1.0, top_k=50, top_p=0.9, seed=1234)
    first = tokens(run(model, prompt, params))
    assert tokens(run(model, prompt, params)) == first
    other = tokens(
        run(model, prompt, SamplingParams(max_tokens=16, temperature=1.0, top_k=50, top_p=0.9, seed=99))
    )
    assert other != first


def test_stop_string_is_not_emitted(model: DecoderModel, prompt: list[int]) -> None:
    full = text(run(model, prompt, SamplingParams(max_tokens=30, temperature=0.0)))
    clean = [
        i for i in range(6, len(full) - 4) if "\ufffd" not in full[i : i + 3] and full[i : i + 3].strip()
    ]
    stop = full[clean[0] : clean[0] + 3]
    events = run(model, prompt, SamplingParams(max_tokens=30, temperature=0.0, stop=("zzz-never", stop)))
    assert events[-1].finish_reason == "stop"
    assert text(events) == full[: full.index(stop)]
    assert all(e.finish_reason is None for e in events[:-1])


def test_stop_token_ids_finish_with_stop(model: DecoderModel, prompt: list[int]) -> None:
    greedy = tokens(run(model, prompt, GREEDY))
    target = greedy[4]
    events = run(model, prompt, SamplingParams(max_tokens=12, temperature=0.0, stop_token_ids=(target,)))
    assert events[-1].finish_reason == "stop"
    assert tokens(events) == greedy[: greedy.index(target) + 1]
    assert events[-1].generated_tokens == greedy.index(target) + 1


def test_max_tokens_finishes_with_length(model: DecoderModel, prompt: list[int]) -> None:
    events = run(model, prompt, SamplingParams(max_tokens=3, temperature=0.7, seed=5))
    assert len(events) == 3
    assert [e.finish_reason for e in events] == [None, None, "length"]
    assert events[-1].generated_tokens == 3


def test_cancellation_finishes_with_cancelled(model: DecoderModel, prompt: list[int]) -> None:
    calls = 0

    def cancelled() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3  # checked before each model step: three steps run, the fourth is refused

    events = run(model, prompt, SamplingParams(max_tokens=50, temperature=0.0), cancelled)
    assert len(tokens(events)) == 3
    assert events[-1].token_id is None and events[-1].finish_reason == "cancelled"
    assert events[-1].generated_tokens == 3
    assert tokens(events) == tokens(run(model, prompt, GREEDY))[:3]


def test_context_limit_and_bad_prompts(model: DecoderModel) -> None:
    limit = model.config.max_context
    with pytest.raises(PromptTooLongError):
        run(model, [5] * limit, GREEDY)
    with pytest.raises(ValueError, match="must not be empty"):
        run(model, [], GREEDY)
    with pytest.raises(ValueError, match="token ids must be in"):
        run(model, [model.config.vocab_size], GREEDY)
    events = run(model, [5] * (limit - 2), SamplingParams(max_tokens=10, temperature=0.0))
    assert len(events) == 2 and events[-1].finish_reason == "length"


def test_forward_batch_shapes(model: DecoderModel) -> None:
    logits, present = model.forward(
        np.array([[1, 2, 3], [4, 5, 6]]), np.ones((2, 3)), np.array([[0, 1, 2]] * 2)
    )
    assert logits.shape == (2, 3, model.config.vocab_size) and logits.dtype == np.float32
    assert len(present) == 2 * model.config.num_hidden_layers
    assert present[0].shape == (2, model.config.num_key_value_heads, 3, model.config.head_dim)


# -- sampling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_tokens": 0},
        {"max_tokens": 1.5},
        {"temperature": -0.1},
        {"temperature": float("nan")},
        {"top_k": -1},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"repetition_penalty": 0.0},
        {"seed": -1},
        {"stop": ("",)},
        {"stop_token_ids": (-3,)},
    ],
)
def test_sampling_params_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)  # type: ignore[arg-type]


def test_sampling_params_normalises_sequences() -> None:
    params = SamplingParams(stop=["a", "b"], stop_token_ids=[7])  # type: ignore[arg-type]
    assert params.stop == ("a", "b") and params.stop_token_ids == (7,)
    assert hash(params) == hash(SamplingParams(stop=("a", "b"), stop_token_ids=(7,)))


def test_sampling_filters() -> None:
    logits = np.array([0.0, 3.0, 1.0, 2.9, -1.0], np.float32)
    rng = make_rng(SamplingParams(seed=0))
    assert sample_next(logits, [], SamplingParams(temperature=0.0), rng) == 1
    # top_k=1 and a tiny top_p leave only the argmax, whatever the temperature.
    for _ in range(20):
        assert sample_next(logits, [], SamplingParams(temperature=5.0, top_k=1), rng) == 1
        assert sample_next(logits, [], SamplingParams(temperature=5.0, top_p=1e-6), rng) == 1
        assert sample_next(logits, [], SamplingParams(temperature=5.0, top_k=2), rng) in (1, 3)
    # Repetition penalty (HF rule): positive logits divided, negative multiplied.
    np.testing.assert_allclose(apply_repetition_penalty(logits, [1, 4, 1], 2.0), [0.0, 1.5, 1.0, 2.9, -2.0])
    assert sample_next(logits, [1], SamplingParams(temperature=0.0, repetition_penalty=2.0), rng) == 3


def test_sampling_distribution_matches_softmax() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.2], np.float32))
    rng = np.random.default_rng(0)
    counts = np.bincount([sample_next(logits, [], SamplingParams(), rng) for _ in range(4000)], minlength=3)
    np.testing.assert_allclose(counts / 4000, [0.5, 0.3, 0.2], atol=0.03)
    # top_p=0.75 keeps {0.5, 0.3} (mass before 0.2 is 0.8 >= 0.75), renormalised to 5/8, 3/8.
    counts = np.bincount(
        [sample_next(logits, [], SamplingParams(top_p=0.75), rng) for _ in range(4000)], minlength=3
    )
    assert counts[2] == 0
    np.testing.assert_allclose(counts[:2] / 4000, [0.625, 0.375], atol=0.03)


def test_sample_batch_rows_are_independent() -> None:
    logits = np.random.default_rng(1).standard_normal((3, 50)).astype(np.float32)
    params = [SamplingParams(seed=1), SamplingParams(temperature=0.0), SamplingParams(seed=2, top_k=5)]
    batch = sample_batch(logits, [[], [], []], params, [make_rng(p) for p in params])
    alone = [sample_next(logits[b], [], params[b], make_rng(params[b])) for b in range(3)]
    assert batch.tolist() == alone
    assert batch[1] == int(np.argmax(logits[1]))


def test_an_fp32_serving_graph_is_not_offered_cuda() -> None:
    """CUDA's GroupQueryAttention is fp16/bf16 only: an fp32 serving graph runs on the CPU."""
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def info(dtype: str, attention: str) -> AvatarModelInfo:
        return AvatarModelInfo(random_weights=True, format_version=1, dtype=dtype, attention=attention)

    fp32 = info("fp32", "group_query_attention")
    fp16 = info("fp16", "group_query_attention")
    plain = info("fp32", "standard")
    assert default_providers(fp32, both) == ["CPUExecutionProvider"]
    assert default_providers(fp16, both) == both
    assert default_providers(plain, both) == both
    assert default_providers(None, both) == both
    assert default_providers(fp16, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def full_sort_candidates(scaled: np.ndarray, top_k: int, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """The reference: sort the whole row, mask past top-k, softmax, keep the top-p nucleus."""
    vocab = scaled.shape[0]
    order = np.argsort(-scaled, kind="stable")
    ranked = scaled[order].astype(np.float64)
    if 0 < top_k < vocab:
        ranked[top_k:] = -np.inf
    probs = np.exp(ranked - ranked[0])
    probs /= probs.sum()
    keep = (np.cumsum(probs) - probs < top_p) & (probs > 0)  # tokens past top-k have probability 0
    keep[0] = True
    return order[keep], probs[keep] / probs[keep].sum()


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 3000),
    k=st.integers(1, 3000),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
)
def test_top_indices_are_exactly_the_k_largest(n: int, k: int, seed: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 6, n) if ties else rng.standard_normal(n)).astype(np.float32)
    k = min(k, n)
    got = top_indices(x, k)
    assert len(set(got.tolist())) == k == got.shape[0]
    np.testing.assert_array_equal(np.sort(x[got]), np.sort(x)[n - k :])


@settings(max_examples=120, deadline=None)
@given(
    vocab=st.sampled_from([7, 300, 5000, 49152]),
    spread=st.sampled_from([0.05, 1.0, 8.0]),  # 0.05: a flat row whose nucleus is wider than the search
    top_k=st.sampled_from([0, 1, 5, 50, 2000]),
    top_p=st.sampled_from([1.0, 0.999, 0.9, 0.5, 1e-6]),
    seed=st.integers(0, 2**32 - 1),
)
def test_sampling_candidates_match_a_full_sort(
    vocab: int, spread: float, top_k: int, top_p: float, seed: int
) -> None:
    scaled = (np.random.default_rng(seed).standard_normal(vocab) * spread).astype(np.float32)
    ids, probs = candidates(scaled, top_k, top_p)
    if top_p >= 1.0 and not 0 < top_k < vocab:  # no filter: the whole row, in vocabulary order
        weights = np.exp(scaled.astype(np.float64) - scaled.max())
        np.testing.assert_array_equal(ids, np.arange(vocab))
        np.testing.assert_allclose(probs, weights / weights.sum(), rtol=1e-5)
        return
    want_ids, want_probs = full_sort_candidates(scaled, top_k, top_p)
    # The same ranking; float32 sums (ours) vs float64 (the reference) may move the top-p boundary over
    # a few tail tokens, whose probability is negligible; nothing else may differ.
    # Tokens with equal logits may come in another order: compare the ranked logits, then the sets.
    m = min(len(ids), len(want_ids))
    np.testing.assert_array_equal(scaled[ids[:m]], scaled[want_ids[:m]])
    boundary = scaled[want_ids[m - 1]]
    assert set(ids[:m][scaled[ids[:m]] > boundary]) == set(want_ids[:m][scaled[want_ids[:m]] > boundary])
    assert want_probs[m:].sum() < 1e-4 and probs[m:].sum() < 1e-4
    np.testing.assert_allclose(probs[:m], want_probs[:m], rtol=1e-3, atol=1e-7)


def test_draw_follows_the_probabilities_and_never_picks_a_zero() -> None:
    rng = np.random.default_rng(3)
    for n in (3, 1024, 5000):  # the one-level and the two-level search
        probs = rng.random(n)
        probs[::7] = 0.0
        probs /= probs.sum()
        picks = np.array([draw(probs, rng.random()) for _ in range(100_000)])
        counts = np.bincount(picks, minlength=n)
        assert counts[::7].sum() == 0
        np.testing.assert_allclose(counts / picks.size, probs, atol=5 * np.sqrt(probs.max() / picks.size))
    one_hot = np.zeros(9000)
    one_hot[8999] = 1.0
    assert {draw(one_hot, u) for u in (0.0, 0.5, 1.0 - 1e-12)} == {8999}


# -- build ------------------------------------------------------------------------------------------


def test_tiny_build_is_deterministic_and_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    a = build_tiny(tmp_path / "a", seed=3)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0
    b = build_tiny(tmp_path / "b", seed=3)
    c = build_tiny(tmp_path / "c", seed=4)
    for name in (
        "model.onnx",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "model.onnx").read_bytes() != (c / "model.onnx").read_bytes()
    assert (a / "tokenizer.json").read_bytes() == (c / "tokenizer.json").read_bytes()


def test_cli_builds_tiny_fp16(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build_model.main(["tiny", "--out", str(tmp_path / "m"), "--seed", "1", "--dtype", "fp16"]) == 0
    assert "wrote" in capsys.readouterr().out
    model = DecoderModel(tmp_path / "m", intra_op_num_threads=1, providers=["CPUExecutionProvider"])
    assert model.info.dtype == "fp16" and model.kv_dtype is np.float16
    ids = model.tokenizer.encode_chat([{"role": "user", "content": "hello"}])
    events = list(model.generate(ids, SamplingParams(max_tokens=4, temperature=0.0)))
    assert [e.finish_reason for e in events] == [None, None, None, "length"]
    assert build_model.main(["hf", "--src", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2


def test_default_providers_end_with_cpu() -> None:
    providers = default_providers()
    assert providers[-1] == "CPUExecutionProvider"
    assert ("CUDAExecutionProvider" in providers) == (
        "CUDAExecutionProvider" in ort.get_available_providers()
    )


def test_the_cuda_runtime_is_loaded_where_onnxruntime_has_cuda_and_named_where_not() -> None:
    from services.inference.core.runner import _load_cudart

    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert hasattr(_load_cudart(), "cudaMemcpy")
        return
    try:
        lib = _load_cudart()
    except RuntimeError as exc:  # no CUDA here: the error lists what was tried
        assert "libcudart.so" in str(exc)
    else:  # a CUDA toolkit without onnxruntime-gpu
        assert hasattr(lib, "cudaMemcpy")
