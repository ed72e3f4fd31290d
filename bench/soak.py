"""Soak: 64 concurrent fans x 10 turns through the full stack (five processes) on the tiny model.

Usage: ``.venv/bin/python -m bench.soak [--fans 64] [--turns 10] [--out bench/results/soak]``

Starts embedded Postgres and Redis (or uses AVATAR_DATABASE_URL / AVATAR_REDIS_URL), the five
services as separate processes, ingests the two sample creators, then runs the load client closed
loop. The baseline printed next to it is one fan alone through the same stack in the same run, so
the ratio shows what concurrency costs per turn. Exits non-zero if any turn failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from avatar.v1 import policy_service_pb2 as pol_pb
from avatar.v1 import policy_service_pb2_grpc as pol_grpc
from services.cli.channels import cli_channel
from services.cli.main import ensure_models, ingest_path
from services.cli.stack import SERVICES, Stack, StackSettings, free_port
from services.loadtest.report import format_summary, write_report
from services.loadtest.runner import LoadConfig, run_load
from services.loadtest.stats import summarize

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "creators"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fans", type=int, default=64)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("bench/results/soak"))
    args = parser.parse_args()
    model_dir = Path(os.environ.get("AVATAR_MODEL_DIR", ".avatar/models"))
    ensure_models(model_dir)
    settings = StackSettings(
        data_dir=Path(tempfile.mkdtemp(prefix="avsoak", dir="/tmp")),
        model_dir=model_dir,
        database_url=os.environ.get("AVATAR_DATABASE_URL"),
        redis_url=os.environ.get("AVATAR_REDIS_URL"),
        ports={name: free_port() for name in SERVICES},
        quiet=True,
        extra_env={"AVATAR_GATEWAY_MAX_TOKENS": "32"},
    )
    with Stack(settings) as stack:
        creators = ("maya-bakes", "coach-rio")
        with cli_channel(stack.target("policy")) as ch:
            for creator in creators:
                # Generous creator-wide limits: the soak measures the stack, not the rate limiter.
                limits = pol_pb.RateLimits(creator=pol_pb.RateLimit(per_minute=100_000, burst=10_000))
                controls = pol_pb.Controls(creator_id=creator, rate_limits=limits)
                pol_grpc.PolicyServiceStub(ch).UpdateControls(
                    pol_pb.UpdateControlsRequest(controls=controls), timeout=10
                )
        for creator in creators:
            ingest_path(stack.target("ingest"), creator, SAMPLES / creator)
        gateway = stack.target("gateway")
        solo_cfg = LoadConfig(
            target=gateway, creators=creators, fans=1, turns_per_fan=args.turns, run_id="solo"
        )
        solo = summarize(*asyncio.run(run_load(solo_cfg)))
        cfg = LoadConfig(
            target=gateway, creators=creators, fans=args.fans, turns_per_fan=args.turns, run_id="soak"
        )
        results, wall = asyncio.run(run_load(cfg))
        summary = summarize(results, wall)
    print(f"--- baseline: 1 fan x {args.turns} turns ---")
    print(format_summary(solo))
    print(f"--- soak: {args.fans} fans x {args.turns} turns ---")
    print(format_summary(summary))
    for q in ("p50", "p99"):
        base, soak = solo.e2e_s[q], summary.e2e_s[q]
        if base and soak:
            print(f"e2e {q}: soak / solo = {soak / base:.2f}x")
    print(
        f"throughput: soak {summary.turns_per_s:.2f} turns/s vs solo {solo.turns_per_s:.2f} turns/s "
        f"= {summary.turns_per_s / max(solo.turns_per_s, 1e-9):.2f}x"
    )
    paths = write_report(args.out, cfg, results, summary)
    print("report:", ", ".join(str(p) for p in paths.values()))
    return 0 if not summary.errors and not solo.errors else 1


if __name__ == "__main__":
    sys.exit(main())
