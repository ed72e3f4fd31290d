"""Wrapping gRPC method handlers, shared by the server interceptors (errors, auth, metrics).

A grpc.aio interceptor receives a method handler and returns one; to act around the servicer it
has to rebuild the handler with wrapped behaviour. Responses are either one awaited message
(unary-unary, stream-unary) or an async stream (unary-stream, stream-stream); the request side
(one message or an iterator) passes through as the opaque first argument.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

Context = grpc.aio.ServicerContext[Any, Any]
UnaryBehaviour = Callable[[Any, Context], Awaitable[Any]]
StreamBehaviour = Callable[[Any, Context], AsyncIterator[Any]]


def rewrap(
    handler: Any,
    unary: Callable[[UnaryBehaviour], UnaryBehaviour],
    streaming: Callable[[StreamBehaviour], StreamBehaviour],
) -> Any:
    """A copy of ``handler`` whose behaviour is wrapped by ``unary`` or ``streaming``."""
    args = (handler.request_deserializer, handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), *args)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), *args)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), *args)  # type: ignore[arg-type]
    return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), *args)  # type: ignore[arg-type]


def streams_requests(handler: Any) -> bool:
    """Whether the client sends a stream of requests (the first argument is an iterator)."""
    return bool(handler.stream_unary or handler.stream_stream)
