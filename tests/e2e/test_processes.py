"""Services as separate processes: `python -m services.<name>` and the `avatar up` stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from avatar.v1 import conversation_service_pb2 as conv_pb
from avatar.v1 import conversation_service_pb2_grpc as conv_grpc
from services.cli.conversation import converse
from services.cli.main import ingest_path
from services.cli.stack import SERVICES, Stack, StackSettings, free_port
from tests.e2e.conftest import SAMPLES

pytestmark = pytest.mark.timeout(240)


def _wait_serving(target: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with grpc.insecure_channel(target) as ch:
            try:
                reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
        time.sleep(0.2)
    raise TimeoutError(target)


def test_a_service_runs_alone_and_drains_on_sigterm(database_url: str) -> None:
    port, metrics_port = free_port(), free_port()
    env = dict(
        os.environ,
        AVATAR_DATABASE_URL=database_url,
        AVATAR_MEMORY_PORT=str(port),
        AVATAR_MEMORY_METRICS_PORT=str(metrics_port),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.memory"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        _wait_serving(f"127.0.0.1:{port}")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
            exposition = reply.read().decode()
        assert "avatar_rpc_requests_total" in exposition and 'service="memory"' in exposition
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode()
    assert b"draining" in out and b"memory stopped" in out


def test_bad_configuration_fails_fast_with_a_clear_message() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AVATAR_DATABASE_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "services.policy"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    assert "AVATAR_DATABASE_URL is required" in proc.stderr


def test_the_stack_starts_five_processes_and_serves_a_turn(
    model_dir: Path, server_url: str, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = StackSettings(
        data_dir=tmp_path / "data",
        model_dir=model_dir,
        database_url=database_url,
        redis_url=redis_url,
        ports={name: free_port() for name in SERVICES},
        quiet=True,
    )
    with Stack(settings) as stack:
        assert set(stack.procs) == set(SERVICES)
        assert all(p.poll() is None for p in stack.procs.values())
        job = ingest_path(stack.target("ingest"), "rio", SAMPLES / "coach-rio")
        assert job.chunks_inserted > 0
        with grpc.insecure_channel(stack.target("gateway")) as ch:
            _, end = converse(
                conv_grpc.ConversationServiceStub(ch), "rio", "fan", "", "How do I start with kettlebells?"
            )
        assert end.outcome == conv_pb.REPLY_OUTCOME_ANSWERED
        procs = list(stack.procs.values())
    assert all(p.returncode == 0 for p in procs), [p.returncode for p in procs]
