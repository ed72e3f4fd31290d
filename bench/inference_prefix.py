"""Prefix-cache reuse: time to first token, cached vs recomputed, on the SmolLM-shaped bench model.

    .venv/bin/python -m bench.inference_prefix [--fans 16] [--persona 1024] [--turns 6]

Part 1 (persona): a 1,024-token creator persona shared by 16 fans (each adds a 32-token message).
One warm-up request caches the persona; then each fan's request runs alone and its time to first
token is measured. Baseline in the same run: the same 16 requests on an engine with the cache off.

Part 1b (burst): the same 16 fans arrive together while the persona is not cached yet (a creator
goes live). With in-flight prefix sharing the first fan's prefill computes the persona and the others
wait for it and hit; the baseline in the same run is the same burst with sharing off, where every fan
computes the persona. Mean and last time to first token, and prompt tokens computed.

Part 2 (conversation): one fan's 6-turn conversation (256-token persona, 24-token messages, 32-token
replies); turn k's prompt is the persona, every earlier message and reply (the generated token ids),
then message k. Per-turn time to first token with reuse vs with the cache off.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass

from bench.inference_common import THREADS, bench_model, machine_note, prompts
from services.inference.core.engine import EngineConfig, GenerationEngine
from services.inference.core.generator import DecoderModel, GenerationEvent
from services.inference.core.gqa_graph import ATTENTION_KIND
from services.inference.core.sampling import SamplingParams


def ttft(engine: GenerationEngine, prompt: list[int], new: int) -> tuple[float, list[int], int]:
    """(time to first token, generated ids, cached prompt tokens) of one request run alone."""
    first = threading.Event()
    tokens: list[int] = []
    cached = [0]
    stamp = [0.0]

    def on_event(e: GenerationEvent) -> None:
        if not tokens:
            stamp[0] = time.perf_counter()
            first.set()
        if e.token_id is not None:
            tokens.append(e.token_id)
        cached[0] = e.cached_tokens

    start = time.perf_counter()
    handle = engine.generate_blocking(prompt, SamplingParams(max_tokens=new, temperature=0.0), on_event)
    handle.done.wait()
    return stamp[0] - start, tokens, cached[0]


def burst(model: DecoderModel, fans: list[list[int]], share: bool) -> tuple[float, float, int]:
    """(mean TTFT, last TTFT, prompt tokens computed) of ``fans`` submitted together, cache cold."""
    engine = GenerationEngine(
        model,
        EngineConfig(
            max_batch=len(fans),
            max_seq_len=2048,
            kv_cache_bytes=1 << 30,
            max_queue=len(fans),
            share_inflight_prefixes=share,
        ),
    )
    engine.start()
    firsts: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter()

    def on_event(e: GenerationEvent, seen: list[bool]) -> None:
        if not seen:
            seen.append(True)
            with lock:
                firsts.append(time.perf_counter() - start)

    params = SamplingParams(max_tokens=4, temperature=0.0)
    handles = []
    for f in fans:
        seen: list[bool] = []
        handles.append(engine.generate_blocking(f, params, lambda e, seen=seen: on_event(e, seen)))
    for h in handles:
        h.done.wait()
    computed = engine.stats().prefill_tokens
    engine.stop()
    return sum(firsts) / len(firsts), max(firsts), computed


@dataclass(frozen=True)
class PersonaTtft:
    """Mean time to first token of fans sharing one persona, recomputed vs served from the cache."""

    persona: int
    fans: int
    cold: float
    cached: float
    cached_tokens: int
    """Prompt tokens served from the cache, per fan."""
    prompt_tokens: int

    def line(self) -> str:
        return (
            f"persona {self.persona} tokens, {self.fans} fans: TTFT cold {self.cold * 1000:.0f} ms, "
            f"cached {self.cached * 1000:.0f} ms -> cached/cold = {self.cached / self.cold:.3f} "
            f"(cached prompt tokens per fan: {self.cached_tokens} of {self.prompt_tokens})"
        )


def persona_ttft(
    cold_engine: GenerationEngine, warm_engine: GenerationEngine, persona: list[int], fans: int
) -> PersonaTtft:
    """Each fan (persona + a 32-token message) alone, on an engine without cache and on one with it.

    A warm-up request caches the persona first; both engines must produce the same tokens.
    """
    requests = [persona + m for m in prompts(fans, 32, seed=2)]
    ttft(warm_engine, [*persona, 7], 1)
    cold = [ttft(cold_engine, f, 4) for f in requests]
    warm = [ttft(warm_engine, f, 4) for f in requests]
    assert [c[1] for c in cold] == [w[1] for w in warm], "cached and recomputed runs disagree"
    return PersonaTtft(
        persona=len(persona),
        fans=fans,
        cold=sum(c[0] for c in cold) / len(cold),
        cached=sum(w[0] for w in warm) / len(warm),
        cached_tokens=warm[0][2],
        prompt_tokens=len(requests[0]),
    )


def engine_for(model: DecoderModel, cache: bool) -> GenerationEngine:
    engine = GenerationEngine(
        model,
        EngineConfig(
            max_batch=4, max_seq_len=2048, prefill_chunk=2048, kv_cache_bytes=(1 << 30) if cache else 0
        ),
    )
    engine.start()
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fans", type=int, default=16)
    parser.add_argument("--persona", type=int, default=1024)
    parser.add_argument("--turns", type=int, default=6)
    args = parser.parse_args()
    model = DecoderModel(bench_model(ATTENTION_KIND), intra_op_num_threads=THREADS)
    print(f"machine: {machine_note()}")

    [persona] = prompts(1, args.persona, seed=1)
    cold_engine, warm_engine = engine_for(model, cache=False), engine_for(model, cache=True)
    print(persona_ttft(cold_engine, warm_engine, persona, args.fans).line())

    burst_fans = [persona + m for m in prompts(args.fans, 32, seed=5)]
    shared, alone = burst(model, burst_fans, share=True), burst(model, burst_fans, share=False)
    print(
        f"burst: {args.fans} fans at once on an uncached {args.persona}-token persona: mean TTFT "
        f"{shared[0] * 1000:.0f} ms (last {shared[1] * 1000:.0f} ms, {shared[2]} prompt tokens computed) "
        f"with in-flight sharing vs {alone[0] * 1000:.0f} ms (last {alone[1] * 1000:.0f} ms, {alone[2]} "
        f"computed) without -> {shared[0] / alone[0]:.3f}x mean TTFT"
    )
    [short_persona] = prompts(1, 256, seed=3)
    messages = prompts(args.turns, 24, seed=4)
    for label, engine in (("recompute", cold_engine), ("reuse", warm_engine)):
        history = list(short_persona)
        row = []
        for k in range(args.turns):
            prompt = history + messages[k]
            t, reply, cached = ttft(engine, prompt, 32)
            row.append((len(prompt), cached, t))
            history = prompt + reply
        cells = "  ".join(f"t{k + 1}:{t * 1000:5.0f}ms({c}/{n})" for k, (n, c, t) in enumerate(row))
        print(f"6-turn conversation, {label:9s} TTFT [cached/prompt tokens]: {cells}")
        if label == "recompute":
            base = row
        else:
            ratios = "  ".join(
                f"t{k + 1}:{r[2] / b[2]:.2f}x" for k, (r, b) in enumerate(zip(row, base, strict=True))
            )
            print(f"reuse / recompute per turn: {ratios}")
    cold_engine.stop()
    warm_engine.stop()
    print(f"machine after: {machine_note()}")


if __name__ == "__main__":
    main()
