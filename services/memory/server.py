"""MemoryService servicer: proto <-> core types, nothing else."""

from __future__ import annotations

from typing import Any

import grpc

from avatar.v1 import memory_service_pb2 as pb
from avatar.v1 import memory_service_pb2_grpc as pb_grpc
from avatar.v1 import types_pb2
from services.common.convert import (
    kind_from_pb,
    kind_to_pb,
    platform_from_pb,
    platform_to_pb,
    ts_from_pb,
    ts_to_pb,
)
from services.common.server import ServiceSpec
from services.memory.config import MemoryConfig
from services.memory.core import errors
from services.memory.core.store import MemoryStore, open_store
from services.memory.core.types import NewChunk, SearchHit, Turn

Ctx = grpc.aio.ServicerContext[Any, Any]
_ROLES = {"fan": pb.TURN_ROLE_FAN, "avatar": pb.TURN_ROLE_AVATAR}
_ROLE_NAMES = {v: k for k, v in _ROLES.items()}


def hit_to_pb(hit: SearchHit) -> types_pb2.Citation:
    """A search hit as a citation the gateway can pass to the fan."""
    return types_pb2.Citation(
        chunk_id=hit.chunk_id,
        source=types_pb2.SourceMeta(
            platform=platform_to_pb(hit.platform),
            external_id=hit.external_id,
            url=hit.url,
            created_at=ts_to_pb(hit.created_at),
            kind=kind_to_pb(hit.kind),
            path=getattr(hit, "path", ""),
        ),
        quote=hit.text,
        start_char=hit.start_char,
        end_char=hit.end_char,
        score=hit.score,
    )


def turn_to_pb(turn: Turn) -> pb.Turn:
    """A stored turn as its proto."""
    return pb.Turn(
        conversation_id=turn.conversation_id,
        role=_ROLES[turn.role],
        text=turn.text,
        citation_chunk_ids=list(turn.citations),
        created_at=ts_to_pb(turn.created_at),
    )


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
        hits = await self._store.search(
            request.creator_id,
            list(request.embedding),
            k=request.top_k or 5,
            min_score=request.min_score,
            kinds=[kind_from_pb(k) for k in request.kinds] or None,
        )
        return pb.SearchResponse(hits=[hit_to_pb(h) for h in hits])

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
        turns = await self._store.history(
            request.creator_id, request.fan_id, request.conversation_id or None, request.limit or 20
        )
        return pb.ListTurnsResponse(turns=[turn_to_pb(t) for t in turns])

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
    """Apply migrations, open the pool, and describe the service."""
    store = await open_store(cfg.database_url, ef_search=cfg.ef_search, max_size=cfg.pool_size)
    servicer = MemoryServicer(store)
    return ServiceSpec(
        name="memory",
        register=lambda server: pb_grpc.add_MemoryServiceServicer_to_server(servicer, server),
        service_names=[pb.DESCRIPTOR.services_by_name["MemoryService"].full_name],
        error_map={
            errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
            errors.NotFound: grpc.StatusCode.NOT_FOUND,
        },
        on_stop=store.close,
    )
