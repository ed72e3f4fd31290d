"""Channels of the CLI (``avatar ingest``, ``chat``, ``demo``) with TLS and an API key when configured."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from services.common.clients import channel_credentials, channel_options
from services.common.config import ClientSecurity


class _SyncBearer(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
):
    """Sends ``authorization: Bearer <AVATAR_API_KEY>`` on a plaintext channel."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=[*(details.metadata or ()), self._header])

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def cli_channel(target: str, security: ClientSecurity | None = None) -> grpc.Channel:
    """A blocking channel to ``target`` using ``AVATAR_TLS_*`` and ``AVATAR_API_KEY`` when set."""
    security = security if security is not None else ClientSecurity.for_cli()
    creds = channel_credentials(security)
    options = channel_options(security)
    if creds is not None:
        return grpc.secure_channel(target, creds, options=options)
    channel = grpc.insecure_channel(target, options=options)
    return grpc.intercept_channel(channel, _SyncBearer(security.token)) if security.token else channel
