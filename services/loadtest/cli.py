"""The load command: ``avatar load`` and ``python -m services.loadtest``."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

from services.common import config
from services.loadtest.report import LiveProgress, format_summary, write_report
from services.loadtest.runner import LoadConfig, run_load
from services.loadtest.stats import summarize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The load command's options (shared by ``avatar load``)."""
    parser.add_argument("--target", default=None, help="gateway host:port (default AVATAR_GATEWAY_TARGET)")
    parser.add_argument("--creator", action="append", required=True, help="creator id; repeat for several")
    parser.add_argument("--fans", type=int, default=8, help="concurrent fans")
    parser.add_argument("--turns", type=int, default=6, help="turns per fan (0 = until --duration ends)")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds to keep starting turns")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="turn starts per second overall (0 = closed loop)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="deadline per turn, seconds")
    parser.add_argument("--out", type=Path, default=Path("load-report"), help="where to write JSON and PNGs")


def run(args: argparse.Namespace) -> int:
    """Run a load test from parsed arguments; exit code 1 when any turn failed."""
    cfg = LoadConfig(
        target=args.target or config.service_target("gateway"),
        creators=tuple(args.creator),
        fans=args.fans,
        turns_per_fan=args.turns,
        duration_s=args.duration,
        rate=args.rate,
        timeout_s=args.timeout,
        run_id=f"load{int(time.time())}",
    )
    live = LiveProgress()
    results, wall = asyncio.run(run_load(cfg, live))
    live.finish()
    summary = summarize(results, wall)
    print(format_summary(summary))
    paths = write_report(args.out, cfg, results, summary)
    print("report: " + ", ".join(str(p) for p in paths.values()))
    return 0 if not summary.errors else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avatar load", description="Simulated fans against a gateway.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
