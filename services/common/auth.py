"""API keys, roles and the server interceptor that enforces them.

Callers pass ``authorization: Bearer <key>`` metadata. Three kinds of key exist:

* API keys (``av_<id>_<secret>``) stored hashed in Postgres, with a role: ``fan-app`` and
  ``creator-admin`` are bound to one creator, ``operator`` to none;
* the service token (``AVATAR_SERVICE_TOKEN``), shared by the five services for their calls to
  each other, so internal RPCs (policy checks, memory writes, inference) are never open to fans.

Which role may call which RPC is a table here (:data:`RULES`); a tenant key's creator must match the
``creator_id`` of the request, so a fan app for creator A can never read creator B's avatar.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg

from services.common.db import apply_migrations
from services.common.handlers import (
    Context,
    HandlerInterceptor,
    StreamBehaviour,
    UnaryBehaviour,
    rewrap,
    streams_requests,
)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
COMPONENT = "auth"
CACHE_TTL_S = 30.0  # a revoked key stops working within this long


class Role(enum.StrEnum):
    """What a caller is."""

    FAN_APP = "fan-app"
    CREATOR_ADMIN = "creator-admin"
    OPERATOR = "operator"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    role: Role
    creator_id: str | None = None
    key_id: str = ""


ALL = frozenset(Role)
INTERNAL = frozenset({Role.SERVICE, Role.OPERATOR})
CREATOR = frozenset({Role.CREATOR_ADMIN, Role.OPERATOR, Role.SERVICE})

# Longest matching prefix wins. Health checks are open so orchestrators can probe.
RULES: dict[str, frozenset[Role] | None] = {
    "/grpc.health.v1.Health/": None,
    "/grpc.reflection.": INTERNAL,
    "/avatar.v1.ConversationService/": ALL,
    "/avatar.v1.IngestService/": CREATOR,
    "/avatar.v1.PolicyService/": CREATOR,
    "/avatar.v1.PolicyService/CheckInput": INTERNAL,
    "/avatar.v1.PolicyService/CheckOutput": INTERNAL,
    "/avatar.v1.PolicyService/RecordTurn": INTERNAL,
    "/avatar.v1.PolicyService/SubmitDraft": INTERNAL,
    "/avatar.v1.PolicyService/ListFanReplies": INTERNAL,
    "/avatar.v1.PolicyService/MarkDelivered": INTERNAL,
    "/avatar.v1.PolicyService/PurgeAudit": INTERNAL,
    # The creator may read the edits the avatar learns from; the gateway reads them for the prompt.
    "/avatar.v1.PolicyService/ListVoiceExamples": CREATOR,
    "/avatar.v1.MemoryService/": INTERNAL,
    "/avatar.v1.MemoryService/DeleteSource": CREATOR,
    "/avatar.v1.MemoryService/DeleteCreator": CREATOR,
    "/avatar.v1.MemoryService/GetCreatorStats": CREATOR,
    "/avatar.v1.MemoryService/ListTurns": CREATOR,
    "/avatar.v1.MemoryService/ListConversations": CREATOR,
    "/avatar.v1.MemoryService/ForgetFan": CREATOR,
    # The creator reads and corrects their persona profile here; only ingest writes what it
    # computed (PutPersonaProfile stays internal: a creator corrects, never overwrites, the computation).
    "/avatar.v1.MemoryService/GetPersonaProfile": CREATOR,
    "/avatar.v1.MemoryService/UpdatePersonaProfile": CREATOR,
    "/avatar.v1.InferenceService/": INTERNAL,
}


def allowed_roles(method: str) -> frozenset[Role] | None:
    """Roles allowed to call ``method`` (``None``: no authentication needed).

    Methods no rule covers are allowed to operators and services only: new RPCs are closed to
    tenants until someone decides otherwise.
    """
    best = max((p for p in RULES if method.startswith(p)), key=len, default=None)
    return RULES[best] if best is not None else INTERNAL


def hash_secret(secret: str) -> str:
    """Keys are 256-bit random, so a plain SHA-256 is enough (no password stretching needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(key: str) -> tuple[str, str] | None:
    """Split ``av_<id>_<secret>`` into ``(id, secret)``."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "av" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class KeyStore:
    """API keys in Postgres, with a short in-process cache of lookups.

    Args:
        url: Postgres URL.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._migrated = False

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if not self._migrated:
            await apply_migrations(self._url, COMPONENT, MIGRATIONS_DIR)
            self._migrated = True
        return await psycopg.AsyncConnection.connect(self._url, autocommit=True)

    async def create(self, role: Role, creator_id: str | None = None, label: str = "") -> str:
        """Create a key and return it; only its hash is stored, so this is the only time it is seen."""
        if role is Role.SERVICE:
            raise ValueError("service calls use AVATAR_SERVICE_TOKEN, not stored keys")
        if (role is Role.OPERATOR) != (creator_id is None):
            raise ValueError("fan-app and creator-admin keys need a creator; operator keys must not have one")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32).replace("_", "-")
        async with await self._connect() as conn:
            await conn.execute(
                "INSERT INTO api_keys (key_id, secret_hash, role, creator_id, label)"
                " VALUES (%s, %s, %s, %s, %s)",
                (key_id, hash_secret(secret), role.value, creator_id, label),
            )
        return f"av_{key_id}_{secret}"

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key; True when it existed and was active."""
        async with await self._connect() as conn:
            cur = await conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL", (key_id,)
            )
            self._cache.clear()
            return cur.rowcount == 1

    async def lookup(self, key: str) -> Principal | None:
        """The principal of a valid, unrevoked key, else ``None``."""
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < CACHE_TTL_S:
            return cached[1]
        principal = await self._lookup(key)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, principal)
        return principal

    async def _lookup(self, key: str) -> Principal | None:
        parsed = parse_key(key)
        if parsed is None:
            return None
        key_id, secret = parsed
        async with await self._connect() as conn:
            cur = await conn.execute(
                "SELECT secret_hash, role, creator_id FROM api_keys WHERE key_id = %s AND revoked_at IS NULL",
                (key_id,),
            )
            row = await cur.fetchone()
        if row is None or not hmac.compare_digest(row[0], hash_secret(secret)):
            return None
        return Principal(role=Role(row[1]), creator_id=row[2], key_id=key_id)


def request_creator(request: Any) -> str | None:
    """The creator a request addresses, wherever the API puts it."""
    for path in (("creator_id",), ("controls", "creator_id"), ("header", "creator_id")):
        obj = request
        for name in path:
            if obj is None or not hasattr(obj, "DESCRIPTOR") or name not in obj.DESCRIPTOR.fields_by_name:
                obj = None
                break
            obj = getattr(obj, name)
        if isinstance(obj, str) and obj:
            return obj
    return None


class AuthInterceptor(HandlerInterceptor):
    """Authenticates every call and authorises it by role and creator.

    Args:
        keys: API key store (``None`` on services without a database: only the service token works).
        service_token: The shared token of internal calls.
    """

    def __init__(self, keys: KeyStore | None, service_token: str | None) -> None:
        self._keys = keys
        self._service_token = service_token

    async def authenticate(self, metadata: Any) -> Principal | None:
        """The caller's principal from ``authorization`` metadata, or ``None``."""
        value = dict(metadata or ()).get("authorization", "")
        if not isinstance(value, str) or not value.startswith("Bearer "):
            return None
        token = value.removeprefix("Bearer ").strip()
        if self._service_token and hmac.compare_digest(token.encode(), self._service_token.encode()):
            return Principal(role=Role.SERVICE)
        if self._keys is None:
            return None
        return await self._keys.lookup(token)

    async def wrap(self, handler: Any, details: grpc.HandlerCallDetails) -> Any:
        roles = allowed_roles(details.method)
        if roles is None:
            return handler
        principal = await self.authenticate(details.invocation_metadata)
        return _guard(handler, principal, roles, details.method)


