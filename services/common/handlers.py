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


class HandlerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg, unused-ignore]
    """A server interceptor that acts by replacing the method handler (usually via :func:`rewrap`)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: let grpc answer UNIMPLEMENTED
            return None
        return await self.wrap(handler, handler_call_details)

    async def wrap(self, handler: Any, details: grpc.HandlerCallDetails) -> Any:
        """The handler to serve the call with."""
        raise NotImplementedError
