"""Aggregate decode throughput of the continuous-batching engine vs a plain loop and onnxruntime-genai.

    .venv/bin/python -m bench.inference_decode [--streams 1 4 16 32] [--new 128] [--prompt 256]
        [--repeat 1] [--no-genai] [--genai-modes generator generator-gemm engine]
        [--genai-python .avatar/bench-venv/bin/python]

For each concurrency, N requests (``--prompt``-token prompts, ``--new`` new tokens each, greedy) are
submitted at once to a :class:`GenerationEngine` (``max_batch = N``) and timed from submission to
the last token: aggregate new tokens/s, end to end (prefill included). Baseline (a), measured in the
same run: the same kind of requests one after another through the plain decode loop
(``DecoderModel.generate`` on the standard graph); its rate does not depend on N, so it is measured
on ``--baseline-requests`` requests. Also prints the compute roofline (2 x params FLOPs per token vs
a numpy matmul peak measured now) and the fraction reached.

Each round also times the kernels the schedule is made of, in the same minute: one ``--prompt``-token
prefill call ``P`` and an N-row decode step ``sN`` at the mean context; no schedule of these calls
can beat every prompt prefilled once and every later token of the batch in full N-row steps, so the
engine's rate is bounded by ``N new / (N P + (new - 1) sN)``; the bench prints that bound, what it is
in multiples of (a), and the engine's share of it. The 1-row step ``s1`` gives the memory bandwidth
that weight streaming gets (weights / s1): the plain loop is bound by it, the N-row step much less.

This machine's speed swings by 2x and more within minutes (other tenants of the host), so every
measurement is taken in rounds: ``--repeat K`` runs, for each N, K rounds of (a), the engine and (b)
back to back, prints each round's ratios (the three measured within a minute of each other) and the
median over rounds of each ratio, which is the number to report.

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
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.genai_baseline import BENCH_PYTHON, MODES, VENV_HELP, GenaiRun, genai_model, measure, missing
from bench.inference_common import (
    SMOLLM,
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
from services.inference.core.runner import BlockPool, SlotRunner
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


@dataclass(frozen=True)
class Kernels:
    """Median times of the model calls a schedule is made of, measured now."""

    prefill: float
    """One ``prompt``-token prefill call (s)."""
    step1: float
    """A 1-row decode step at the mean context (s)."""
    step_n: float
    """An N-row decode step at the mean context (s)."""

    def ceiling(self, n: int, new: int) -> float:
        """Most new tok/s any schedule of these calls could reach for ``n`` requests of ``new`` tokens."""
        return n * new / (n * self.prefill + (new - 1) * self.step_n)


def time_kernels(model: DecoderModel, n: int, prompt_len: int, new: int, repeats: int = 5) -> Kernels:
    """Time a prefill and 1-row / N-row decode steps on the engine's own runner and buffers."""
    runner = SlotRunner(model.session, model.config, model.kv_dtype, n, prompt_len + new + 1)
    ids = np.array(prompts(1, prompt_len, seed=7), dtype=np.int64)
    context = prompt_len + new // 2
    # Real data in every row up to the context, copied in as cached blocks are: untouched zero pages
    # would make the attention reads look free.
    blocks = min(-(-(context + 1) // 16), runner.max_seq_len // 16)
    pool = BlockPool(model.config, blocks, 16, model.kv_dtype)
    pool.data[:] = np.random.default_rng(0).standard_normal(pool.data.shape).astype(model.kv_dtype)
    for row in range(n):
        runner.load_blocks(row, pool, list(range(blocks)))

    def median_time(call: Callable[[], object], count: int) -> float:
        times = []
        for _ in range(count):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    prefill = median_time(lambda: runner.run(0, ids, [prompt_len - 1]), 3)
    tokens = np.full((n, 1), 100, dtype=np.int64)
    step1 = median_time(lambda: runner.run(0, tokens[:1], [context]), repeats)
    step_n = median_time(lambda: runner.run(0, tokens, [context] * n), repeats)
    return Kernels(prefill, step1, step_n)


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


@dataclass(frozen=True)
class Round:
    """One round at one N: (a), the engine and (b), measured back to back."""

    plain: float
    engine: float
    genai: GenaiRun | None


@dataclass(frozen=True)
class Medians:
    """Medians over the rounds at one N (each ratio is the median of the per-round ratios)."""

    plain: float
    engine: float
    vs_plain: float
    genai: float | None
    genai_mode: str | None
    vs_genai: float | None


def median_round(rounds: list[Round]) -> Medians:
    """Per-round ratios, then medians: a slow minute slows a round's pair together, not one side."""
    genai = [(r.engine, r.genai) for r in rounds if r.genai is not None]
    return Medians(
        plain=statistics.median(r.plain for r in rounds),
        engine=statistics.median(r.engine for r in rounds),
        vs_plain=statistics.median(r.engine / r.plain for r in rounds),
        genai=statistics.median(g.rate for _, g in genai) if genai else None,
        genai_mode=Counter(g.mode for _, g in genai).most_common(1)[0][0] if genai else None,
        vs_genai=statistics.median(e / g.rate for e, g in genai) if genai else None,
    )


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
    parser.add_argument("--repeat", type=int, default=1, help="rounds per N; medians are reported")
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
    if genai_skipped is not None:
        print(f"(b) onnxruntime-genai NOT RUN ({genai_skipped}); create the bench venv with: {VENV_HELP}")
    run_engine(gqa, 1, args.prompt, 2)  # warm-up (genai's driver warms up the same way)
    weight_bytes = 4 * param_count()  # fp32, every weight streamed once per step
    results: dict[int, float] = {}
    plains: list[float] = []
    table = []
    for n in args.streams:
        rounds: list[Round] = []
        for k in range(args.repeat):
            plain = run_plain(standard, args.baseline_requests, args.prompt, args.new)
            rate, ttft, ours = run_engine(gqa, n, args.prompt, args.new)
            kernels = time_kernels(gqa, n, args.prompt, args.new)
            bound = kernels.ceiling(n, args.new)
            line = (
                f"engine, {n:2d} streams, round {k + 1}/{args.repeat}: {rate:7.1f} new tok/s aggregate; "
                f"(a) plain loop {plain:5.1f} -> {rate / plain:5.2f}x (a); kernels now: prefill "
                f"{kernels.prefill * 1e3:.0f} ms, step 1 row {kernels.step1 * 1e3:.1f} ms "
                f"({weight_bytes / kernels.step1 / 1e9:.1f} GB/s of weights), {n} rows "
                f"{kernels.step_n * 1e3:.1f} ms -> any schedule <= {bound:.1f} tok/s = "
                f"{bound / plain:.2f}x (a), engine at {rate / bound:.0%} of it"
            )
            best: GenaiRun | None = None
            if genai_skipped is None:
                runs = run_genai(args.genai_python, args.genai_modes, n, args.prompt, args.new)
                best = max(runs, key=lambda r: r.rate)
                detail = ", ".join(f"{r.mode} {r.rate:.1f}" for r in runs)
                same = min(agreement(ours, r.first) for r in runs)
                line += (
                    f"; (b) genai {best.rate:7.1f} ({best.mode}; {detail}) -> {rate / best.rate:5.2f}x (b)"
                    f"  [first {same}/{args.new} tokens of request 0 identical]"
                )
            print(line + f"; mean TTFT {ttft:.2f}s; {machine_note()}", flush=True)
            rounds.append(Round(plain, rate, best))
        med = median_round(rounds)
        results[n] = med.engine
        plains += [r.plain for r in rounds]
        row = f"| {n:2d} | {med.engine:7.1f} | {med.plain:5.1f} | {med.vs_plain:5.2f}x |"
        if med.vs_genai is not None:
            row += f" {med.genai:7.1f} ({med.genai_mode}) | {med.vs_genai:5.2f}x |"
        print(f"  median of {len(rounds)} round(s) at {n} streams: {row}", flush=True)
        table.append(row)
    peak = matmul_peak_gflops()
    flops_per_token = 2 * param_count()
    ceiling = peak * 1e9 / flops_per_token
    print(
        f"roofline: {param_count() / 1e6:.1f}M params -> {flops_per_token / 1e9:.3f} GFLOP/token; "
        f"numpy fp32 matmul peak {peak:.1f} GFLOP/s -> ceiling {ceiling:.0f} tok/s"
    )
    top = max(args.streams)
    # Prompt tokens skip the LM head (logits are computed for the last position only), so a request
    # costs prompt x (params - LM head) + new x params multiply-adds.
    head = SMOLLM.vocab_size * SMOLLM.hidden_size
    request_flops = 2 * (args.prompt * (param_count() - head) + args.new * param_count())
    fully_computed = peak * 1e9 / request_flops * args.new  # new tok/s if every FLOP ran at the peak
    print(
        f"fraction of the ceiling at {top} streams: {results[top] / ceiling:.2f} counting new tokens, "
        f"{results[top] / fully_computed:.2f} counting every FLOP computed (prompts without the LM head)"
    )
    mean_plain = statistics.mean(plains)
    print(
        f"compute bound on any engine (prompts + new tokens at the numpy peak, attention free): "
        f"{fully_computed:.0f} new tok/s = {fully_computed / mean_plain:.2f}x the mean (a) of this run"
    )
    print(
        f"\nsummary (new tok/s aggregate, end to end; medians over {args.repeat} round(s); "
        f"(a) {min(plains):.1f}-{max(plains):.1f} tok/s over its rounds)"
    )
    header = "| N | engine | (a) | engine/(a) |"
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
