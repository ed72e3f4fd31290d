"""Channels to other services: tracing interceptors, retries on UNAVAILABLE, size limits."""

from __future__ import annotations

import json

import grpc

from services.common.server import MAX_MESSAGE_BYTES
from services.common.telemetry import client_interceptors

# Retry only what is safe to retry: UNAVAILABLE means the call never reached a handler.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def open_channel(target: str) -> grpc.aio.Channel:
    """An insecure channel to ``target`` (``host:port``) with tracing and retries."""
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
        ],
        interceptors=client_interceptors(),
    )
