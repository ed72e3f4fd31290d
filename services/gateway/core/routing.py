"""Which inference replica serves a request: creator affinity by rendezvous hashing, with failover.

Every fan of a creator shares the creator's persona prefix, and every turn of a conversation shares
its history, so sending all of a creator's Generate calls to one replica is what keeps that
replica's prefix KV cache hot. Rendezvous (highest-random-weight) hashing gives each creator a full
ranking of the replicas: the first is its home, the rest are the failover order. Adding or removing a
replica only moves the creators whose top choice changed, about 1/N of them, and needs no ring, no
virtual nodes and no shared state between gateway replicas: every gateway computes the same answer
from the same address list.

Pure and synchronous (no gRPC, no clock of its own): the gateway's inference client feeds it the
current addresses, the time and what it saw fail.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

#: First back-off after a replica is seen down, doubled per consecutive failure up to the maximum.
BACKOFF_SECONDS = 1.0
#: Longest a replica is skipped; it is then probed again by real traffic.
MAX_BACKOFF_SECONDS = 30.0


def _weight(replica: str, key: str) -> int:
    # A keyed digest rather than hash(): Python randomises str hashes per process, and every
    # gateway replica must rank the inference replicas identically.
    digest = hashlib.blake2b(f"{replica}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rank(key: str, replicas: Sequence[str]) -> list[str]:
    """All ``replicas`` ordered by preference for ``key`` (highest rendezvous weight first).

    Args:
        key: What requests are grouped by (the creator id).
        replicas: Replica addresses; their order does not matter, duplicates are dropped.

    Returns:
        The replicas, home first; the same for the same key and set of replicas in any process.
    """
    # The address breaks (astronomically unlikely) weight ties so the order never depends on input order.
    return sorted(set(replicas), key=lambda r: (_weight(r, key), r), reverse=True)


def home(key: str, replicas: Sequence[str]) -> str:
    """The replica ``key`` is served by while every replica is up.

    Raises:
        ValueError: No replicas.
    """
    if not replicas:
        raise ValueError("no inference replicas")
    return rank(key, replicas)[0]


@dataclass
class _Strike:
    failures: int
    down_until: float


@dataclass
class ReplicaHealth:
    """Replicas recently seen UNAVAILABLE, each skipped until its back-off ends.

    A replica is only ever marked down by a failed call and marked up by a successful one: there is
    no probing of its own, because the next request ranked to it after the back-off is the probe.

    Args:
        backoff: First back-off in seconds.
        max_backoff: Cap of the doubling back-off.
    """

    backoff: float = BACKOFF_SECONDS
    max_backoff: float = MAX_BACKOFF_SECONDS
    _strikes: dict[str, _Strike] = field(default_factory=dict)

    def mark_down(self, replica: str, now: float) -> float:
        """Record a failed call to ``replica`` at ``now``; returns when it may be tried again."""
        strike = self._strikes.get(replica)
        failures = 1 if strike is None else strike.failures + 1
        wait = min(self.max_backoff, self.backoff * 2.0 ** min(failures - 1, 30))
        self._strikes[replica] = _Strike(failures, now + wait)
        return now + wait

    def mark_up(self, replica: str) -> None:
        """Record a successful call: the replica is healthy again and its back-off resets."""
        self._strikes.pop(replica, None)

    def is_down(self, replica: str, now: float) -> bool:
        """Whether ``replica`` is still inside its back-off at ``now``."""
        strike = self._strikes.get(replica)
        return strike is not None and now < strike.down_until

    def forget_except(self, replicas: Sequence[str]) -> None:
        """Drop what is known about replicas no longer configured (scaled away)."""
        keep = set(replicas)
        for replica in [r for r in self._strikes if r not in keep]:
            del self._strikes[replica]


def failover_order(key: str, replicas: Sequence[str], health: ReplicaHealth, now: float) -> list[str]:
    """The replicas to try for ``key``, in order.

    Healthy replicas come first in rendezvous order, so a creator whose home is down goes to its
    second choice (the same one on every gateway, so its cache warms there once). Replicas inside a
    back-off come last, still in rendezvous order, rather than not at all: when every replica looks
    down, trying them is better than failing a fan without a call.
    """
    ranked = rank(key, replicas)
    return [r for r in ranked if not health.is_down(r, now)] + [r for r in ranked if health.is_down(r, now)]


def any_order(replicas: Sequence[str], health: ReplicaHealth, now: float, turn: int) -> list[str]:
    """The replicas to try for a request any replica can serve (embeddings), in order.

    Round robin over the healthy replicas starting at ``turn`` spreads the load; replicas inside a
    back-off come last.

    Args:
        replicas: Replica addresses.
        health: What has been seen failing.
        now: The current time (same clock as ``health``).
        turn: A counter the caller increments per request.
    """
    ordered = sorted(set(replicas))
    healthy = [r for r in ordered if not health.is_down(r, now)]
    down = [r for r in ordered if health.is_down(r, now)]
    if healthy:
        start = turn % len(healthy)
        healthy = healthy[start:] + healthy[:start]
    return healthy + down
