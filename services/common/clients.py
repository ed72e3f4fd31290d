"""Channels to other services: tracing interceptors, retries on UNAVAILABLE, size limits."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from services.common.config import ClientSecurity
from services.common.server import MAX_MESSAGE_BYTES
from services.common.telemetry import client_interceptors

# Retry only what is safe to retry: UNAVAILABLE means the call never reached a handler.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


class _BearerToken(grpc.AuthMetadataPlugin):
    """Adds ``authorization: Bearer <token>`` to every call (service token or API key)."""

    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def __call__(self, context: Any, callback: Callable[..., None]) -> None:
        callback(self._metadata, None)


class _BearerInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Plaintext channels cannot carry call credentials, so the token rides in metadata here."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: Any) -> Any:
        metadata = [*(details.metadata or ()), self._header]
        return details._replace(metadata=grpc.aio.Metadata(*metadata))

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)

    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._with_token(details), request_iterator)

    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._with_token(details), request_iterator)


def channel_credentials(security: ClientSecurity) -> grpc.ChannelCredentials | None:
    """TLS (and mTLS) channel credentials, with the token as call credentials; ``None`` = plaintext."""
    if not security.ca:
        return None
    creds = grpc.ssl_channel_credentials(
        root_certificates=Path(security.ca).read_bytes(),
        private_key=Path(security.key).read_bytes() if security.key else None,
        certificate_chain=Path(security.cert).read_bytes() if security.cert else None,
    )
    if security.token:
        creds = grpc.composite_channel_credentials(
            creds, grpc.metadata_call_credentials(_BearerToken(security.token))
        )
    return creds


#: A service that was down is reconnected to within about a second once it is back: gRPC's default
#: reconnect back-off grows to two minutes, and a call made inside the back-off fails at once even
#: when the service is up again (a service that started after its caller first tried it). An
#: attempt to a service still down is one refused connection: cheap at one a second.
RECONNECT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
#: How long a caller whose call failed UNAVAILABLE waits for its channel to reconnect before giving
#: up: the longest reconnect back-off above plus its 20% jitter, and a little.
RECONNECT_GRACE_SECONDS = 1.5


async def ready_within(channel: grpc.aio.Channel, seconds: float) -> bool:
    """Whether ``channel`` is (or becomes) READY within ``seconds`` (it is asked to connect)."""
    try:
        await asyncio.wait_for(channel.channel_ready(), seconds)
    except TimeoutError:
        return False
    return True


def channel_options(security: ClientSecurity) -> list[tuple[str, Any]]:
    """Size limits, retries, a short reconnect back-off and the TLS name override."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        *RECONNECT_OPTIONS,
    ]
    if security.server_name:
        options.append(("grpc.ssl_target_name_override", security.server_name))
    return options


def open_channel(
    target: str,
    security: ClientSecurity | None = None,
    extra_options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """A channel to another service with tracing, retries, and TLS/token when configured.

    Args:
        target: ``host:port``.
        security: TLS and token settings; default: read from the environment for service calls.
        extra_options: More channel arguments (e.g. a shorter reconnect back-off).
    """
    security = security if security is not None else ClientSecurity.for_services()
    interceptors: list[Any] = list(client_interceptors())
    creds = channel_credentials(security)
    options = [*channel_options(security), *extra_options]
    if creds is not None:
        return grpc.aio.secure_channel(target, creds, options=options, interceptors=interceptors)
    if security.token:
        interceptors.append(_BearerInterceptor(security.token))
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)


def split_target(target: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as its host and port.

    Raises:
        ValueError: No port, or a port that is not a number.
    """
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {target!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


async def resolve_all(target: str) -> list[str]:
    """Every address ``host:port`` resolves to, as sorted ``ip:port`` targets.

    A Kubernetes headless Service answers with one record per ready pod, so this lists the
    replicas behind it (gRPC's own resolver would hide them behind one channel).

    Raises:
        OSError: The name does not resolve.
    """
    host, port = split_target(target)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found = set()
    for family, _, _, _, sockaddr in infos:
        ip = str(sockaddr[0])
        found.add(f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}")
    return sorted(found)
