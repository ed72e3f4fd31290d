"""OpenTelemetry tracing for every service.

Traces are always recorded and trace context always propagates across hops (W3C ``traceparent``
in gRPC metadata), so one fan turn is one trace; spans are exported by OTLP only when
``AVATAR_OTLP_ENDPOINT`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger(__name__)

_provider: TracerProvider | None = None


def setup_tracing(
    service_name: str, otlp_endpoint: str | None, extra_processors: Sequence[SpanProcessor] = ()
) -> TracerProvider:
    """Install the process-wide tracer provider once (later calls add processors only).

    Several services may share one process in tests; they then share one provider, which is
    what lets a test see the whole span tree of a turn.
    """
    global _provider
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
            log.info("exporting traces to %s", otlp_endpoint)
        trace.set_tracer_provider(_provider)
    for processor in extra_processors:
        _provider.add_span_processor(processor)
    return _provider


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:  # type: ignore[type-arg, unused-ignore]
    """Interceptors that open a server span per RPC, continuing the caller's trace."""
    return [aio_server_interceptor(tracer_provider=_provider)]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that open a client span per call and inject the trace context."""
    return list(aio_client_interceptors(tracer_provider=_provider))  # type: ignore[no-untyped-call]


def tracer(name: str) -> trace.Tracer:
    """A tracer for spans inside a service (e.g. one per turn stage)."""
    return trace.get_tracer(name)
