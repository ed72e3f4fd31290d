"""The inference replicas the gateway calls: one channel per replica, kept in step with DNS.

Routing needs to know every replica by address (a creator's requests go to one of them), so the
gateway opens its own channel per replica instead of letting one gRPC channel balance behind a name.
With a static list the set never changes; with the DNS name of a Kubernetes headless Service it is
re-resolved periodically, so replicas the HPA adds receive their share of creators and removed ones
stop receiving any.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc

from avatar.v1 import inference_service_pb2_grpc as inf_grpc
from services.common.clients import open_channel, ready_within
from services.gateway.core.routing import ReplicaHealth

log = logging.getLogger(__name__)

Resolver = Callable[[], Awaitable[list[str]]]
"""Returns the current replica addresses (e.g. a DNS lookup)."""
Connector = Callable[[str], grpc.aio.Channel]
"""Opens a channel to one replica address."""

#: How long calls still running on a replica that left the set may finish.
DRAIN_SECONDS = 30.0


def connect(address: str) -> grpc.aio.Channel:
    """A channel to one inference replica (reconnecting quickly after it comes back, as every
    channel of :func:`open_channel` does)."""
    return open_channel(address)


@dataclass(frozen=True)
class Replica:
    """One inference replica."""

    address: str
    stub: inf_grpc.InferenceServiceAsyncStub
    channel: grpc.aio.Channel | None
    """``None`` when the caller owns the channel."""


class InferenceReplicas:
    """The current set of inference replicas and what has been seen failing.

    Args:
        addresses: The replicas at start (a static list, or the first DNS answer).
        resolve: Re-reads the addresses; ``None`` = the set is static.
        refresh_seconds: How often ``resolve`` runs.
        connector: Opens a channel per address.
        clock: Monotonic seconds, shared with the routing back-off.
    """

    def __init__(
        self,
        addresses: Sequence[str] = (),
        *,
        resolve: Resolver | None = None,
        refresh_seconds: float = 10.0,
        connector: Connector = connect,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.health = ReplicaHealth()
        self.clock = clock
        self._resolve = resolve
        self._refresh = refresh_seconds
        self._connector = connector
        self._replicas: dict[str, Replica] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self.set_addresses(addresses)

    @classmethod
    def of_stub(
        cls, stub: inf_grpc.InferenceServiceAsyncStub, address: str = "inference"
    ) -> InferenceReplicas:
        """One replica behind a stub the caller already opened (and closes)."""
        replicas = cls()
        replicas._replicas[address] = Replica(address, stub, None)
        return replicas

    @property
    def addresses(self) -> list[str]:
        """The replicas now, sorted."""
        return sorted(self._replicas)

    def stub(self, address: str) -> inf_grpc.InferenceServiceAsyncStub | None:
        """The stub of a replica, or ``None`` when it has just left the set."""
        replica = self._replicas.get(address)
        return None if replica is None else replica.stub

    def set_addresses(self, addresses: Sequence[str]) -> None:
        """Open channels to new replicas and drain those no longer listed."""
        wanted = set(addresses)
        for address in sorted(wanted - set(self._replicas)):
            channel = self._connector(address)
            self._replicas[address] = Replica(address, inf_grpc.InferenceServiceStub(channel), channel)
            log.info("inference replica %s added", address)
        for address in sorted(set(self._replicas) - wanted):
            gone = self._replicas.pop(address)
            log.info("inference replica %s removed", address)
            if gone.channel is not None:
                # Streams already on it may finish their reply; new requests go elsewhere now.
                task = asyncio.get_running_loop().create_task(gone.channel.close(DRAIN_SECONDS))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        self.health.forget_except(list(wanted))

    async def first_ready(self, addresses: Sequence[str], *, within: float) -> str | None:
        """The first of ``addresses`` whose channel is (or becomes) READY within ``within`` seconds.

        A call on a channel inside its reconnect back-off fails at once with UNAVAILABLE, even when
        the replica is already back; waiting for the channel's next attempt tells the two apart.
        Replicas whose channel the caller owns cannot be watched and are skipped (``None`` if none).
        """
        waits: dict[asyncio.Future[bool], str] = {}
        for address in dict.fromkeys(addresses):
            replica = self._replicas.get(address)
            if replica is not None and replica.channel is not None:
                waits[asyncio.ensure_future(ready_within(replica.channel, within))] = address
        pending: set[asyncio.Future[bool]] = set(waits)
        try:
            while pending:  # each wait ends by itself within ``within``
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    if not future.cancelled() and future.exception() is None and future.result():
                        return waits[future]
            return None
        finally:
            for future in pending:
                future.cancel()

    async def refresh(self) -> None:
        """Resolve the addresses once; a failed or empty answer keeps the current set.

        Keeping the last known replicas on a DNS hiccup is deliberate: routing to replicas that
        may still be there beats refusing every fan.
        """
        if self._resolve is None:
            return
        try:
            found = await self._resolve()
        except OSError as exc:
            log.warning("resolving inference replicas failed (keeping %d): %s", len(self._replicas), exc)
            return
        if found:
            self.set_addresses(found)
        else:
            log.warning("no inference replicas resolved (keeping %d)", len(self._replicas))

    async def start(self) -> None:
        """Resolve once now, then keep re-resolving in the background (no-op for a static set)."""
        if self._resolve is None or self._loop is not None:
            return
        await self.refresh()
        self._loop = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            await self.refresh()

    async def close(self) -> None:
        """Stop re-resolving and close every channel this object opened."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for replica in self._replicas.values():
            if replica.channel is not None:
                await replica.channel.close(None)
        self._replicas.clear()
        for task in list(self._closing):
            task.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)
