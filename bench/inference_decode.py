"""Aggregate decode throughput of the continuous-batching engine vs a plain decode loop.

    .venv/bin/python -m bench.inference_decode [--streams 1 4 16 32] [--new 128] [--prompt 256]

For each concurrency, N requests (``--prompt``-token prompts, ``--new`` new tokens each, greedy) are
submitted at once to a :class:`GenerationEngine` (``max_batch = N``) and timed from submission to
the last token: aggregate new tokens/s, end to end (prefill included). Baseline (a), measured in the
same run: the same kind of requests one after another through the plain decode loop
(``DecoderModel.generate`` on the standard graph); its rate does not depend on N, so it is measured
on ``--baseline-requests`` requests. Also prints the compute roofline (2 x params FLOPs per token vs
a numpy matmul peak measured now) and the fraction reached.

onnxruntime-genai (baseline b) is not run by this script (see the report / docs/adr-inference.md).
"""

from __future__ import annotations

import argparse
import time

from bench.inference_common import (
    THREADS,
    bench_model,
    machine_note,
    matmul_peak_gflops,
    param_count,
    prompts,
)
from services.inference.core.engine import EngineConfig, GenerationEngine
from services.inference.core.generator import DecoderModel, GenerationEvent
from services.inference.core.gqa_graph import ATTENTION_KIND
from services.inference.core.sampling import SamplingParams


def run_engine(model: DecoderModel, n: int, prompt_len: int, new: int) -> tuple[float, float]:
    """(aggregate new tok/s end to end, mean time to first token in s) for ``n`` concurrent requests."""
    engine = GenerationEngine(
        model,
        EngineConfig(
            max_batch=n, max_seq_len=prompt_len + new + 1, prefill_chunk=512, kv_cache_bytes=0, max_queue=n
        ),
    )
    engine.start()
    params = SamplingParams(max_tokens=new, temperature=0.0)
    firsts: list[float] = []
    counts = [0] * n
    start = time.perf_counter()
    handles = []
    for i, p in enumerate(prompts(n, prompt_len, seed=n)):

        def on_event(e: GenerationEvent, i: int = i) -> None:
            counts[i] += 1
            if counts[i] == 1:
                firsts.append(time.perf_counter() - start)

        handles.append(engine.generate_blocking(p, params, on_event))
    for h in handles:
        h.done.wait()
    elapsed = time.perf_counter() - start
    engine.stop()
    assert sum(counts) == n * new, counts
    return n * new / elapsed, sum(firsts) / len(firsts)


def run_plain(model: DecoderModel, requests: int, prompt_len: int, new: int) -> float:
    """New tok/s of requests run one after another through the plain loop."""
    params = SamplingParams(max_tokens=new, temperature=0.0)
    start = time.perf_counter()
    total = 0
    for p in prompts(requests, prompt_len, seed=99):
        total += sum(1 for _ in model.generate(p, params))
    return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--prompt", type=int, default=256)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--baseline-requests", type=int, default=2)
    args = parser.parse_args()

    gqa = DecoderModel(bench_model(ATTENTION_KIND), intra_op_num_threads=THREADS)
    standard = DecoderModel(bench_model("standard"), intra_op_num_threads=THREADS)
    print(f"machine: {machine_note()}")
    plain = run_plain(standard, args.baseline_requests, args.prompt, args.new)
    print(f"(a) plain decode loop, one request at a time: {plain:.1f} new tok/s end to end")
    results = {}
    for n in args.streams:
        rate, ttft = run_engine(gqa, n, args.prompt, args.new)
        results[n] = rate
        print(
            f"engine, {n:2d} streams: {rate:7.1f} new tok/s aggregate  "
            f"({rate / plain:5.2f}x (a))  mean TTFT {ttft:.2f}s"
        )
    peak = matmul_peak_gflops()
    flops_per_token = 2 * param_count()
    ceiling = peak * 1e9 / flops_per_token
    print(
        f"roofline: {param_count() / 1e6:.1f}M params -> {flops_per_token / 1e9:.3f} GFLOP/token; "
        f"numpy fp32 matmul peak {peak:.1f} GFLOP/s -> ceiling {ceiling:.0f} tok/s"
    )
    top = max(args.streams)
    processed = results[top] * (args.prompt + args.new) / args.new  # prompt tokens are computed too
    print(
        f"fraction of the ceiling at {top} streams: {results[top] / ceiling:.2f} counting new tokens, "
        f"{processed / ceiling:.2f} counting every token computed (prompt + new)"
    )
    print(f"machine after: {machine_note()}")


if __name__ == "__main__":
    main()