def _deny(code: grpc.StatusCode, message: str, handler: Any) -> Any:
    def unary(inner: UnaryBehaviour) -> UnaryBehaviour:
        async def call(request: Any, context: Context) -> Any:
            await context.abort(code, message)

        return call

    def streaming(inner: StreamBehaviour) -> StreamBehaviour:
        async def call(request: Any, context: Context) -> AsyncIterator[Any]:
            await context.abort(code, message)
            yield  # pragma: no cover - abort raises

        return call

    return rewrap(handler, unary, streaming)


def _guard(handler: Any, principal: Principal | None, roles: frozenset[Role], method: str) -> Any:
    if principal is None:
        return _deny(
            grpc.StatusCode.UNAUTHENTICATED, "missing or invalid API key (authorization: Bearer ...)", handler
        )
    if principal.role not in roles:
        return _deny(
            grpc.StatusCode.PERMISSION_DENIED, f"role {principal.role.value} may not call {method}", handler
        )
    if principal.creator_id is None:
        return handler
    tenant = principal.creator_id
    message = f"this key belongs to creator {tenant!r}"
    request_stream = streams_requests(handler)

    # Tenant keys: every request must address the key's own creator. A single request is checked
    # before the servicer runs; a request stream (uploads) message by message as it arrives.
    async def check(request: Any, context: Context) -> Any:
        if not request_stream:
            if request_creator(request) not in (None, tenant):
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)
            return request

        async def checked() -> AsyncIterator[Any]:
            async for item in request:
                if request_creator(item) not in (None, tenant):
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)
                yield item

        return checked()

    def unary(inner: UnaryBehaviour) -> UnaryBehaviour:
        async def call(request: Any, context: Context) -> Any:
            return await inner(await check(request, context), context)

        return call

    def streaming(inner: StreamBehaviour) -> StreamBehaviour:
        async def call(request: Any, context: Context) -> AsyncIterator[Any]:
            async for item in inner(await check(request, context), context):
                yield item

        return call

    return rewrap(handler, unary, streaming)
