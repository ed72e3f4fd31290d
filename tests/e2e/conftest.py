"""The whole suite in this process: five real gRPC servers on port 0, real Postgres and Redis.

Running the servers in the test's event loop (rather than as subprocesses) lets the tests read
the spans of a turn from one in-memory exporter; a separate test starts services as processes.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common.config import ServerConfig
from services.common.server import RunningServer, start_server
from services.common.telemetry import setup_tracing
from services.gateway import server as gateway_server
from services.gateway.config import GatewayConfig
from services.inference import server as inference_server
from services.inference.config import InferenceConfig
from services.inference.models import ensure_models
from services.ingest import server as ingest_server
from services.ingest.config import IngestConfig
from services.memory import server as memory_server
from services.memory.config import MemoryConfig
from services.policy import server as policy_server
from services.policy.config import PolicyConfig

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "creators"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """Tiny decoder + MiniLM embedder, built once per test session."""
    path = Path(tempfile.mkdtemp(prefix="avmodels"))
    ensure_models(path)
    return path


@pytest.fixture(scope="session")
def suite_db(server_url: str) -> Iterator[str]:
    """One database for the in-process suite (tests isolate themselves by creator id)."""
    name = f"suite_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(server_url)
    info["dbname"] = name
    yield psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    """Every span finished in this process."""
    exporter = InMemorySpanExporter()
    setup_tracing("avatar-tests", None, [SimpleSpanProcessor(exporter)])
    return exporter


@dataclass
class Suite:
    """Targets of the running services."""

    servers: dict[str, RunningServer]

    def target(self, name: str) -> str:
        return self.servers[name].target

    def channel(self, name: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.target(name))


def _server_config(name: str) -> ServerConfig:
    return ServerConfig(host="127.0.0.1", port=0, grace_seconds=2.0, otlp_endpoint=None, log_level="INFO")


async def start_suite(
    model_dir: Path,
    suite_db: str,
    redis_url: str,
    server_config: Callable[[str], ServerConfig] = _server_config,
) -> Suite:
    """Start the five services in this process; ``server_config`` adds TLS/auth per service."""
    servers: dict[str, RunningServer] = {}
    servers["inference"] = await start_server(
        await inference_server.build(
            InferenceConfig(server_config("inference"), model_dir, 1, 8, 256, build_missing=False)
        ),
        config=server_config("inference"),
    )
    servers["memory"] = await start_server(
        await memory_server.build(
            MemoryConfig(server_config("memory"), suite_db, ef_search=100, pool_size=4, redis_url=redis_url)
        ),
        config=server_config("memory"),
    )
    servers["policy"] = await start_server(
        await policy_server.build(
            PolicyConfig(
                server_config("policy"),
                suite_db,
                pool_size=4,
                redis_url=redis_url,
                inference_target=servers["inference"].target,
            )
        ),
        config=server_config("policy"),
    )
    servers["ingest"] = await start_server(
        await ingest_server.build(
            IngestConfig(
                server_config("ingest"),
                servers["inference"].target,
                servers["memory"].target,
                max_upload_bytes=1_000_000,
                chunk_tokens=120,
                database_url=suite_db,
            )
        ),
        config=server_config("ingest"),
    )
    servers["gateway"] = await start_server(
        await gateway_server.build(
            GatewayConfig(
                server_config("gateway"),
                servers["policy"].target,
                servers["memory"].target,
                servers["inference"].target,
                max_tokens=24,
                temperature=0.0,
                top_k=3,
                min_score=0.2,
                max_message_chars=2000,
                redis_url=redis_url,
            )
        ),
        config=server_config("gateway"),
    )
    return Suite(servers)


async def stop_suite(suite: Suite) -> None:
    """Stop the services, front to back."""
    for name in ("gateway", "ingest", "policy", "memory", "inference"):
        await suite.servers[name].stop(1.0)


@pytest.fixture(scope="session")
async def suite(
    model_dir: Path, suite_db: str, redis_url: str, spans: InMemorySpanExporter
) -> AsyncIterator[Suite]:
    running = await start_suite(model_dir, suite_db, redis_url)
    try:
        yield running
    finally:
        await stop_suite(running)
