"""MemoryService over real gRPC (port 0), Postgres and Redis: the new RPCs, filters, status codes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from avatar.v1 import memory_service_pb2 as pb
from avatar.v1 import memory_service_pb2_grpc as pb_grpc
from avatar.v1 import types_pb2
from services.common.config import ServerConfig
from services.common.server import start_server
from services.memory.config import MemoryConfig
from services.memory.server import build
from tests.integration.test_memory_store import unit

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def stub(
    database_url: str, redis_url: str, redis_client: Any
) -> AsyncIterator[pb_grpc.MemoryServiceAsyncStub]:
    server_cfg = ServerConfig(
        host="127.0.0.1", port=0, grace_seconds=1.0, otlp_endpoint=None, log_level="INFO"
    )
    running = await start_server(
        await build(MemoryConfig(server_cfg, database_url, ef_search=100, pool_size=2, redis_url=redis_url))
    )
    try:
        async with grpc.aio.insecure_channel(running.target) as channel:
            yield pb_grpc.MemoryServiceStub(channel)
    finally:
        await running.stop(1.0)


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


def chunk_pb(
    text: str, vec: list[float], external_id: str, platform: types_pb2.Platform.ValueType, when: datetime
) -> pb.ChunkInput:
    return pb.ChunkInput(
        source=types_pb2.SourceMeta(
            platform=platform,
            external_id=external_id,
            url=f"https://example.com/{external_id}",
            created_at=ts(when),
            kind=types_pb2.CONTENT_KIND_POST,
            path=f"export/{external_id}.json",
        ),
        source_hash=f"s-{external_id}",
        text=text,
        end_char=len(text),
        token_count=3,
        content_hash=f"h-{text}",
        embedding=vec,
    )


async def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code()


async def test_search_with_filters_citations_and_cache(stub: pb_grpc.MemoryServiceAsyncStub) -> None:
    await stub.WriteChunks(
        pb.WriteChunksRequest(
            creator_id="chef",
            chunks=[
                chunk_pb(
                    "rye bread in Lisbon",
                    unit(1),
                    "ig1",
                    types_pb2.PLATFORM_INSTAGRAM,
                    datetime(2024, 1, 5, tzinfo=UTC),
                ),
                chunk_pb(
                    "corn bread at home",
                    unit(1, 0.5),
                    "yt1",
                    types_pb2.PLATFORM_YOUTUBE,
                    datetime(2024, 7, 1, tzinfo=UTC),
                ),
            ],
        )
    )
    request = pb.SearchRequest(
        creator_id="chef", query="bread lisbon", embedding=unit(1), top_k=5, min_score=0.2
    )
    first = await stub.Search(request)
    assert [h.quote for h in first.hits] == ["rye bread in Lisbon", "corn bread at home"]
    assert [(s.vector_rank, s.text_rank) for s in first.scores] == [(1, 1), (2, 0)]
    assert first.from_cache is False
    top = first.hits[0]
    assert (top.source.platform, top.source.external_id, top.source.url, top.source.path) == (
        types_pb2.PLATFORM_INSTAGRAM,
        "ig1",
        "https://example.com/ig1",
        "export/ig1.json",
    )
    assert top.source.created_at.ToDatetime(tzinfo=UTC) == datetime(2024, 1, 5, tzinfo=UTC)
    assert (top.start_char, top.end_char) == (0, len("rye bread in Lisbon"))
    assert top.score == pytest.approx(1.0)
    assert (await stub.Search(request)).from_cache is True

    filtered = pb.SearchRequest()
    filtered.CopyFrom(request)
    filtered.platforms.append(types_pb2.PLATFORM_YOUTUBE)
    assert [h.source.external_id for h in (await stub.Search(filtered)).hits] == ["yt1"]
    dated = pb.SearchRequest()
    dated.CopyFrom(request)
    dated.published_after.CopyFrom(ts(datetime(2024, 3, 1, tzinfo=UTC)))
    assert [h.source.external_id for h in (await stub.Search(dated)).hits] == ["yt1"]
    vector = pb.SearchRequest()
    vector.CopyFrom(request)
    vector.mode = pb.SEARCH_MODE_VECTOR
    assert [s.fused_score for s in (await stub.Search(vector)).scores] == [0.0, 0.0]

    deleted = await stub.DeleteSource(
        pb.DeleteSourceRequest(creator_id="chef", platform=types_pb2.PLATFORM_INSTAGRAM, external_id="ig1")
    )
    assert deleted.chunks_deleted == 1
    after = await stub.Search(request)
    assert ([h.source.external_id for h in after.hits], after.from_cache) == (["yt1"], False)


async def test_fan_memory_rpcs_and_pagination(stub: pb_grpc.MemoryServiceAsyncStub) -> None:
    await stub.WriteChunks(
        pb.WriteChunksRequest(
            creator_id="chef",
            chunks=[chunk_pb("x", unit(1), "a", types_pb2.PLATFORM_X, datetime(2024, 1, 1, tzinfo=UTC))],
        )
    )
    for i in range(5):
        turn = pb.Turn(conversation_id="c1", role=pb.TURN_ROLE_FAN, text=f"my name is Sam ({i})")
        stored = await stub.AppendTurn(pb.AppendTurnRequest(creator_id="chef", fan_id="f1", turn=turn))
        assert (stored.turn.fan_id, stored.turn.turn_id > 0) == ("f1", True)
    page = await stub.ListTurns(pb.ListTurnsRequest(creator_id="chef", fan_id="f1", limit=3))
    assert [t.text[-3:] for t in page.turns] == ["(2)", "(3)", "(4)"]
    older = await stub.ListTurns(
        pb.ListTurnsRequest(creator_id="chef", fan_id="f1", limit=3, page_token=page.next_page_token)
    )
    assert ([t.text[-3:] for t in older.turns], older.next_page_token) == (["(0)", "(1)"], "")
    convs = await stub.ListConversations(pb.ListConversationsRequest(creator_id="chef"))
    assert [(c.fan_id, c.conversation_id, c.turn_count) for c in convs.conversations] == [("f1", "c1", 5)]

    await stub.PutFanFacts(pb.PutFanFactsRequest(creator_id="chef", fan_id="f1", facts={"likes": "rye"}))
    memory = await stub.GetFanMemory(pb.GetFanMemoryRequest(creator_id="chef", fan_id="f1", recent_turns=2))
    assert [(f.key, f.value, f.explicit) for f in memory.facts] == [
        ("likes", "rye", True),
        ("name", "Sam", False),
    ]
    assert [t.text[-3:] for t in memory.recent_turns] == ["(3)", "(4)"]
    forgot = await stub.ForgetFan(pb.ForgetFanRequest(creator_id="chef", fan_id="f1"))
    assert (forgot.turns_deleted, forgot.facts_deleted) == (5, 2)
    memory = await stub.GetFanMemory(pb.GetFanMemoryRequest(creator_id="chef", fan_id="f1"))
    assert (list(memory.facts), list(memory.recent_turns), memory.summary) == ([], [], "")


async def test_persona_profile_rpcs(stub: pb_grpc.MemoryServiceAsyncStub) -> None:
    get = pb.GetPersonaProfileRequest(creator_id="chef")
    assert await code_of(stub.GetPersonaProfile(get)) == grpc.StatusCode.NOT_FOUND
    # A correction needs something to correct: nothing computed yet.
    early = pb.UpdatePersonaProfileRequest(
        creator_id="chef", profile=pb.PersonaProfile(), update_mask=field_mask_pb2.FieldMask(paths=["topics"])
    )
    assert await code_of(stub.UpdatePersonaProfile(early)) == grpc.StatusCode.NOT_FOUND
    computed = pb.PersonaProfile(
        documents=3,
        mean_sentence_words=11.5,
        signature_phrases=[pb.StyleTerm(term="hey bakers", count=2)],
        facts=[
            pb.StatedFact(
                kind=pb.STATED_FACT_KIND_OWNS,
                text="I own one Dutch oven.",
                platform=types_pb2.PLATFORM_INSTAGRAM,
                external_id="p1",
            )
        ],
    )
    put = await stub.PutPersonaProfile(pb.PutPersonaProfileRequest(creator_id="chef", profile=computed))
    assert put.profile.version == 1
    # The same computation again is no change: no new version (prompts built from it stay cached).
    again = await stub.PutPersonaProfile(pb.PutPersonaProfileRequest(creator_id="chef", profile=computed))
    assert again.profile.version == 1
    got = (await stub.GetPersonaProfile(get)).profile
    assert (got.creator_id, got.documents, got.mean_sentence_words, got.version) == ("chef", 3, 11.5, 1)
    assert list(got.signature_phrases) == list(computed.signature_phrases)
    assert list(got.facts) == list(computed.facts) and list(got.corrected_fields) == []
    stale = pb.PutPersonaProfileRequest(creator_id="chef", profile=computed, expected_version=7)
    assert await code_of(stub.PutPersonaProfile(stale)) == grpc.StatusCode.ABORTED
    fix = pb.UpdatePersonaProfileRequest(
        creator_id="chef",
        profile=pb.PersonaProfile(signature_phrases=[pb.StyleTerm(term="happy baking", count=0)]),
        update_mask=field_mask_pb2.FieldMask(paths=["signature_phrases"]),
        expected_version=1,
    )
    fixed = (await stub.UpdatePersonaProfile(fix)).profile
    assert [t.term for t in fixed.signature_phrases] == ["happy baking"]
    assert (fixed.version, list(fixed.corrected_fields)) == (2, ["signature_phrases"])
    # A re-computation replaces what was computed, never what the creator corrected.
    recomputed = pb.PersonaProfile(documents=4, signature_phrases=[pb.StyleTerm(term="crumb shot", count=3)])
    put = await stub.PutPersonaProfile(pb.PutPersonaProfileRequest(creator_id="chef", profile=recomputed))
    assert put.profile.version == 3 and put.profile.documents == 4
    assert [t.term for t in put.profile.signature_phrases] == ["happy baking"]
    assert list(put.profile.facts) == [], "an uncorrected field follows the computation"
    bad_term = pb.PutPersonaProfileRequest(
        creator_id="chef", profile=pb.PersonaProfile(topics=[pb.StyleTerm(term=" ", count=1)])
    )
    assert await code_of(stub.PutPersonaProfile(bad_term)) == grpc.StatusCode.INVALID_ARGUMENT
    await stub.DeleteCreator(pb.DeleteCreatorRequest(creator_id="chef"))
    assert await code_of(stub.GetPersonaProfile(get)) == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "request_",
    [
        pb.SearchRequest(creator_id="chef", top_k=5),  # no embedding
        pb.SearchRequest(creator_id="chef", embedding=unit(1), mode=99),  # type: ignore[arg-type]
        pb.SearchRequest(creator_id="chef", embedding=unit(1), platforms=[types_pb2.PLATFORM_UNSPECIFIED]),
        pb.SearchRequest(creator_id="bad id", embedding=unit(1)),
        pb.SearchRequest(creator_id="chef", embedding=unit(1), top_k=101),
    ],
)
async def test_bad_search_requests_are_invalid_argument(
    stub: pb_grpc.MemoryServiceAsyncStub, request_: pb.SearchRequest
) -> None:
    assert await code_of(stub.Search(request_)) == grpc.StatusCode.INVALID_ARGUMENT


async def test_bad_fan_requests(stub: pb_grpc.MemoryServiceAsyncStub) -> None:
    bad_token = pb.ListTurnsRequest(creator_id="chef", fan_id="f1", page_token="nope")
    assert await code_of(stub.ListTurns(bad_token)) == grpc.StatusCode.INVALID_ARGUMENT
    no_creator = pb.PutFanFactsRequest(creator_id="ghost", fan_id="f1", facts={"name": "Sam"})
    assert await code_of(stub.PutFanFacts(no_creator)) == grpc.StatusCode.NOT_FOUND
    bad_key = pb.PutFanFactsRequest(creator_id="chef", fan_id="f1", facts={"Bad": "x"})
    assert await code_of(stub.PutFanFacts(bad_key)) == grpc.StatusCode.INVALID_ARGUMENT


def test_migrate_command(database_url: str) -> None:
    env = {**os.environ, "AVATAR_DATABASE_URL": database_url}
    env.pop("AVATAR_REDIS_URL", None)
    cmd = [sys.executable, "-m", "services.memory", "migrate"]
    first = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert first.stdout.strip() == "memory migrations applied: [1, 2, 3, 4]"
    again = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert again.stdout.strip() == "memory migrations applied: none (schema current)"
