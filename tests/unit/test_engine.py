"""Continuous-batching engine on the tiny GroupQueryAttention model (CPU, real onnxruntime, no torch).

The oracle for every generated sequence is the same model run alone through the plain decode loop
(:meth:`DecoderModel.generate`, no batching, no prefix cache).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.inference.core.engine import EngineConfig, GenerationEngine, QueueFull
from services.inference.core.generator import DecoderModel, GenerationEvent, PromptTooLongError
from services.inference.core.gqa_graph import build_gqa_graph, rotary_in_attention
from services.inference.core.llama_config import RopeScaling
from services.inference.core.llama_graph import save_model
from services.inference.core.llama_reference import reference_forward
from services.inference.core.model_build import build_tiny, random_weights, tiny_config
from services.inference.core.runner import GQA_FLASH_ENV, SlotRunner
from services.inference.core.sampling import SamplingParams

pytestmark = pytest.mark.timeout(120)

GREEDY = SamplingParams(max_tokens=12, temperature=0.0)
EOS_FREE = (1, 4)  # the tiny model's EOS ids; prompts avoid them so they read as plain text


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("gqa"), seed=0, attention="group_query_attention")


@pytest.fixture(scope="module")
def model(model_dir: Path) -> DecoderModel:
    return DecoderModel(model_dir, intra_op_num_threads=1, providers=["CPUExecutionProvider"])


def make_engine(model: DecoderModel, **overrides: int) -> GenerationEngine:
    cfg = dict(
        max_batch=8, max_seq_len=256, prefill_chunk=32, kv_cache_bytes=1 << 20, block_size=4, max_queue=64
    )
    cfg.update(overrides)
    return GenerationEngine(model, EngineConfig(**cfg))


@pytest.fixture
def engine(model: DecoderModel) -> Iterator[GenerationEngine]:
    eng = make_engine(model)
    eng.start()
    yield eng
    eng.stop()


def prompt_of(seed: int, length: int, vocab: int = 700) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(t) for t in rng.integers(5, vocab, size=length)]


def solo(model: DecoderModel, prompt: list[int], params: SamplingParams = GREEDY) -> list[int]:
    return [e.token_id for e in model.generate(prompt, params) if e.token_id is not None]


class Collector:
    """Events of one request, gathered on the engine thread."""

    def __init__(self) -> None:
        self.events: list[GenerationEvent] = []
        self.done = threading.Event()
        self.cancel: Callable[[], None] = lambda: None

    @property
    def tokens(self) -> list[int]:
        return [e.token_id for e in self.events if e.token_id is not None]

    @property
    def last(self) -> GenerationEvent:
        return self.events[-1]


def submit(
    engine: GenerationEngine,
    prompt: list[int],
    params: SamplingParams = GREEDY,
    after: Callable[[GenerationEvent], None] | None = None,
) -> Collector:
    c = Collector()

    def on_event(e: GenerationEvent) -> None:
        c.events.append(e)
        if after is not None:
            after(e)

    handle = engine.generate_blocking(prompt, params, on_event)
    c.done, c.cancel = handle.done, handle.cancel
    return c


def wait(*collectors: Collector) -> None:
    for c in collectors:
        assert c.done.wait(60), "request did not finish"


# -- graph --------------------------------------------------------------------------------------------


GQA_VARIANTS = {
    "llama": {},
    "qwen2-bias-tied": dict(tie_word_embeddings=True, architecture="Qwen2ForCausalLM", attention_bias=True),
    "llama3-rope": dict(rope_theta=500000.0, rope_scaling=RopeScaling("llama3", 8.0, 1.0, 4.0, 64)),
    # head_dim 8: onnxruntime's rotary needs a multiple of 16, so the graph rotates q and k itself.
    "rope-outside-attention": dict(head_dim=8),
}


@pytest.mark.parametrize("kernel", ["gemm", "flash"])
@pytest.mark.parametrize("variant", list(GQA_VARIANTS))
def test_gqa_graph_logits_match_reference(
    tmp_path: Path, variant: str, kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prompts prefilled in chunks (a first chunk, then chunks of S > 1 and S = 1 on top of the cache),
    then batched decode of rows at different lengths: every logit within 1e-4 of the numpy oracle,
    with either of onnxruntime's CPU GroupQueryAttention kernels (the engine uses the GEMM one)."""
    import onnxruntime as ort

    monkeypatch.setenv(GQA_FLASH_ENV, "1" if kernel == "gemm" else "0")
    config = replace(tiny_config(300), **GQA_VARIANTS[variant])  # type: ignore[arg-type]
    assert rotary_in_attention(config) == (variant != "rope-outside-attention")
    weights = random_weights(config, seed=5)
    save_model(build_gqa_graph(config, weights), tmp_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), options, providers=["CPUExecutionProvider"])
    assert "position_ids" not in {i.name for i in session.get_inputs()}
    runner = SlotRunner(session, config, np.float32, max_batch=4, max_seq_len=48)
    chunks = [(4, 5), (8, 1, 8), (4,), (1,)]  # prompt lengths 9, 17, 4 and 1
    seqs = [prompt_of(i, sum(c), vocab=300) for i, c in enumerate(chunks)]
    for row, (s, sizes) in enumerate(zip(seqs, chunks, strict=True)):
        start = 0
        for size in sizes:
            logits = runner.run(row, np.array([s[start : start + size]]), [start + size - 1])
            start += size
            expected = reference_forward(config, weights, np.array([s[:start]]))[0, -1]
            np.testing.assert_allclose(logits[0], expected, atol=1e-4, rtol=0)
        s.append(int(np.argmax(logits[0])))
    for _ in range(4):
        logits = runner.run(0, np.array([[s[-1]] for s in seqs]), [len(s) - 1 for s in seqs])
        for row, s in enumerate(seqs):
            expected = reference_forward(config, weights, np.array([s]))[0, -1]
            np.testing.assert_allclose(logits[row], expected, atol=1e-4, rtol=0)
        for row, s in enumerate(seqs):
            s.append(int(np.argmax(logits[row])))


