"""Server bootstrap shared by all services: grpc.aio + health + reflection + tracing + errors.

A service describes itself with a :class:`ServiceSpec` (how to register its servicers, which
exceptions mean which status codes, what to close on stop); :func:`start_server` runs it on a
port (0 in tests) and :func:`run_until_signal` adds graceful shutdown on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from services.common.config import ServerConfig
from services.common.errors import ErrorMap, ErrorMappingInterceptor
from services.common.telemetry import server_interceptors, setup_tracing

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
]


@dataclass
class ServiceSpec:
    """What a service contributes to the shared bootstrap."""

    name: str
    """Short name, e.g. ``memory``."""
    register: Callable[[grpc.aio.Server], None]
    """Adds the servicers to the server."""
    service_names: Sequence[str]
    """Fully-qualified gRPC service names, for health and reflection."""
    error_map: ErrorMap = field(default_factory=dict)
    """Core exception types mapped to status codes."""
    on_stop: Callable[[], Awaitable[None]] | None = None
    """Closes pools, stops engine threads; runs after the server has drained."""


@dataclass
class RunningServer:
    """A started server; ``port`` is the bound port (useful when asked for 0)."""

    spec: ServiceSpec
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer

    @property
    def target(self) -> str:
        """``host:port`` for clients on this machine."""
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting calls, let in-flight ones finish within ``grace``, then clean up."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self.spec.on_stop is not None:
            await self.spec.on_stop()
        log.info("%s stopped", self.spec.name)


async def start_server(spec: ServiceSpec, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start ``spec`` on ``host:port`` and mark it SERVING."""
    interceptors = [*server_interceptors(), ErrorMappingInterceptor(spec.error_map)]
    server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
    spec.register(server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*spec.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"{spec.name}: could not bind {host}:{port}")
    await server.start()
    for name in ["", *spec.service_names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("%s listening on %s:%d", spec.name, host, bound)
    return RunningServer(spec=spec, server=server, port=bound, health=health_servicer)


def configure_logging(level: str, name: str) -> None:
    """Plain, greppable log lines; ``avatar up`` prefixes them with the service name."""
    logging.basicConfig(
        level=level.upper(), format=f"%(asctime)s %(levelname)s [{name}] %(name)s: %(message)s"
    )


async def run_until_signal(build: Callable[[], Awaitable[ServiceSpec]], config: ServerConfig) -> None:
    """Build the service, serve it, and shut down gracefully on SIGTERM or SIGINT."""
    spec = await build()
    setup_tracing(spec.name, config.otlp_endpoint)
    running = await start_server(spec, config.host, config.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("%s: signal received, draining for up to %.1fs", spec.name, config.grace_seconds)
    await running.stop(config.grace_seconds)


def main_for(name: str, build: Callable[[], Awaitable[ServiceSpec]], config: ServerConfig) -> None:
    """Entry point body of ``python -m services.<name>``."""
    configure_logging(config.log_level, name)
    asyncio.run(run_until_signal(build, config))
