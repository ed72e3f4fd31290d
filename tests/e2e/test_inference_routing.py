"""Two real inference replicas behind one gateway: creator affinity, and failover when one dies.

Each replica's own GetStats counters prove where each turn ran: the creator's home replica (by
rendezvous hashing) completes every one of its Generate calls and serves their shared prefixes
from its cache, the other replica sees none of them.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from avatar.v1 import conversation_service_pb2 as conv_pb
from avatar.v1 import conversation_service_pb2_grpc as conv_grpc
from avatar.v1 import inference_service_pb2 as inf_pb
from avatar.v1 import inference_service_pb2_grpc as inf_grpc
from avatar.v1 import memory_service_pb2 as mem_pb
from avatar.v1 import memory_service_pb2_grpc as mem_grpc
from services.cli.stack import free_port
from services.common.config import ServerConfig
from services.common.server import RunningServer, start_server
from services.gateway import server as gateway_server
from services.gateway.clients import InferenceClient
from services.gateway.config import GatewayConfig
from services.gateway.core.routing import home
from services.gateway.replicas import InferenceReplicas
from services.inference import server as inference_server
from services.inference.config import InferenceConfig
from services.memory import server as memory_server
from services.memory.config import MemoryConfig
from services.policy import server as policy_server
from services.policy.config import PolicyConfig

pytestmark = pytest.mark.timeout(300)


def _server() -> ServerConfig:
    return ServerConfig(host="127.0.0.1", port=0, grace_seconds=1.0, otlp_endpoint=None, log_level="INFO")


@dataclass
class Replicated:
    """A gateway in front of two inference replicas (plus memory and policy)."""

    gateway: RunningServer
    replicas: dict[str, RunningServer]
    others: list[RunningServer]


async def _inference(model_dir: Path) -> RunningServer:
    cfg = InferenceConfig(
        _server(), model_dir, 1, 8, 256, build_missing=False, max_batch=4, max_seq_len=1024, kv_cache_mb=32
    )
    return await start_server(await inference_server.build(cfg))


@pytest.fixture
async def replicated(model_dir: Path, database_url: str, redis_url: str) -> AsyncIterator[Replicated]:
    replicas = [await _inference(model_dir), await _inference(model_dir)]
    memory = await start_server(
        await memory_server.build(MemoryConfig(_server(), database_url, ef_search=40, pool_size=2))
    )
    # Policy without embedding-based topic checks: it must not depend on either replica, so that
    # stopping one shows the gateway's failover and nothing else.
    policy = await start_server(
        await policy_server.build(PolicyConfig(_server(), database_url, 2, redis_url))
    )
    gateway = await start_server(
        await gateway_server.build(
            GatewayConfig(
                _server(),
                policy.target,
                memory.target,
                "127.0.0.1:1",  # superseded by the list below
                max_tokens=12,
                temperature=0.0,
                top_k=3,
                min_score=0.2,
                max_message_chars=2000,
                inference_targets=tuple(r.target for r in replicas),
            )
        )
    )
    running = Replicated(gateway, {r.target: r for r in replicas}, [policy, memory])
    try:
        yield running
    finally:
        for server in [gateway, *running.others, *running.replicas.values()]:
            await server.stop(0.5)


async def _turn(gateway: str, creator: str, fan: str, conversation: str, message: str) -> conv_pb.ReplyEnd:
    async with grpc.aio.insecure_channel(gateway) as ch:
        request = conv_pb.ConverseRequest(
            creator_id=creator, fan_id=fan, conversation_id=conversation, message=message
        )
        events = [e async for e in conv_grpc.ConversationServiceStub(ch).Converse(request, timeout=60)]
    return events[-1].end


async def _stats(target: str) -> inf_pb.GetStatsResponse:
    async with grpc.aio.insecure_channel(target) as ch:
        return await inf_grpc.InferenceServiceStub(ch).GetStats(inf_pb.GetStatsRequest(), timeout=10)


def _creators_on_each(replicas: list[str]) -> dict[str, str]:
    """A creator id homed on each replica (the ports, hence the hashes, differ per run)."""
    found: dict[str, str] = {}
    for i in itertools.count():
        creator = f"route-{uuid.uuid4().hex[:6]}-{i}"
        found.setdefault(home(creator, replicas), creator)
        if len(found) == len(replicas):
            return {replica: found[replica] for replica in replicas}
    raise AssertionError("unreachable")


async def test_a_creators_turns_stay_on_one_replica_and_fail_over_when_it_dies(
    replicated: Replicated,
) -> None:
    targets = sorted(replicated.replicas)
    on = _creators_on_each(targets)
    a_home, b_home = targets
    creator_a, creator_b = on[a_home], on[b_home]
    gateway = replicated.gateway.target
    async with grpc.aio.insecure_channel(replicated.others[1].target) as ch:
        for creator in (creator_a, creator_b):  # what ingest does first for a new creator
            profile = mem_pb.PersonaProfile(
                creator_id=creator, documents=1, topics=[mem_pb.StyleTerm(term="baking", count=3)]
            )
            await mem_grpc.MemoryServiceStub(ch).PutPersonaProfile(
                mem_pb.PutPersonaProfileRequest(creator_id=creator, profile=profile), timeout=10
            )
    before = {t: await _stats(t) for t in targets}

    # Two fans of creator A, one with a three-turn conversation; one fan of creator B.
    ends = [
        await _turn(gateway, creator_a, "fan-1", "conv-a1", "Hi! What do you do?"),
        await _turn(gateway, creator_a, "fan-1", "conv-a1", "And what do you like most?"),
        await _turn(gateway, creator_a, "fan-1", "conv-a1", "Thanks, see you."),
        await _turn(gateway, creator_a, "fan-2", "conv-a2", "Hello there!"),
        await _turn(gateway, creator_b, "fan-3", "conv-b1", "Hi! What do you do?"),
        await _turn(gateway, creator_b, "fan-3", "conv-b1", "Tell me more."),
    ]
    assert all(e.usage.completion_tokens > 0 for e in ends), "every turn generated a reply"
    after = {t: await _stats(t) for t in targets}

    def delta(target: str, field: str) -> int:
        return int(getattr(after[target], field)) - int(getattr(before[target], field))

    # Each creator's Generate calls all ran on its home replica, none on the other one.
    assert (delta(a_home, "completed"), delta(b_home, "completed")) == (4, 2)
    # Affinity is what lets the cache hit: every turn after a creator's first one reused its
    # persona prefix (and the conversation's history) on that replica.
    assert delta(a_home, "prefix_cache_hits") >= 3
    assert delta(b_home, "prefix_cache_hits") >= 1
    assert all(e.usage.cached_prompt_tokens > 0 for e in ends[1:4]) and ends[5].usage.cached_prompt_tokens > 0

    # Creator A's home replica dies: A's next turn still succeeds, on the other replica.
    await replicated.replicas.pop(a_home).stop(0)
    before_b = await _stats(b_home)
    end = await _turn(gateway, creator_a, "fan-1", "conv-a1", "Are you still there?")
    assert end.usage.completion_tokens > 0
    assert end.outcome != conv_pb.REPLY_OUTCOME_UNSPECIFIED
    # The next one goes straight there (the dead replica is in its back-off), and B is unaffected.
    await _turn(gateway, creator_a, "fan-2", "conv-a2", "Still around?")
    await _turn(gateway, creator_b, "fan-3", "conv-b1", "One more thing.")
    after_b = await _stats(b_home)
    assert after_b.completed - before_b.completed == 3


@pytest.fixture
async def two_replicas(model_dir: Path) -> AsyncIterator[dict[str, RunningServer]]:
    servers = {s.target: s for s in [await _inference(model_dir), await _inference(model_dir)]}
    try:
        yield servers
    finally:
        for server in servers.values():
            await server.stop(0.5)


def _messages(text: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a friendly baker. " * 4},
        {"role": "user", "content": text},
    ]


async def test_a_reply_cut_off_mid_stream_is_not_retried_on_another_replica(
    two_replicas: dict[str, RunningServer],
) -> None:
    targets = sorted(two_replicas)
    creator = _creators_on_each(targets)[targets[0]]
    replicas = InferenceReplicas(targets)
    # Sampling at temperature 1 from the random-weight model practically never draws the end token,
    # so the reply is still streaming when its replica stops.
    client = InferenceClient(replicas, inf_pb.SamplingParams(max_tokens=250, temperature=1.0, seed=7))
    other = await _stats(targets[1])
    try:
        stream = client.generate(_messages("Tell me a long story."), f"{creator}/fan/conv", affinity=creator)
        first = await anext(stream)
        assert first.completion_tokens >= 0
        await two_replicas.pop(targets[0]).stop(0)
        with pytest.raises(grpc.aio.AioRpcError):
            async for _ in stream:
                pass
    finally:
        await replicas.close()
    after = await _stats(targets[1])
    assert (after.completed, after.running, after.waiting) == (other.completed, 0, 0), "no second attempt"


async def test_replicas_follow_what_the_name_resolves_to(two_replicas: dict[str, RunningServer]) -> None:
    targets = sorted(two_replicas)
    answer = [targets[0]]

    async def resolve() -> list[str]:  # what DNS answers for a headless Service as pods come and go
        return list(answer)

    replicas = InferenceReplicas(resolve=resolve, refresh_seconds=3600)
    client = InferenceClient(replicas, inf_pb.SamplingParams(max_tokens=4, temperature=0.0))
    creator = _creators_on_each(targets)[targets[1]]
    try:
        await replicas.start()
        assert replicas.addresses == [targets[0]]

        async def served_by() -> str:
            before = {t: (await _stats(t)).completed for t in targets}
            async for _ in client.generate(_messages("Hi"), f"{creator}/fan/conv", affinity=creator):
                pass
            [target] = [t for t in targets if (await _stats(t)).completed != before[t]]
            return target

        assert await served_by() == targets[0], "only one replica known yet"
        answer.append(targets[1])  # scaled up
        await replicas.refresh()
        assert replicas.addresses == targets
        assert await served_by() == targets[1], "the creator moved to its home replica"
        answer.clear()  # a failed or empty answer keeps the replicas known
        await replicas.refresh()
        assert replicas.addresses == targets
        answer.append(targets[0])  # scaled down
        await replicas.refresh()
        assert replicas.addresses == [targets[0]]
        assert await served_by() == targets[0]
        assert len(await client.embed(["hello", "world"])) == 2
    finally:
        await replicas.close()


async def test_a_replica_back_after_a_restart_is_called_even_inside_the_reconnect_back_off(
    model_dir: Path,
) -> None:
    # The gateway's first turn after inference (re)started used to fail UNAVAILABLE: its channel was
    # still waiting out the reconnect back-off from the downtime, and calls fail at once meanwhile.
    port = free_port()
    target = f"127.0.0.1:{port}"
    replicas = InferenceReplicas([target])
    client = InferenceClient(replicas, inf_pb.SamplingParams(max_tokens=4, temperature=0.0))
    cfg = InferenceConfig(
        _server(), model_dir, 1, 8, 256, build_missing=False, max_batch=4, max_seq_len=1024, kv_cache_mb=32
    )
    built = await inference_server.build(cfg)  # loaded, not listening yet
    try:
        # Down: the fan hears UNAVAILABLE (after the grace), not a hang until the RPC deadline. Calls
        # for a few seconds keep the channel reconnecting, so it is inside a back-off when the
        # replica comes back, as after a real outage.
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as down:
                await client.embed(["anyone there?"])
            assert down.value.code() == grpc.StatusCode.UNAVAILABLE
        server = await start_server(built, port=port)
        try:
            assert len((await client.embed(["back again"]))[0]) > 0
            chunks = [c async for c in client.generate(_messages("Hello!"), "c/f/conv", affinity="c")]
            assert chunks and chunks[-1].finished
        finally:
            await server.stop(0.5)
    finally:
        await replicas.close()


async def test_the_policy_services_embeddings_wait_out_the_reconnect_back_off_too(model_dir: Path) -> None:
    # The policy service trains its topic classifiers at start-up, often before inference listens;
    # its channel then backs off, and the first fan message it had to embed failed UNAVAILABLE.
    port = free_port()
    topics, channel = policy_server._embedder(f"127.0.0.1:{port}")
    cfg = InferenceConfig(
        _server(), model_dir, 1, 8, 256, build_missing=False, max_batch=4, max_seq_len=1024, kv_cache_mb=32
    )
    built = await inference_server.build(cfg)
    try:
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as down:
                await topics.embed_message("anyone there?")
            assert down.value.code() == grpc.StatusCode.UNAVAILABLE
        server = await start_server(built, port=port)
        try:
            assert (await topics.embed_message("back again")).shape == (384,)
        finally:
            await server.stop(0.5)
    finally:
        await channel.close(None)