def test_plain_loop_on_gqa_graph_matches_standard_graph(model: DecoderModel, tmp_path: Path) -> None:
    standard = DecoderModel(build_tiny(tmp_path, seed=0), intra_op_num_threads=1)
    assert not standard.supports_batching and model.supports_batching
    for seed in range(3):
        p = prompt_of(seed, 10 + 7 * seed)
        assert solo(model, p) == solo(standard, p)


# -- batching -----------------------------------------------------------------------------------------


def test_batch_of_8_joining_and_leaving_matches_solo_runs(
    model: DecoderModel, engine: GenerationEngine
) -> None:
    prompts = [prompt_of(100 + i, 5 + 9 * i) for i in range(8)]
    params = [SamplingParams(max_tokens=4 + 3 * i, temperature=0.0) for i in range(8)]
    expected = [solo(model, p, q) for p, q in zip(prompts, params, strict=True)]
    started: list[Collector] = []

    # Requests 0-3 start together; each later one is submitted from inside the engine thread when an
    # earlier one has produced its 2nd token, so it joins a batch that is mid-decode; shorter
    # max_tokens make the early ones leave while later ones run.
    def chain(i: int) -> Callable[[GenerationEvent], None]:
        def after(e: GenerationEvent) -> None:
            if e.generated_tokens == 2 and i + 4 < 8:
                started.append(submit(engine, prompts[i + 4], params[i + 4]))

        return after

    first = [submit(engine, prompts[i], params[i], chain(i)) for i in range(4)]
    wait(*first)
    deadline = time.monotonic() + 60
    while len(started) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    wait(*started)
    by_prompt = {c.events[0].prompt_tokens: c.tokens for c in first + started}
    assert by_prompt == {len(p): t for p, t in zip(prompts, expected, strict=True)}
    stats = engine.stats()
    assert stats.running == 0 and stats.free_slots == 8 and stats.completed == 8


