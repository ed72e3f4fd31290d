"""The bundled load client against the in-process suite."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from avatar.v1 import ingest_service_pb2 as ing_pb
from avatar.v1 import ingest_service_pb2_grpc as ing_grpc
from services.loadtest.report import format_summary, write_report
from services.loadtest.runner import LoadConfig, run_load
from services.loadtest.stats import TurnResult, percentile, summarize
from tests.e2e.conftest import SAMPLES, Suite

pytestmark = pytest.mark.timeout(300)


def test_percentiles_and_summary_are_exact() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    results = [
        TurnResult(
            0.0,
            "OK",
            0.1,
            0.5,
            completion_tokens=10,
            prompt_tokens=100,
            cached_prompt_tokens=50,
            outcome="ANSWERED",
        ),
        TurnResult(
            0.2,
            "OK",
            0.3,
            0.7,
            completion_tokens=30,
            prompt_tokens=100,
            cached_prompt_tokens=0,
            outcome="REFUSED",
        ),
        TurnResult(0.4, "UNAVAILABLE", None, 0.05),
    ]
    s = summarize(results, wall_s=2.0)
    assert (s.turns, s.ok, s.errors) == (3, 2, {"UNAVAILABLE": 1})
    assert s.turns_per_s == 1.0 and s.tokens_per_s == 20.0
    assert s.cache_hit_rate == 0.25
    assert s.e2e_s["p50"] == pytest.approx(0.6)
    assert s.outcomes == {"ANSWERED": 1, "REFUSED": 1}
    assert "UNAVAILABLE 1" in format_summary(s)


def test_config_refuses_a_run_that_would_never_stop() -> None:
    with pytest.raises(ValueError, match="never stop"):
        LoadConfig(target="x", creators=("a",), turns_per_fan=0, duration_s=0)


async def test_load_run_reports_turns_latencies_and_errors(suite: Suite, tmp_path: Path) -> None:
    creator = f"rio-{uuid.uuid4().hex[:6]}"
    async with suite.channel("ingest") as ch:
        await ing_grpc.IngestServiceStub(ch).IngestPath(
            ing_pb.IngestPathRequest(creator_id=creator, path=str(SAMPLES / "coach-rio")), timeout=120
        )
    cfg = LoadConfig(target=suite.target("gateway"), creators=(creator, "bad id!"), fans=4, turns_per_fan=2)
    seen: list[TurnResult] = []
    results, wall = await run_load(cfg, seen.append)
    assert len(results) == len(seen) == 8
    summary = summarize(results, wall)
    # Fans 0 and 2 talk to the real creator, 1 and 3 to an invalid id: errors are counted by code.
    assert summary.ok == 4 and summary.errors == {"INVALID_ARGUMENT": 4}
    assert all(r.ttft_s is not None and r.ttft_s <= r.e2e_s for r in results if r.code == "OK")
    assert summary.tokens_per_s > 0
    paths = write_report(tmp_path, cfg, results, summary)
    report = json.loads(paths["json"].read_text())
    assert report["summary"]["ok"] == 4 and len(report["turns"]) == 8
    for key in ("histogram", "timeline"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
