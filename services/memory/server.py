"""MemoryService servicer: proto <-> core types, nothing else."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import json_format

from avatar.v1 import memory_service_pb2 as pb
from avatar.v1 import memory_service_pb2_grpc as pb_grpc
from services.common.convert import (
    citation_to_pb,
    kind_from_pb,
    platform_from_pb,
    ts_from_pb,
    ts_to_pb,
)
from services.common.redis_cache import RedisSearchCache, connect
from services.common.server import ServiceSpec
from services.memory.config import MemoryConfig
from services.memory.core import errors
from services.memory.core.store import MemoryStore, open_store
from services.memory.core.types import (
    Conversation,
    FanFact,
    NewChunk,
    PersonaProfile,
    SearchFilters,
    SearchHit,
    SearchMode,
    Turn,
)

Ctx = grpc.aio.ServicerContext[Any, Any]
_ROLES = {"fan": pb.TURN_ROLE_FAN, "avatar": pb.TURN_ROLE_AVATAR}
_ROLE_NAMES = {v: k for k, v in _ROLES.items()}
_MODES: dict[int, SearchMode] = {
    pb.SEARCH_MODE_UNSPECIFIED: "hybrid",
    pb.SEARCH_MODE_HYBRID: "hybrid",
    pb.SEARCH_MODE_VECTOR: "vector",
    pb.SEARCH_MODE_TEXT: "text",
}


def turn_to_pb(turn: Turn) -> pb.Turn:
    """A stored turn as its proto."""
    return pb.Turn(
        conversation_id=turn.conversation_id,
        role=_ROLES[turn.role],
        text=turn.text,
        citation_chunk_ids=list(turn.citations),
        created_at=ts_to_pb(turn.created_at),
        turn_id=turn.turn_id,
        fan_id=turn.fan_id,
    )


def scores_to_pb(hit: SearchHit) -> pb.HitScores:
    """How a hit was ranked."""
    return pb.HitScores(fused_score=hit.fused_score, vector_rank=hit.vector_rank, text_rank=hit.text_rank)


def filters_from_pb(request: pb.SearchRequest) -> SearchFilters:
    """The search filters of a request (validated by the store)."""
    return SearchFilters(
        platforms=tuple(platform_from_pb(p) for p in request.platforms),
        kinds=tuple(kind_from_pb(k) for k in request.kinds),
        published_after=ts_from_pb(request, "published_after"),
        published_before=ts_from_pb(request, "published_before"),
    )


def conversation_to_pb(conv: Conversation) -> pb.ConversationSummary:
    """A conversation as its proto."""
    return pb.ConversationSummary(
        fan_id=conv.fan_id,
        conversation_id=conv.conversation_id,
        created_at=ts_to_pb(conv.created_at),
        turn_count=conv.turn_count,
        last_turn_at=ts_to_pb(conv.last_turn_at),
    )


def fact_to_pb(fact: FanFact) -> pb.FanFact:
    """A fan fact as its proto."""
    return pb.FanFact(
        key=fact.key,
        value=fact.value,
        explicit=fact.origin == "explicit",
        updated_at=ts_to_pb(fact.updated_at),
    )


#: PersonaProfile fields that are bookkeeping, not style: never stored in the profile document.
_PERSONA_META = frozenset({"creator_id", "version", "updated_at", "corrected_fields"})
#: Fields a creator may correct: every style field but the document count, which is a fact of
#: the ingest, not an opinion about the creator's voice.
CORRECTABLE = frozenset(pb.PersonaProfile.DESCRIPTOR.fields_by_name) - _PERSONA_META - {"documents"}
_MAX_FACTS = 100
_MAX_TERMS = 50
_MAX_FACT_CHARS = 500
_MAX_TERM_CHARS = 200


def persona_document(profile: pb.PersonaProfile) -> dict[str, Any]:
    """The style fields of a profile as the JSON object memory stores (proto field names, defaults
    written out so a correction to an empty list or zero is a real correction)."""
    data = json_format.MessageToDict(
        profile, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return {k: v for k, v in data.items() if k not in _PERSONA_META}


def check_persona(profile: pb.PersonaProfile, fields: frozenset[str] | None = None) -> None:
    """Reject profile values the prompt could not use (limits keep the persona prompt bounded).

    Args:
        profile: The profile.
        fields: Only check these fields (``None`` = all).

    Raises:
        errors.InvalidArgument: A fact without a kind or text, or a list or text over its limit.
    """
    names = CORRECTABLE if fields is None else fields
    if "facts" in names:
        if len(profile.facts) > _MAX_FACTS:
            raise errors.InvalidArgument(f"profile.facts has more than {_MAX_FACTS} entries")
        for i, f in enumerate(profile.facts):
            if f.kind == pb.STATED_FACT_KIND_UNSPECIFIED:
                raise errors.InvalidArgument(f"profile.facts[{i}].kind must be OWNS, DOES or NEVER")
            if not f.text.strip() or len(f.text) > _MAX_FACT_CHARS:
                raise errors.InvalidArgument(
                    f"profile.facts[{i}].text must be 1 to {_MAX_FACT_CHARS} characters"
                )
    for name in ("top_emoji", "top_hashtags", "signature_phrases", "topics"):
        if name not in names:
            continue
        terms = getattr(profile, name)
        if len(terms) > _MAX_TERMS:
            raise errors.InvalidArgument(f"profile.{name} has more than {_MAX_TERMS} entries")
        for i, t in enumerate(terms):
            if not t.term.strip() or len(t.term) > _MAX_TERM_CHARS:
                raise errors.InvalidArgument(
                    f"profile.{name}[{i}].term must be 1 to {_MAX_TERM_CHARS} characters"
                )


def persona_to_pb(persona: PersonaProfile) -> pb.PersonaProfile:
    """A stored persona profile as its proto (unknown stored fields are skipped, not fatal)."""
    msg = pb.PersonaProfile()
    json_format.ParseDict(
        {k: v for k, v in persona.profile.items() if k not in _PERSONA_META}, msg, ignore_unknown_fields=True
    )
    msg.MergeFrom(
        pb.PersonaProfile(
            creator_id=persona.creator_id,
            version=persona.version,
            updated_at=ts_to_pb(persona.updated_at),
            corrected_fields=persona.corrected_fields,
        )
    )
    return msg


def chunk_from_pb(msg: pb.ChunkInput) -> NewChunk:
    """A chunk from the wire, validated by the store."""
    src = msg.source
    return NewChunk(
        platform=platform_from_pb(src.platform),
        external_id=src.external_id,
        url=src.url,
        created_at=ts_from_pb(src, "created_at"),
        kind=kind_from_pb(src.kind),
        path=src.path,
        source_hash=msg.source_hash,
        ordinal=msg.ordinal,
        text=msg.text,
        start_char=msg.start_char,
        end_char=msg.end_char,
        token_count=msg.token_count,
        content_hash=msg.content_hash,
        embedding=list(msg.embedding),
    )


class MemoryServicer(pb_grpc.MemoryServiceServicer):
    """Thin adapter over :class:`MemoryStore`."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def WriteChunks(self, request: pb.WriteChunksRequest, context: Ctx) -> pb.WriteChunksResponse:
        chunks = [chunk_from_pb(c) for c in request.chunks]
        result = await self._store.write_chunks(request.creator_id, chunks)
        return pb.WriteChunksResponse(
            chunks_inserted=result.chunks_inserted,
            chunks_unchanged=result.chunks_unchanged,
            sources_inserted=result.sources_inserted,
        )

    async def Search(self, request: pb.SearchRequest, context: Ctx) -> pb.SearchResponse:
        if not request.embedding:
            raise errors.InvalidArgument(
                "embedding is required (embed the query with InferenceService.Embed)"
            )
        if request.mode not in _MODES:
            raise errors.InvalidArgument(f"mode must be a known SearchMode, got {request.mode}")
        result = await self._store.search_result(
            request.creator_id,
            list(request.embedding),
            k=request.top_k or 5,
            min_score=request.min_score,
            query=request.query,
            filters=filters_from_pb(request),
            mode=_MODES[request.mode],
        )
        return pb.SearchResponse(
            hits=[citation_to_pb(h) for h in result.hits],
            scores=[scores_to_pb(h) for h in result.hits],
            from_cache=result.from_cache,
        )

    async def AppendTurn(self, request: pb.AppendTurnRequest, context: Ctx) -> pb.AppendTurnResponse:
        turn = request.turn
        if turn.role not in _ROLE_NAMES:
            raise errors.InvalidArgument("turn.role must be TURN_ROLE_FAN or TURN_ROLE_AVATAR")
        stored = await self._store.append_turn(
            request.creator_id,
            request.fan_id,
            turn.conversation_id,
            _ROLE_NAMES[turn.role],
            turn.text,
            list(turn.citation_chunk_ids),
        )
        return pb.AppendTurnResponse(turn=turn_to_pb(stored))

    async def ListTurns(self, request: pb.ListTurnsRequest, context: Ctx) -> pb.ListTurnsResponse:
        page = await self._store.history_page(
            request.creator_id,
            request.fan_id,
            request.conversation_id or None,
            request.limit or 20,
            request.page_token,
        )
        return pb.ListTurnsResponse(
            turns=[turn_to_pb(t) for t in page.turns], next_page_token=page.next_page_token
        )

    async def ListConversations(
        self, request: pb.ListConversationsRequest, context: Ctx
    ) -> pb.ListConversationsResponse:
        page = await self._store.list_conversations(
            request.creator_id, request.fan_id or None, request.page_size or 20, request.page_token
        )
        return pb.ListConversationsResponse(
            conversations=[conversation_to_pb(c) for c in page.conversations],
            next_page_token=page.next_page_token,
        )

    async def GetFanMemory(self, request: pb.GetFanMemoryRequest, context: Ctx) -> pb.GetFanMemoryResponse:
        memory = await self._store.fan_memory(
            request.creator_id, request.fan_id, request.recent_turns or None
        )
        return pb.GetFanMemoryResponse(
            facts=[fact_to_pb(f) for f in memory.facts],
            summary=memory.summary,
            turns_summarised=memory.turns_summarised,
            recent_turns=[turn_to_pb(t) for t in memory.recent_turns],
        )

    async def PutFanFacts(self, request: pb.PutFanFactsRequest, context: Ctx) -> pb.PutFanFactsResponse:
        await self._store.put_fan_facts(request.creator_id, request.fan_id, dict(request.facts))
        return pb.PutFanFactsResponse()

    async def ForgetFan(self, request: pb.ForgetFanRequest, context: Ctx) -> pb.ForgetFanResponse:
        turns, facts = await self._store.forget_fan(
            request.creator_id, request.fan_id, list(request.fact_keys)
        )
        return pb.ForgetFanResponse(turns_deleted=turns, facts_deleted=facts)

    async def GetPersonaProfile(
        self, request: pb.GetPersonaProfileRequest, context: Ctx
    ) -> pb.GetPersonaProfileResponse:
        return pb.GetPersonaProfileResponse(
            profile=persona_to_pb(await self._store.get_persona(request.creator_id))
        )

    async def UpdatePersonaProfile(
        self, request: pb.UpdatePersonaProfileRequest, context: Ctx
    ) -> pb.UpdatePersonaProfileResponse:
        paths = list(request.update_mask.paths)
        if not paths:
            raise errors.InvalidArgument("update_mask must name at least one field")
        bad = sorted(set(paths) - CORRECTABLE)
        if bad:
            raise errors.InvalidArgument(
                f"update_mask: cannot correct {bad} (correctable: {sorted(CORRECTABLE)})"
            )
        check_persona(request.profile, frozenset(paths))
        document = persona_document(request.profile)
        stored = await self._store.correct_persona(
            request.creator_id, {p: document[p] for p in paths}, request.expected_version
        )
        return pb.UpdatePersonaProfileResponse(profile=persona_to_pb(stored))

    async def PutPersonaProfile(
        self, request: pb.PutPersonaProfileRequest, context: Ctx
    ) -> pb.PutPersonaProfileResponse:
        check_persona(request.profile)
        stored = await self._store.put_persona(
            request.creator_id, persona_document(request.profile), request.expected_version
        )
        return pb.PutPersonaProfileResponse(profile=persona_to_pb(stored))

    async def DeleteSource(self, request: pb.DeleteSourceRequest, context: Ctx) -> pb.DeleteSourceResponse:
        deleted = await self._store.delete_source(
            request.creator_id, platform_from_pb(request.platform), request.external_id
        )
        return pb.DeleteSourceResponse(chunks_deleted=deleted)

    async def DeleteCreator(self, request: pb.DeleteCreatorRequest, context: Ctx) -> pb.DeleteCreatorResponse:
        await self._store.delete_creator(request.creator_id)
        return pb.DeleteCreatorResponse()

    async def GetCreatorStats(
        self, request: pb.GetCreatorStatsRequest, context: Ctx
    ) -> pb.GetCreatorStatsResponse:
        return pb.GetCreatorStatsResponse(chunks=await self._store.count_chunks(request.creator_id))


async def build(cfg: MemoryConfig) -> ServiceSpec:
    """Apply migrations, open the pool (and the Redis cache when configured), describe the service."""
    cache = None
    if cfg.redis_url is not None and cfg.cache_ttl_seconds > 0:
        cache = RedisSearchCache(connect(cfg.redis_url), ttl_seconds=cfg.cache_ttl_seconds)
    store = await open_store(
        cfg.database_url,
        ef_search=cfg.ef_search,
        max_size=cfg.pool_size,
        cache=cache,
        summary_window=cfg.summary_window,
    )
    servicer = MemoryServicer(store)

    async def stop() -> None:
        await store.close()
        if cache is not None:
            await cache.close()

    return ServiceSpec(
        name="memory",
        register=lambda server: pb_grpc.add_MemoryServiceServicer_to_server(servicer, server),
        service_names=[pb.DESCRIPTOR.services_by_name["MemoryService"].full_name],
        error_map={
            errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
            errors.NotFound: grpc.StatusCode.NOT_FOUND,
            errors.Conflict: grpc.StatusCode.ABORTED,
        },
        on_stop=stop,
    )
