"""Aggregate decode throughput of the continuous-batching engine vs a plain loop and onnxruntime-genai.

    .venv/bin/python -m bench.inference_decode [--streams 1 4 16 32] [--new 128] [--prompt 256]
        [--no-genai] [--genai-modes generator generator-gemm engine]
        [--genai-python .avatar/bench-venv/bin/python]

For each concurrency, N requests (``--prompt``-token prompts, ``--new`` new tokens each, greedy) are
submitted at once to a :class:`GenerationEngine` (``max_batch = N``) and timed from submission to
the last token: aggregate new tokens/s, end to end (prefill included). Baseline (a), measured in the
same run: the same kind of requests one after another through the plain decode loop
(``DecoderModel.generate`` on the standard graph); its rate does not depend on N, so it is measured
on ``--baseline-requests`` requests. Also prints the compute roofline (2 x params FLOPs per token vs
a numpy matmul peak measured now) and the fraction reached.

Baseline (b), measured in the same run at every N: onnxruntime-genai on the same weights (written as a
Hugging Face checkpoint and converted by genai's own builder, :mod:`bench.genai_baseline`), the same
N prompts and N x ``--new`` greedy tokens with EOS masked, 2 intra-op threads, timed end to end in a
subprocess of the bench venv. Its configurations (``--genai-modes``): one batched ``og.Generator``
of batch size N (last-token-only LM head in prefill), the same on onnxruntime's GEMM attention
kernel (``generator-gemm``: the kernel our engine's sessions choose), and the ``og.Engine`` request
API (on CPU a static batch scheduler); the best one is (b). The engine's first request's tokens are compared
with genai's (same weights, both greedy). The bench venv is optional: create it with
``python3.11 -m venv .avatar/bench-venv && .avatar/bench-venv/bin/pip install torch==2.13.0
sentence-transformers onnxruntime-genai==0.18.0 onnx_ir==1.1.0``; without it (or with
``--no-genai``) (b) is skipped and the output says so.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.genai_baseline import BENCH_PYTHON, MODES, VENV_HELP, GenaiRun, genai_model, measure, missing
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


def run_engine(model: DecoderModel, n: int, prompt_len: int, new: int) -> tuple[float, float, list[int]]:
    """(aggregate new tok/s end to end, mean TTFT in s, the first request's tokens) for ``n`` requests."""
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
    first: list[int] = []
    start = time.perf_counter()
    handles = []
    for i, p in enumerate(prompts(n, prompt_len, seed=n)):

        def on_event(e: GenerationEvent, i: int = i) -> None:
            counts[i] += 1
            if i == 0 and e.token_id is not None:
                first.append(e.token_id)
            if counts[i] == 1:
                firsts.append(time.perf_counter() - start)

        handles.append(engine.generate_blocking(p, params, on_event))
    for h in handles:
        h.done.wait()
    elapsed = time.perf_counter() - start
    engine.stop()
    assert sum(counts) == n * new, counts
    return n * new / elapsed, sum(firsts) / len(firsts), first


def run_plain(model: DecoderModel, requests: int, prompt_len: int, new: int) -> float:
    """New tok/s of requests run one after another through the plain loop."""
    params = SamplingParams(max_tokens=new, temperature=0.0)
    start = time.perf_counter()
    total = 0
    for p in prompts(requests, prompt_len, seed=99):
        total += sum(1 for _ in model.generate(p, params))
    return total / (time.perf_counter() - start)


def run_genai(python: Path, modes: list[str], n: int, prompt_len: int, new: int) -> list[GenaiRun]:
    """Baseline (b) at ``n`` streams in each of ``modes``: the same prompts as :func:`run_engine`."""
    batch = prompts(n, prompt_len, seed=n)
    return [measure(python, genai_model(python, mode), batch, new, mode) for mode in modes]


def agreement(ours: list[int], theirs: list[int]) -> int:
    """Length of the common prefix of two token lists."""
    k = 0
    while k < min(len(ours), len(theirs)) and ours[k] == theirs[k]:
        k += 1
    return k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--prompt", type=int, default=256)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--baseline-requests", type=int, default=2)
    parser.add_argument("--no-genai", action="store_true", help="skip baseline (b), onnxruntime-genai")
    parser.add_argument("--genai-modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--genai-python", type=Path, default=BENCH_PYTHON, help="the bench venv's python")
    args = parser.parse_args()

    genai_skipped = "--no-genai" if args.no_genai else missing(args.genai_python)
    if genai_skipped is None:
        for mode in args.genai_modes:  # build (once, cached) before anything is timed
            genai_model(args.genai_python, mode)

    gqa = DecoderModel(bench_model(ATTENTION_KIND), intra_op_num_threads=THREADS)
    standard = DecoderModel(bench_model("standard"), intra_op_num_threads=THREADS)
    print(f"machine: {machine_note()}")
    plain = run_plain(standard, args.baseline_requests, args.prompt, args.new)
    print(f"(a) plain decode loop, one request at a time: {plain:.1f} new tok/s end to end")
    if genai_skipped is not None:
        print(f"(b) onnxruntime-genai NOT RUN ({genai_skipped}); create the bench venv with: {VENV_HELP}")
    run_engine(gqa, 1, args.prompt, 2)  # warm-up (genai's driver warms up the same way)
    results = {}
    table = []
    for n in args.streams:
        rate, ttft, ours = run_engine(gqa, n, args.prompt, args.new)
        results[n] = rate
        line = f"engine, {n:2d} streams: {rate:7.1f} new tok/s aggregate  ({rate / plain:5.2f}x (a))"
        row = f"| {n:2d} | {rate:7.1f} | {rate / plain:5.2f}x |"
        if genai_skipped is None:
            runs = run_genai(args.genai_python, args.genai_modes, n, args.prompt, args.new)
            best = max(runs, key=lambda r: r.rate)
            detail = ", ".join(f"{r.mode} {r.rate:.1f}" for r in runs)
            same = min(agreement(ours, r.first) for r in runs)
            line += (
                f"  (b) genai {best.rate:7.1f} ({best.mode}; {detail})  {rate / best.rate:5.2f}x (b)"
                f"  [first {same}/{args.new} tokens of request 0 identical]"
            )
            row += f" {best.rate:7.1f} ({best.mode}) | {rate / best.rate:5.2f}x |"
        print(line + f"  mean TTFT {ttft:.2f}s", flush=True)
        table.append(row)
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
    print(f"\nsummary (new tok/s aggregate, end to end; (a) {plain:.1f} tok/s)")
    header = "| N | engine | engine/(a) |"
    if genai_skipped is None:
        header += " (b) genai | engine/(b) |"
    else:
        header += "  (b) not run"
    print(header)
    for row in table:
        print(row)
    print(f"machine after: {machine_note()}")


if __name__ == "__main__":
    main()
