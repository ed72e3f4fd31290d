"""Writing a load-test report: JSON, latency histogram and timeline plot, and live progress lines."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from services.loadtest.runner import LoadConfig
from services.loadtest.stats import Summary, TurnResult, percentile


class LiveProgress:
    """Prints a progress line at most once a second (overwriting itself on a terminal)."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self._out = out
        self._tty = out.isatty()
        self._t0 = time.monotonic()
        self._last = 0.0
        self._results: list[TurnResult] = []

    def __call__(self, result: TurnResult) -> None:
        self._results.append(result)
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            self._print(now)

    def _print(self, now: float) -> None:
        done = self._results
        ok = [r for r in done if r.code == "OK"]
        errors = len(done) - len(ok)
        p50 = percentile([r.e2e_s for r in ok], 50)
        ttft = percentile([r.ttft_s for r in ok if r.ttft_s is not None], 50)
        elapsed = now - self._t0
        line = (
            f"[{elapsed:6.1f}s] turns {len(done):5d}  ok {len(ok):5d}  errors {errors:4d}  "
            f"{len(ok) / max(elapsed, 1e-9):6.2f} turns/s  "
            f"ttft p50 {_ms(ttft)}  e2e p50 {_ms(p50)}"
        )
        self._out.write(("\r" + line) if self._tty else (line + "\n"))
        self._out.flush()

    def finish(self) -> None:
        """End the live line."""
        self._print(time.monotonic())
        if self._tty:
            self._out.write("\n")


def _ms(value: float | None) -> str:
    return "   n/a" if value is None else f"{value * 1000:6.0f}ms"


def format_summary(summary: Summary) -> str:
    """Human-readable summary, with what ghz would call the same numbers."""
    lines = [
        f"turns: {summary.turns} ({summary.ok} ok) in {summary.wall_s:.1f}s = "
        f"{summary.turns_per_s:.2f} turns/s, "
        f"{summary.tokens_per_s:.1f} generated tokens/s",
        "time to first token: " + "  ".join(f"{k} {_ms(v)}" for k, v in summary.ttft_s.items()),
        "end to end:          " + "  ".join(f"{k} {_ms(v)}" for k, v in summary.e2e_s.items()),
        "kv cache hit rate:   "
        + ("n/a" if summary.cache_hit_rate is None else f"{summary.cache_hit_rate:.1%} of prompt tokens"),
        "outcomes:            " + (", ".join(f"{k} {v}" for k, v in summary.outcomes.items()) or "none"),
        "errors by status:    " + (", ".join(f"{k} {v}" for k, v in summary.errors.items()) or "none"),
    ]
    return "\n".join(lines)


def write_report(
    out_dir: Path, cfg: LoadConfig, results: Sequence[TurnResult], summary: Summary
) -> dict[str, Path]:
    """Write ``load.json``, ``latency.png`` (histograms) and ``timeline.png``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render straight to files
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "load.json",
        "histogram": out_dir / "latency.png",
        "timeline": out_dir / "timeline.png",
    }
    config = {k: (list(v) if isinstance(v, tuple | list) else v) for k, v in asdict(cfg).items()}
    paths["json"].write_text(
        json.dumps(
            {"config": config, "summary": summary.to_dict(), "turns": [asdict(r) for r in results]}, indent=2
        )
    )
    ok = [r for r in results if r.code == "OK"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, values, title in (
        (axes[0], [r.ttft_s * 1000 for r in ok if r.ttft_s is not None], "time to first token (ms)"),
        (axes[1], [r.e2e_s * 1000 for r in ok], "end-to-end latency (ms)"),
    ):
        ax.hist(values or [0], bins=30, color="#4477aa")
        ax.set_title(title)
        ax.set_ylabel("turns")
    fig.tight_layout()
    fig.savefig(paths["histogram"], dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4))
    ax.scatter([r.started_at for r in ok], [r.e2e_s * 1000 for r in ok], s=8, label="ok")
    bad = [r for r in results if r.code != "OK"]
    if bad:
        ax.scatter([r.started_at for r in bad], [r.e2e_s * 1000 for r in bad], s=12, c="red", label="error")
    ax.set_xlabel("turn start (s since run start)")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths["timeline"], dpi=80)
    plt.close(fig)
    return paths