def test_seeded_sampling_is_the_same_alone_and_batched(model: DecoderModel, engine: GenerationEngine) -> None:
    params = SamplingParams(
        max_tokens=10, temperature=0.9, top_k=50, top_p=0.9, repetition_penalty=1.3, seed=7
    )
    p = prompt_of(5, 20)
    expected = solo(model, p, params)
    others = [submit(engine, prompt_of(50 + i, 12), GREEDY) for i in range(3)]
    target = submit(engine, p, params)
    wait(target, *others)
    assert target.tokens == expected


def test_stop_string_and_max_tokens(model: DecoderModel, engine: GenerationEngine) -> None:
    p = prompt_of(8, 15)
    full = model.generate(p, SamplingParams(max_tokens=12, temperature=0.0))
    text = "".join(e.text for e in full)
    c = submit(engine, p, SamplingParams(max_tokens=3, temperature=0.0))
    wait(c)
    assert [e.finish_reason for e in c.events] == [None, None, "length"]
    assert len(text) > 4
    stop = text[2:4]
    s = submit(engine, p, SamplingParams(max_tokens=12, temperature=0.0, stop=(stop,)))
    wait(s)
    assert s.last.finish_reason == "stop"
    assert "".join(e.text for e in s.events) == text[: text.find(stop)]


# -- prefix cache --------------------------------------------------------------------------------------


def test_prefix_hit_gives_the_same_tokens_as_a_miss(model: DecoderModel, engine: GenerationEngine) -> None:
    persona = prompt_of(1, 40)
    fans = [persona + prompt_of(200 + i, 6) for i in range(4)]
    expected = [solo(model, f) for f in fans]
    first = submit(engine, fans[0])
    wait(first)
    assert first.last.cached_tokens == 0
    rest = [submit(engine, f) for f in fans[1:]]
    wait(*rest)
    assert [c.tokens for c in [first, *rest]] == expected
    assert [c.last.cached_tokens for c in rest] == [40, 40, 40]  # 10 full blocks of 4 shared by all fans
    stats = engine.stats().cache
    assert (stats.lookups, stats.hits, stats.misses) == (4, 3, 1)
    assert stats.hit_tokens == 120


def test_next_turn_reuses_prompt_and_generated_tokens(model: DecoderModel, engine: GenerationEngine) -> None:
    turn1 = prompt_of(3, 21)
    c1 = submit(engine, turn1, SamplingParams(max_tokens=9, temperature=0.0))
    wait(c1)
    assert c1.last.finish_reason == "length"
    # The last sampled token was never fed to the model, so 21 + 8 tokens have KV: 7 full blocks.
    turn2 = turn1 + c1.tokens + prompt_of(4, 5)
    c2 = submit(engine, turn2)
    wait(c2)
    assert c2.last.cached_tokens == 28
    assert c2.tokens == solo(model, turn2)


def test_cancellation_unpins_blocks_and_frees_the_slot(model: DecoderModel) -> None:
    eng = make_engine(model, max_batch=2)
    eng.start()
    try:
        persona = prompt_of(11, 16)
        wait(submit(eng, [*persona, 7, 8, 9], SamplingParams(max_tokens=2, temperature=0.0)))
        long = SamplingParams(max_tokens=200, temperature=0.0)
        fan = persona + prompt_of(0, 30)
        assert len(solo(model, fan, long)) == 200  # no EOS: only the cancel can end it early
        c = submit(eng, fan, long)
        while not c.events:
            time.sleep(0.005)
        stats = eng.stats()
        assert (stats.running, stats.cache.pinned_blocks) == (1, 4)  # the 16-token persona is pinned
        c.cancel()
        wait(c)
        assert c.last.finish_reason == "cancelled" and c.last.token_id is None
        assert c.last.cached_tokens == 16
        stats = eng.stats()
        assert (stats.running, stats.free_slots, stats.cache.pinned_blocks) == (0, 2, 0)
    finally:
        eng.stop()


