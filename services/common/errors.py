"""Domain errors and the server interceptor that maps them to gRPC status codes.

Core code raises plain exceptions that know nothing of gRPC; each service registers which of its
exception types mean which status code. Anything unregistered is a bug and becomes INTERNAL with
a generic message (the details go to the log, not to the caller).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import psycopg
import psycopg_pool
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.common.handlers import Context, HandlerInterceptor, StreamBehaviour, UnaryBehaviour, rewrap

log = logging.getLogger(__name__)


class AvatarError(Exception):
    """Base of errors that carry their own status code."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidArgument(AvatarError, ValueError):
    """The caller sent something malformed."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(AvatarError, LookupError):
    """The named thing does not exist (for this tenant)."""

    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(AvatarError):
    """The system is not in a state where the request can run."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(AvatarError):
    """A dependency is down; retrying later may succeed."""

    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(AvatarError):
    """A quota or queue is full.

    Args:
        message: What ran out.
        subject: The quota subject for the QuotaFailure detail (e.g. "inference-queue").
    """

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, subject: str = "") -> None:
        super().__init__(message)
        self.subject = subject


ErrorMap = Mapping[type[BaseException], grpc.StatusCode]


# A store that is down or restarting is a transient condition the caller may retry, not a bug.
_INFRA_UNAVAILABLE: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg_pool.PoolTimeout)


def status_for(exc: BaseException, extra: ErrorMap) -> grpc.StatusCode | None:
    """The status code for ``exc``: its own, a registered one, or ``None`` for unexpected errors."""
    if isinstance(exc, AvatarError):
        return exc.code
    for exc_type, code in extra.items():
        if isinstance(exc, exc_type):
            return code
    if isinstance(exc, _INFRA_UNAVAILABLE):
        return grpc.StatusCode.UNAVAILABLE
    return None


def _details_trailer(exc: BaseException, code: grpc.StatusCode) -> tuple[tuple[str, bytes], ...]:
    # Rich error details (google.rpc.Status in grpc-status-details-bin) let clients react to a
    # full queue programmatically instead of parsing the message.
    if not isinstance(exc, ResourceExhausted):
        return ()
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.QuotaFailure(
            violations=[error_details_pb2.QuotaFailure.Violation(subject=exc.subject, description=str(exc))]
        )
    )
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=str(exc), details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()),)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, extra: ErrorMap) -> None:
    code = status_for(exc, extra)
    if code is None:
        log.exception("unhandled error", exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        return
    trailer = _details_trailer(exc, code)
    if trailer:
        context.set_trailing_metadata(trailer)
    await context.abort(code, str(exc) or code.name)


async def _relay(context: grpc.aio.ServicerContext[Any, Any], exc: grpc.aio.AioRpcError) -> None:
    # A downstream service already chose the right code (e.g. UNAVAILABLE when inference is down,
    # INVALID_ARGUMENT for a bad creator id): pass it through rather than hiding it as UNKNOWN.
    code = exc.code()
    if code == grpc.StatusCode.CANCELLED:
        # The downstream call was cancelled because our own caller went away; nothing to tell.
        raise exc
    await context.abort(code, f"{exc.details() or code.name}")


class ErrorMappingInterceptor(HandlerInterceptor):
    """Turns domain exceptions raised by servicers into status codes.

    Args:
        extra: Exception types of the service's core mapped to status codes.
    """

    def __init__(self, extra: ErrorMap | None = None) -> None:
        self._extra: ErrorMap = dict(extra or {})

    async def wrap(self, handler: Any, details: grpc.HandlerCallDetails) -> Any:
        extra = self._extra

        def unary(inner: UnaryBehaviour) -> UnaryBehaviour:
            async def call(request: Any, context: Context) -> Any:
                try:
                    return await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except grpc.aio.AioRpcError as exc:
                    await _relay(context, exc)
                except Exception as exc:
                    await _abort(context, exc, extra)

            return call

        def streaming(inner: StreamBehaviour) -> StreamBehaviour:
            async def call(request: Any, context: Context) -> AsyncIterator[Any]:
                try:
                    async for item in inner(request, context):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except grpc.aio.AioRpcError as exc:
                    await _relay(context, exc)
                except Exception as exc:
                    await _abort(context, exc, extra)

            return call

        return rewrap(handler, unary, streaming)
