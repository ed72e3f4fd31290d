"""A fan talks to a creator's avatar through the real path: five services, Postgres, Redis."""

from __future__ import annotations

import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from avatar.v1 import conversation_service_pb2 as conv_pb
from avatar.v1 import conversation_service_pb2_grpc as conv_grpc
from avatar.v1 import inference_service_pb2 as inf_pb
from avatar.v1 import inference_service_pb2_grpc as inf_grpc
from avatar.v1 import ingest_service_pb2 as ing_pb
from avatar.v1 import ingest_service_pb2_grpc as ing_grpc
from avatar.v1 import memory_service_pb2 as mem_pb
from avatar.v1 import memory_service_pb2_grpc as mem_grpc
from avatar.v1 import policy_service_pb2 as pol_pb
from avatar.v1 import policy_service_pb2_grpc as pol_grpc
from avatar.v1 import types_pb2
from tests.e2e.conftest import SAMPLES, Suite

pytestmark = pytest.mark.timeout(300)

SERVICE_NAMES = {
    "gateway": "avatar.v1.ConversationService",
    "ingest": "avatar.v1.IngestService",
    "memory": "avatar.v1.MemoryService",
    "policy": "avatar.v1.PolicyService",
    "inference": "avatar.v1.InferenceService",
}


def _creator(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _ingest(suite: Suite, creator: str, sample: str) -> ing_pb.Job:
    async with suite.channel("ingest") as ch:
        reply = await ing_grpc.IngestServiceStub(ch).IngestPath(
            ing_pb.IngestPathRequest(creator_id=creator, path=str(SAMPLES / sample)), timeout=300
        )
    return reply.job


async def _turn(
    suite: Suite, creator: str, fan: str, message: str, conversation_id: str = ""
) -> tuple[conv_pb.ReplyStart, list[str], conv_pb.ReplyEnd]:
    async with suite.channel("gateway") as ch:
        events = [
            e
            async for e in conv_grpc.ConversationServiceStub(ch).Converse(
                conv_pb.ConverseRequest(
                    creator_id=creator, fan_id=fan, message=message, conversation_id=conversation_id
                ),
                timeout=120,
            )
        ]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and set(kinds[1:-1]) <= {"delta"}
    return events[0].start, [e.delta.text for e in events[1:-1]], events[-1].end


async def _set_controls(suite: Suite, controls: pol_pb.Controls) -> pol_pb.Controls:
    async with suite.channel("policy") as ch:
        reply = await pol_grpc.PolicyServiceStub(ch).UpdateControls(
            pol_pb.UpdateControlsRequest(controls=controls), timeout=10
        )
    return reply.controls


@pytest.mark.parametrize("name", sorted(SERVICE_NAMES))
async def test_every_service_is_healthy_and_reflects_its_api(suite: Suite, name: str) -> None:
    async with suite.channel(name) as ch:
        health = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAMES[name]), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stream = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        listed = {s.name async for reply in stream for s in reply.list_services_response.service}
    assert {
        SERVICE_NAMES[name],
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= listed


async def test_ingest_reports_files_and_is_idempotent(suite: Suite) -> None:
    creator = _creator("maya")
    job = await _ingest(suite, creator, "maya-bakes")
    assert job.state == ing_pb.JOB_STATE_SUCCEEDED
    assert job.files_total == job.files_done == 3
    by_path = {f.path: f for f in job.files}
    assert by_path["posts.jsonl"].platform == types_pb2.PLATFORM_INSTAGRAM
    assert by_path["faq.md"].platform == types_pb2.PLATFORM_MARKDOWN
    assert all(not f.error for f in job.files)
    assert job.chunks_inserted > 40 and job.chunks_unchanged == 0
    again = await _ingest(suite, creator, "maya-bakes")
    assert again.chunks_inserted == 0
    assert again.chunks_unchanged == job.chunks_inserted
    async with suite.channel("ingest") as ch:
        fetched = await ing_grpc.IngestServiceStub(ch).GetJob(
            ing_pb.GetJobRequest(job_id=job.job_id), timeout=5
        )
        watched = [
            r.job
            async for r in ing_grpc.IngestServiceStub(ch).WatchJob(
                ing_pb.WatchJobRequest(job_id=job.job_id), timeout=5
            )
        ]
    assert fetched.job == job
    assert watched[-1].state == ing_pb.JOB_STATE_SUCCEEDED


async def test_a_turn_streams_a_grounded_reply_with_citations_and_disclosure(suite: Suite) -> None:
    creator = _creator("maya")
    await _ingest(suite, creator, "maya-bakes")
    start, deltas, end = await _turn(suite, creator, "fan-1", "Tell me about Doughlores, your starter!")
    assert start.conversation_id
    assert start.disclosure, "the first reply of a conversation carries the AI disclosure"
    assert start.test_model is True
    assert end.outcome == conv_pb.REPLY_OUTCOME_ANSWERED
    assert end.text == "".join(deltas) and end.text.strip()
    assert end.usage.completion_tokens > 0 and end.usage.prompt_tokens > 0
    assert end.citations, "retrieval found the creator's own words about her starter"
    assert any("Doughlores" in c.quote for c in end.citations), [c.quote for c in end.citations]
    top = end.citations[0]
    assert [c.score for c in end.citations] == sorted((c.score for c in end.citations), reverse=True)
    assert top.source.url.startswith("https://example.com/maya/") or top.source.path == "faq.md"
    assert top.score >= 0.2
    # Citations quote exact spans of what the creator published.
    assert top.end_char - top.start_char == len(top.quote)

    start2, _, end2 = await _turn(
        suite, creator, "fan-1", "And what oven do you bake in?", start.conversation_id
    )
    assert start2.conversation_id == start.conversation_id
    assert start2.disclosure == "", "FIRST_MESSAGE mode: no disclosure on later turns"
    assert end2.outcome == conv_pb.REPLY_OUTCOME_ANSWERED
    async with suite.channel("gateway") as ch:
        history = await conv_grpc.ConversationServiceStub(ch).GetHistory(
            conv_pb.GetHistoryRequest(
                creator_id=creator, fan_id="fan-1", conversation_id=start.conversation_id
            ),
            timeout=5,
        )
    assert [t.role for t in history.turns] == ["fan", "avatar", "fan", "avatar"]
    assert history.turns[2].text == "And what oven do you bake in?"


async def test_blocked_topic_is_refused_with_the_creators_words(suite: Suite) -> None:
    creator = _creator("maya")
    await _ingest(suite, creator, "maya-bakes")
    reply = "I keep my family life offline, but I'm happy to talk bread!"
    stored = await _set_controls(
        suite,
        pol_pb.Controls(
            creator_id=creator,
            blocked_topics=[
                pol_pb.BlockedTopic(name="family", keywords=["kid", "children", "school"], reply=reply)
            ],
            disclosure_text="You're chatting with Maya's AI avatar.",
        ),
    )
    assert stored.version == 1
    start, deltas, end = await _turn(suite, creator, "fan-2", "Do your kids go to school near Tucson?")
    assert start.disclosure == "You're chatting with Maya's AI avatar."
    assert end.outcome == conv_pb.REPLY_OUTCOME_REFUSED
    assert "".join(deltas) == reply == end.text
    assert not end.citations
    [decision] = end.decisions
    assert decision.action == types_pb2.POLICY_ACTION_REFUSE
    assert [(r.code, r.topic) for r in decision.reasons] == [("blocked_topic", "family")]
    assert decision.controls_version == 1


async def test_kill_switch_pauses_the_next_turn(suite: Suite) -> None:
    creator = _creator("maya")
    await _ingest(suite, creator, "maya-bakes")
    await _set_controls(suite, pol_pb.Controls(creator_id=creator, autonomy=pol_pb.AUTONOMY_PAUSED))
    _, _, end = await _turn(suite, creator, "fan-3", "What hydration do you use?")
    assert end.outcome == conv_pb.REPLY_OUTCOME_PAUSED
    assert end.decisions[0].reasons[0].code == "autonomy_paused"
    assert end.usage.completion_tokens == 0, "nothing is generated while paused"
    await _set_controls(suite, pol_pb.Controls(creator_id=creator, autonomy=pol_pb.AUTONOMY_AUTO))
    _, _, end = await _turn(suite, creator, "fan-3", "What hydration do you use?")
    assert end.outcome == conv_pb.REPLY_OUTCOME_ANSWERED


async def test_a_fan_never_sees_another_creators_content(suite: Suite) -> None:
    maya, rio = _creator("maya"), _creator("rio")
    await _ingest(suite, maya, "maya-bakes")
    await _ingest(suite, rio, "coach-rio")
    # Asked of Rio's avatar, a question only Maya's content answers must not cite Maya.
    _, _, end = await _turn(suite, rio, "fan-4", "What is the name of your sourdough starter Doughlores?")
    assert all("Doughlores" not in c.quote for c in end.citations)
    assert all("/maya/" not in c.source.url for c in end.citations)
    async with suite.channel("memory") as ch:
        async with suite.channel("inference") as ich:
            emb = await inf_grpc.InferenceServiceStub(ich).Embed(
                inf_pb.EmbedRequest(texts=["Doughlores sourdough starter"]), timeout=10
            )
        hits = await mem_grpc.MemoryServiceStub(ch).Search(
            mem_pb.SearchRequest(creator_id=rio, embedding=emb.embeddings[0].values, top_k=50, min_score=-1),
            timeout=10,
        )
    assert hits.hits and all("/maya/" not in h.source.url and "Doughlores" not in h.quote for h in hits.hits)


async def test_one_turn_is_one_trace_across_services(suite: Suite, spans: InMemorySpanExporter) -> None:
    creator = _creator("maya")
    await _ingest(suite, creator, "maya-bakes")
    spans.clear()
    await _turn(suite, creator, "fan-5", "How often do you feed your starter?")
    finished = spans.get_finished_spans()
    converse = [
        s for s in finished if s.name == "/avatar.v1.ConversationService/Converse" and s.kind.name == "SERVER"
    ]
    assert len(converse) == 1
    trace_id = converse[0].context.trace_id
    in_trace = {s.name for s in finished if s.context.trace_id == trace_id}
    for rpc in (
        "/avatar.v1.PolicyService/CheckInput",
        "/avatar.v1.MemoryService/Search",
        "/avatar.v1.InferenceService/Embed",
        "/avatar.v1.InferenceService/Generate",
        "/avatar.v1.MemoryService/AppendTurn",
    ):
        assert rpc in in_trace, f"{rpc} is not in the turn's trace"
    assert {"turn.policy_in", "turn.search", "turn.generate", "turn.record"} <= in_trace
    # Inside Generate: waiting for a slot, prefill, decode, as children of the Generate server span.
    by_name = {s.name: s for s in finished if s.context.trace_id == trace_id}
    generate = next(
        s
        for s in finished
        if s.context.trace_id == trace_id
        and s.name == "/avatar.v1.InferenceService/Generate"
        and s.kind.name == "SERVER"
    )
    stages = [by_name[name] for name in ("generate.queue", "generate.prefill", "generate.decode")]
    assert all(s.parent is not None and s.parent.span_id == generate.context.span_id for s in stages)
    assert stages[0].end_time <= stages[1].start_time + 1 and stages[1].end_time <= stages[2].start_time + 1
    assert stages[2].attributes["avatar.generated_tokens"] > 0


@pytest.mark.parametrize(
    ("service", "call"),
    [
        (
            "gateway",
            lambda ch: conv_grpc.ConversationServiceStub(ch).Converse(
                conv_pb.ConverseRequest(creator_id="maya", fan_id="f", message="  "), timeout=5
            ),
        ),
        (
            "inference",
            lambda ch: inf_grpc.InferenceServiceStub(ch).Embed(
                inf_pb.EmbedRequest(texts=["x"] * 300), timeout=5
            ),
        ),
        (
            "inference",
            lambda ch: inf_grpc.InferenceServiceStub(ch).Generate(
                inf_pb.GenerateRequest(prompt="hi", sampling=inf_pb.SamplingParams(top_p=1.5)), timeout=5
            ),
        ),
        (
            "memory",
            lambda ch: mem_grpc.MemoryServiceStub(ch).Search(
                mem_pb.SearchRequest(creator_id="bad id!", embedding=[0.1] * 384), timeout=5
            ),
        ),
        (
            "memory",
            lambda ch: mem_grpc.MemoryServiceStub(ch).Search(
                mem_pb.SearchRequest(creator_id="maya", embedding=[0.1] * 3), timeout=5
            ),
        ),
        (
            "policy",
            lambda ch: pol_grpc.PolicyServiceStub(ch).UpdateControls(
                pol_pb.UpdateControlsRequest(
                    controls=pol_pb.Controls(creator_id="maya", blocked_topics=[pol_pb.BlockedTopic(name="")])
                ),
                timeout=5,
            ),
        ),
        (
            "ingest",
            lambda ch: ing_grpc.IngestServiceStub(ch).IngestPath(
                ing_pb.IngestPathRequest(creator_id="maya", path="relative/path"), timeout=5
            ),
        ),
    ],
)
async def test_bad_input_is_invalid_argument(suite: Suite, service: str, call: object) -> None:
    async with suite.channel(service) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            result = call(ch)  # type: ignore[operator]
            if hasattr(result, "__aiter__"):
                async for _ in result:
                    pass
            else:
                await result
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert info.value.details()


async def test_unknown_things_are_not_found(suite: Suite) -> None:
    async with suite.channel("ingest") as ch:
        stub = ing_grpc.IngestServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetJob(ing_pb.GetJobRequest(job_id="nope"), timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.IngestPath(ing_pb.IngestPathRequest(creator_id="maya", path="/no/such/dir"), timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_upload_ingests_a_streamed_file_and_reports_unknown_formats(suite: Suite) -> None:
    creator = _creator("up")
    data = (SAMPLES / "coach-rio" / "posts.jsonl").read_bytes()

    def messages(name: str, payload: bytes) -> list[ing_pb.UploadRequest]:
        header = ing_pb.UploadRequest(header=ing_pb.UploadHeader(creator_id=creator, filename=name))
        return [
            header,
            *(ing_pb.UploadRequest(data=payload[i : i + 1000]) for i in range(0, len(payload), 1000)),
        ]

    async with suite.channel("ingest") as ch:
        stub = ing_grpc.IngestServiceStub(ch)
        reply = await stub.Upload(iter(messages("../../etc/posts.jsonl", data)), timeout=120)
        assert reply.job.state == ing_pb.JOB_STATE_SUCCEEDED
        assert [f.path for f in reply.job.files] == ["posts.jsonl"]
        assert reply.job.chunks_inserted > 0
        odd = await stub.Upload(iter(messages("clip.mp4", b"\x00\x01binary")), timeout=30)
        assert odd.job.files[0].error and "clip.mp4" in odd.job.files[0].error
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Upload(iter(messages("big.txt", b"x" * 1_000_001)), timeout=30)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "big.txt" in (info.value.details() or "")


async def test_rpcs_are_counted_and_timed_for_prometheus(suite: Suite) -> None:
    from prometheus_client import generate_latest

    from services.common.metrics import REGISTRY

    async with suite.channel("ingest") as ch:
        with pytest.raises(grpc.aio.AioRpcError):
            await ing_grpc.IngestServiceStub(ch).GetJob(ing_pb.GetJobRequest(job_id="missing"), timeout=5)
    text = generate_latest(REGISTRY).decode()
    method = 'method="/avatar.v1.IngestService/GetJob"'
    assert f'avatar_rpc_requests_total{{code="NOT_FOUND",{method},service="ingest"}}' in text
    assert f'avatar_rpc_latency_seconds_count{{{method},service="ingest"}}' in text


async def test_a_fans_history_is_served_from_the_kv_cache_on_later_turns(suite: Suite) -> None:
    creator = _creator("maya")
    await _ingest(suite, creator, "maya-bakes")
    start, _, first = await _turn(suite, creator, "fan-kv", "Tell me about Doughlores, your starter!")
    conv = start.conversation_id
    _, _, second = await _turn(suite, creator, "fan-kv", "What hydration do you use?", conv)
    _, _, third = await _turn(suite, creator, "fan-kv", "Which oven do you bake in?", conv)
    # Turn 2 reuses at least the creator's persona; turn 3 also the first exchange (prompt and reply).
    assert 0 < second.usage.cached_prompt_tokens < third.usage.cached_prompt_tokens
    assert (
        third.usage.cached_prompt_tokens
        >= second.usage.cached_prompt_tokens + first.usage.completion_tokens // 2
    )