@pytest.mark.parametrize("stall_s", [0.0, 60.0])
def test_new_prompts_are_prefilled_before_running_rows_decode_within_the_stall_bound(
    model: DecoderModel, stall_s: float
) -> None:
    """A (8 tokens) and B (96 tokens, 12 chunks of 8) arrive together: A's prompt is done first.

    With a bound that is never reached, A streams nothing more until B's prompt is in and B has its
    first token; with a bound of 0 A decodes at every step meanwhile (the old schedule). Both give the
    tokens A and B get alone.
    """
    config = EngineConfig(max_batch=2, prefill_chunk=8, kv_cache_bytes=0, max_decode_stall_s=stall_s)
    eng = GenerationEngine(model, replace(config, max_seq_len=256))
    order: list[str] = []
    params = SamplingParams(max_tokens=40, temperature=0.0)
    a_prompt, b_prompt = prompt_of(21, 8), prompt_of(22, 96)
    a = submit(eng, a_prompt, params, after=lambda e: order.append("a"))
    b = submit(eng, b_prompt, params, after=lambda e: order.append("b"))
    eng.start()  # both are waiting at the first step
    try:
        wait(a, b)
        a_before_b = order.index("b")
        if stall_s > 0:
            assert a_before_b == 1  # the token sampled at the end of A's own prefill, then nothing
        else:
            assert a_before_b >= 12  # one decode step per B chunk (12 chunks, the first shared with A)
        assert a.tokens == solo(model, a_prompt, params) and b.tokens == solo(model, b_prompt, params)
        total = len(a.tokens) + len(b.tokens)
        # Every token but the two sampled at the end of a prefill comes from a decode step; a step that
        # decodes both rows yields two, so fewer decode steps than tokens means rows shared steps.
        assert eng.stats().decode_steps < total - 2
    finally:
        eng.stop()


@pytest.mark.parametrize("share", [True, False])
def test_fans_arriving_together_compute_a_shared_prefix_once(model: DecoderModel, share: bool) -> None:
    """Two prompts with the same uncached 40-token prefix, queued in the same step: the second waits
    for the first one's prefill to be cached and is served 40 tokens from it; without the hold both
    compute it. Tokens are solo's either way."""
    persona = prompt_of(31, 40)
    a_prompt, b_prompt = persona + prompt_of(32, 6), persona + prompt_of(33, 9)
    config = EngineConfig(max_batch=4, prefill_chunk=16, kv_cache_bytes=1 << 20, block_size=4)
    eng = GenerationEngine(model, replace(config, max_seq_len=256, share_inflight_prefixes=share))
    params = SamplingParams(max_tokens=6, temperature=0.0)
    a, b = submit(eng, a_prompt, params), submit(eng, b_prompt, params)
    eng.start()
    try:
        wait(a, b)
        assert a.last.cached_tokens == 0
        assert b.last.cached_tokens == (40 if share else 0)
        assert eng.stats().prefill_tokens == len(a_prompt) + len(b_prompt) - b.last.cached_tokens
        assert a.tokens == solo(model, a_prompt, params) and b.tokens == solo(model, b_prompt, params)
    finally:
        eng.stop()


def test_engine_config_refuses_a_negative_or_nan_stall_bound() -> None:
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="max_decode_stall_s"):
            EngineConfig(max_decode_stall_s=bad)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mix=st.lists(
        st.tuples(st.integers(0, 2), st.integers(1, 14), st.integers(1, 8), st.integers(0, 3)),
        min_size=2,
        max_size=7,
    ),
    budget_blocks=st.integers(0, 6),
)
def test_random_mixes_under_eviction_never_corrupt_running_sequences(
    model: DecoderModel, mix: list[tuple[int, int, int, int]], budget_blocks: int
) -> None:
    """Shared prefixes, staggered arrivals, 3 slots and a cache of a few blocks: every output is solo's."""
    per_block = 2 * 2 * 2 * 4 * 16 * 4
    eng = make_engine(model, kv_cache_bytes=budget_blocks * per_block, max_batch=3, prefill_chunk=8)
    prefixes = [prompt_of(900 + i, 13) for i in range(3)]
    jobs = [
        (prefixes[pfx] + prompt_of(1000 + i, extra), SamplingParams(max_tokens=gen, temperature=0.0), delay)
        for i, (pfx, extra, gen, delay) in enumerate(mix)
    ]
    eng.start()
    try:
        collectors: list[Collector] = []
        for prompt, params, delay in jobs:
            collectors.append(submit(eng, prompt, params))
            time.sleep(delay * 0.002)
        wait(*collectors)
        for (prompt, params, _), c in zip(jobs, collectors, strict=True):
            assert c.tokens == solo(model, prompt, params)
        stats = eng.stats().cache
        assert stats.used_blocks <= budget_blocks and stats.pinned_blocks == 0
    finally:
        eng.stop()


