"""Domain exceptions of the memory core; the server's error interceptor maps them to gRPC codes."""

from __future__ import annotations


class MemoryStoreError(Exception):
    """Base of every error the memory core raises on purpose (never named ``MemoryError``: builtin)."""


class InvalidArgument(MemoryStoreError, ValueError):
    """The caller sent something malformed (maps to INVALID_ARGUMENT); the message says what."""


class NotFound(MemoryStoreError, LookupError):
    """The named creator, source or conversation does not exist (maps to NOT_FOUND)."""


class Conflict(MemoryStoreError):
    """A write lost a race: the caller's expected version is not the stored one (maps to ABORTED)."""
