"""Sampling cost: the engine's sampler vs sorting every row, alone and inside a 16-stream decode.

    .venv/bin/python -m bench.inference_sampling [--rows 16] [--streams 16] [--new 64] [--repeat 3]

The gateway samples replies at temperature 0.7, so every decode step samples every row. The baseline,
measured in the same run, is the textbook sampler this project had before: one full descending sort
of each row serving top-k and top-p (:func:`full_sort_sample`, kept here as the reference). Part 1
times ``sample_batch`` on ``--rows`` rows of logits at the bench model's vocabulary (49,152) and at
Llama 3's (128,256), for temperature only, top-k 50, top-p 0.9 and both, on peaked logits (a trained
model's shape: a few hundred plausible tokens) and flat ones (the random-weight model's shape, whose
top-p nucleus is wider than the sampler's search and takes its full-sort fallback). Part 2 runs the
16-stream decode of ``bench.inference_decode`` sampled at temperature 0.7 with the engine's sampler
and with the reference swapped in, in alternating rounds, and prints the ratio of aggregate tok/s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bench.inference_common import THREADS, bench_model, machine_note, prompts
from services.inference.core import engine as engine_module
from services.inference.core.engine import EngineConfig, GenerationEngine
from services.inference.core.generator import DecoderModel
from services.inference.core.gqa_graph import ATTENTION_KIND
from services.inference.core.sampling import SamplingParams, make_rng, sample_batch

Sampler = Callable[
    [np.ndarray, Sequence[Sequence[int]], Sequence[SamplingParams], Sequence[np.random.Generator]], np.ndarray
]


def full_sort_sample(
    logits: np.ndarray,
    token_ids: Sequence[Sequence[int]],
    params: Sequence[SamplingParams],
    rngs: Sequence[np.random.Generator],
) -> np.ndarray:
    """The baseline: greedy rows by argmax, every other row sorted in full (no repetition penalty)."""
    scores = np.asarray(logits, dtype=np.float32)
    vocab = scores.shape[1]
    out: np.ndarray = np.argmax(scores, axis=-1).astype(np.int64)
    for b, p in enumerate(params):
        if p.greedy:
            continue
        scaled = scores[b] / np.float32(p.temperature)
        order = np.argsort(-scaled, kind="stable")
        ranked = scaled[order]
        if 0 < p.top_k < vocab:
            ranked[p.top_k :] = -np.inf
        probs = np.exp(ranked - ranked[0])
        probs /= probs.sum()
        keep = (np.cumsum(probs) - probs < p.top_p) | (np.arange(vocab) == 0)
        probs = np.where(keep, probs, 0.0)
        cdf = np.cumsum(probs)
        pick = min(int(np.searchsorted(cdf, rngs[b].random() * cdf[-1], side="right")), vocab - 1)
        while probs[pick] == 0.0 and pick > 0:
            pick -= 1
        out[b] = order[pick]
    return out


def logits_rows(rows: int, vocab: int, shape: str, seed: int = 0) -> np.ndarray:
    """``peaked``: a few hundred tokens within a few logits of the top; ``flat``: a random model's."""
    rng = np.random.default_rng(seed)
    if shape == "flat":
        return (rng.standard_normal((rows, vocab)) * 0.5).astype(np.float32)
    ranks = rng.permuted(np.tile(np.arange(1, vocab + 1, dtype=np.float64), (rows, 1)), axis=1)
    return (-2.0 * np.log(ranks) + rng.standard_normal((rows, vocab)) * 0.3).astype(np.float32)


MODES: dict[str, dict[str, Any]] = {
    "temperature 0.7": dict(temperature=0.7),
    "top-k 50": dict(temperature=0.7, top_k=50),
    "top-p 0.9": dict(temperature=0.7, top_p=0.9),
    "top-k 50 + top-p 0.9": dict(temperature=0.7, top_k=50, top_p=0.9),
}


def time_sampler(
    sampler: Sampler, logits: np.ndarray, params: list[SamplingParams], repeats: int = 7
) -> float:
    """Median ms of one call over ``logits`` (fresh generators each call)."""
    history = [[1, 2, 3]] * len(params)
    times = []
    for _ in range(repeats):
        rngs = [make_rng(p) for p in params]
        start = time.perf_counter()
        sampler(logits, history, params, rngs)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def engine_rate(model: DecoderModel, n: int, new: int, sampler: Sampler) -> float:
    """Aggregate new tok/s of ``n`` sampled streams (256-token prompts) with ``sampler`` in the engine."""
    engine_module.sample_batch = sampler  # the engine module's own reference, as the engine calls it
    try:
        engine = GenerationEngine(
            model, EngineConfig(max_batch=n, max_seq_len=256 + new + 1, kv_cache_bytes=0, max_queue=n)
        )
        engine.start()
        params = [SamplingParams(max_tokens=new, temperature=0.7, seed=i) for i in range(n)]
        start = time.perf_counter()
        handles = [
            engine.generate_blocking(p, params[i], lambda e: None)
            for i, p in enumerate(prompts(n, 256, seed=n))
        ]
        for h in handles:
            h.done.wait()
        elapsed = time.perf_counter() - start
        engine.stop()
        return n * new / elapsed
    finally:
        engine_module.sample_batch = sample_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="alternating engine rounds per sampler")
    args = parser.parse_args()
    print(f"machine: {machine_note()}")
    print(f"part 1: sample_batch on {args.rows} rows, median ms per call (engine's sampler vs full sort)")
    for vocab in (49152, 128256):
        for shape in ("peaked", "flat"):
            logits = logits_rows(args.rows, vocab, shape)
            for name, kwargs in MODES.items():
                params = [SamplingParams(seed=i, **kwargs) for i in range(args.rows)]
                ours = time_sampler(sample_batch, logits, params)
                base = time_sampler(full_sort_sample, logits, params)
                print(
                    f"  vocab {vocab:6d} {shape:6s} {name:22s}: ours {ours:7.2f} ms, full sort {base:7.2f} ms"
                    f" -> {base / ours:5.1f}x faster",
                    flush=True,
                )
    model = DecoderModel(bench_model(ATTENTION_KIND), intra_op_num_threads=THREADS)
    engine_rate(model, 1, 2, sample_batch)  # warm-up
    ours_rates, base_rates = [], []
    print(f"part 2: {args.streams} streams, 256-token prompts, {args.new} new tokens at temperature 0.7")
    for k in range(args.repeat):
        ours_rates.append(engine_rate(model, args.streams, args.new, sample_batch))
        base_rates.append(engine_rate(model, args.streams, args.new, full_sort_sample))
        print(
            f"  round {k + 1}: engine sampler {ours_rates[-1]:6.1f} tok/s, full-sort sampler "
            f"{base_rates[-1]:6.1f} tok/s -> {ours_rates[-1] / base_rates[-1]:4.2f}x; {machine_note()}",
            flush=True,
        )
    ratio = statistics.median(o / b for o, b in zip(ours_rates, base_rates, strict=True))
    print(f"median over {args.repeat} rounds: {ratio:.2f}x aggregate tok/s with the engine's sampler")


if __name__ == "__main__":
    main()