# -- admission, cancellation, deadlines -----------------------------------------------------------------


def test_full_queue_is_refused_at_once(model: DecoderModel) -> None:
    eng = make_engine(model, max_queue=2)  # not started: nothing leaves the queue
    p = prompt_of(1, 5)
    eng.generate_blocking(p, GREEDY, lambda e: None)
    eng.generate_blocking(p, GREEDY, lambda e: None)
    with pytest.raises(QueueFull, match="2 waiting"):
        eng.generate_blocking(p, GREEDY, lambda e: None)
    assert eng.queue_depth == 2


def test_bad_prompts_are_rejected_before_queueing(engine: GenerationEngine) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        engine.validate([])
    with pytest.raises(ValueError, match=r"in \[0, "):
        engine.validate([5, 10_000])
    with pytest.raises(PromptTooLongError, match="256 tokens"):
        engine.validate([5] * 256)


async def test_client_cancel_frees_the_sequence_at_the_next_step(engine: GenerationEngine) -> None:
    stream = engine.stream(prompt_of(2, 30), SamplingParams(max_tokens=200, temperature=0.0))
    got = []
    async for event in stream:
        got.append(event)
        if len(got) == 2:
            break
    await stream.aclose()  # what grpc does when the client goes away
    for _ in range(500):
        if engine.stats().running == 0:
            break
        await asyncio.sleep(0.01)
    stats = engine.stats()
    assert stats.running == 0 and stats.free_slots == 8 and stats.cache.pinned_blocks == 0
    assert stats.completed == 1


async def test_deadline_ends_the_request(engine: GenerationEngine) -> None:
    events = [
        e
        async for e in engine.stream(
            prompt_of(2, 30), SamplingParams(max_tokens=200, temperature=0.0), deadline=time.monotonic() - 1
        )
    ]
    assert [(e.token_id, e.finish_reason) for e in events] == [(None, "cancelled")]


def test_hf_checkpoint_command_builds_a_servable_model(
    model: DecoderModel, model_dir: Path, tmp_path: Path
) -> None:
    """``build_model hf`` on a Qwen2-style safetensors checkpoint gives a GQA directory the engine serves."""
    import json
    import shutil

    from safetensors.numpy import save_file

    from services.inference import build_model

    src = tmp_path / "ckpt"
    src.mkdir()
    config = model.config
    save_file(
        {k: v.astype(np.float32) for k, v in random_weights(config, seed=0).items()},
        src / "model.safetensors",
    )
    (src / "config.json").write_text(json.dumps(config.to_dict()))
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copyfile(model_dir / name, src / name)
    assert build_model.main(["hf", "--src", str(src), "--out", str(tmp_path / "out")]) == 0
    converted = DecoderModel(tmp_path / "out", intra_op_num_threads=1)
    assert converted.supports_batching and not converted.info.random_weights
    eng = GenerationEngine(converted, EngineConfig(max_batch=2, max_seq_len=128, kv_cache_bytes=1 << 20))
    eng.start()
    try:
        p = prompt_of(21, 17)
        c = submit(eng, p)
        wait(c)
        assert c.tokens == solo(model, p)  # same weights (seed 0) as the tiny test model
    finally:
        eng.stop()
