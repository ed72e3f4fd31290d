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
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from services.common.auth import AuthInterceptor, KeyStore
from services.common.config import ServerConfig
from services.common.errors import ErrorMap, ErrorMappingInterceptor
from services.common.metrics import MetricsInterceptor, start_metrics_endpoint
from services.common.telemetry import server_interceptors, setup_tracing

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def server_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """Channel args of every server: size limits (oversize requests get RESOURCE_EXHAUSTED)."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
    ]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials when a certificate is configured; mTLS when a client CA is too."""
    if not (config.tls_cert and config.tls_key):
        return None
    client_ca = _read(config.tls_client_ca) if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(_read(config.tls_key), _read(config.tls_cert))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


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


async def start_server(
    spec: ServiceSpec, host: str = "127.0.0.1", port: int = 0, config: ServerConfig | None = None
) -> RunningServer:
    """Start ``spec`` on ``host:port`` and mark it SERVING.

    ``config`` adds TLS, authentication and the message size limit; without it the server is
    plaintext and open (what the in-process tests use).
    """
    interceptors: list[Any] = [*server_interceptors(), MetricsInterceptor(spec.name)]
    if config is not None and config.auth_required:
        keys = KeyStore(config.database_url) if config.database_url else None
        interceptors.append(AuthInterceptor(keys, config.service_token))
    interceptors.append(ErrorMappingInterceptor(spec.error_map))
    limit = config.max_message_bytes if config is not None else MAX_MESSAGE_BYTES
    server = grpc.aio.server(interceptors=interceptors, options=server_options(limit))
    spec.register(server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*spec.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    creds = server_credentials(config) if config is not None else None
    address = f"{host}:{port}"
    bound = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
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
    if config.metrics_port is not None:
        port = start_metrics_endpoint(config.metrics_port, config.host)
        log.info("%s: Prometheus metrics on http://%s:%d/metrics", spec.name, config.host, port)
    running = await start_server(spec, config.host, config.port, config)
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
