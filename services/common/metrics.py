"""Prometheus metrics: one registry per process, served on ``AVATAR_<SERVICE>_METRICS_PORT``.

Every service records RPC counts and latencies through :class:`MetricsInterceptor`; the inference
engine adds its own gauges and counters (queue depth, batch size, KV-cache use and hits, tokens)
from :data:`INFERENCE`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from services.common.handlers import Context, HandlerInterceptor, StreamBehaviour, UnaryBehaviour, rewrap

REGISTRY = CollectorRegistry()
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

RPC_REQUESTS = Counter(
    "avatar_rpc_requests",
    "RPCs handled, by final status code.",
    ["service", "method", "code"],
    registry=REGISTRY,
)
RPC_LATENCY = Histogram(
    "avatar_rpc_latency_seconds",
    "RPC duration until the last response message.",
    ["service", "method"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)


@dataclass(frozen=True)
class InferenceMetrics:
    """What the inference engine reports."""

    queue_depth: Gauge
    batch_size: Gauge
    kv_blocks_used: Gauge
    kv_blocks_total: Gauge
    prefix_hit_tokens: Counter
    prefix_miss_tokens: Counter
    generated_tokens: Counter
    time_to_first_token: Histogram


INFERENCE = InferenceMetrics(
    queue_depth=Gauge("avatar_inference_queue_depth", "Requests waiting for admission.", registry=REGISTRY),
    batch_size=Gauge("avatar_inference_batch_size", "Sequences in the running batch.", registry=REGISTRY),
    kv_blocks_used=Gauge(
        "avatar_kv_cache_blocks_used", "KV-cache blocks in use or cached.", registry=REGISTRY
    ),
    kv_blocks_total=Gauge(
        "avatar_kv_cache_blocks_total", "KV-cache blocks in the budget.", registry=REGISTRY
    ),
    prefix_hit_tokens=Counter(
        "avatar_kv_cache_hit_tokens", "Prompt tokens served from the prefix cache.", registry=REGISTRY
    ),
    prefix_miss_tokens=Counter("avatar_kv_cache_miss_tokens", "Prompt tokens computed.", registry=REGISTRY),
    generated_tokens=Counter("avatar_generated_tokens", "Tokens generated.", registry=REGISTRY),
    time_to_first_token=Histogram(
        "avatar_time_to_first_token_seconds",
        "Admission to first token.",
        buckets=_LATENCY_BUCKETS,
        registry=REGISTRY,
    ),
)


def start_metrics_endpoint(port: int, host: str = "0.0.0.0") -> int:
    """Serve ``/metrics`` over HTTP; returns the bound port (useful with 0)."""
    server, _ = start_http_server(port, addr=host, registry=REGISTRY)
    return int(server.server_port)


class MetricsInterceptor(HandlerInterceptor):
    """Counts RPCs by status code and times them.

    Args:
        service: Service name used as the ``service`` label.
    """

    def __init__(self, service: str) -> None:
        self._service = service

    async def wrap(self, handler: Any, details: grpc.HandlerCallDetails) -> Any:
        service, method = self._service, details.method

        def record(started: float, context: Context, failed: BaseException | None) -> None:
            code = context.code()
            if isinstance(code, grpc.StatusCode):
                name = code.name
            elif failed is None:
                name = "OK"
            else:
                name = "CANCELLED" if isinstance(failed, asyncio.CancelledError) else "UNKNOWN"
            RPC_REQUESTS.labels(service, method, name).inc()
            RPC_LATENCY.labels(service, method).observe(time.perf_counter() - started)

        def unary(inner: UnaryBehaviour) -> UnaryBehaviour:
            async def call(request: Any, context: Context) -> Any:
                started, failed = time.perf_counter(), None
                try:
                    return await inner(request, context)
                except BaseException as exc:
                    failed = exc
                    raise
                finally:
                    record(started, context, failed)

            return call

        def streaming(inner: StreamBehaviour) -> StreamBehaviour:
            async def call(request: Any, context: Context) -> AsyncIterator[Any]:
                started, failed = time.perf_counter(), None
                try:
                    async for item in inner(request, context):
                        yield item
                except BaseException as exc:
                    failed = exc
                    raise
                finally:
                    record(started, context, failed)

            return call

        return rewrap(handler, unary, streaming)
