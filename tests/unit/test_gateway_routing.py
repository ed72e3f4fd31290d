"""Creator affinity of inference requests: rendezvous ranking, remapping on scale, failover order."""

from __future__ import annotations

from collections import Counter

import pytest

from services.common.clients import resolve_all, split_target
from services.common.config import ConfigError
from services.gateway.config import GatewayConfig
from services.gateway.core.routing import (
    ReplicaHealth,
    any_order,
    failover_order,
    home,
    rank,
)

pytestmark = pytest.mark.timeout(60)

CREATORS = [f"creator-{i}" for i in range(4000)]


def _replicas(n: int) -> list[str]:
    return [f"10.0.0.{i}:50055" for i in range(1, n + 1)]


def test_rank_is_a_stable_permutation_independent_of_list_order() -> None:
    replicas = _replicas(5)
    ranked = rank("maya-bakes", replicas)
    assert sorted(ranked) == sorted(replicas)
    assert rank("maya-bakes", list(reversed(replicas))) == ranked
    assert rank("maya-bakes", [*replicas, replicas[0]]) == ranked, "duplicates are dropped"
    # A keyed digest, not hash(): the same answer in every process and every gateway replica
    # (pinned, so changing the hash, which would move every creator's cache, is noticed).
    assert rank("maya-bakes", ["a:1", "b:1", "c:1"]) == ["c:1", "b:1", "a:1"]
    assert rank("c0", ["a:1", "b:1", "c:1"]) == ["c:1", "a:1", "b:1"]
    assert rank("c3", ["a:1", "b:1", "c:1"]) == ["b:1", "a:1", "c:1"]


def test_creators_spread_evenly() -> None:
    replicas = _replicas(4)
    load = Counter(home(c, replicas) for c in CREATORS)
    assert set(load) == set(replicas)
    expected = len(CREATORS) / len(replicas)
    assert all(abs(n - expected) < 0.15 * expected for n in load.values()), load


@pytest.mark.parametrize("n", [2, 5, 10])
def test_adding_a_replica_moves_about_one_nth_of_creators_and_only_to_it(n: int) -> None:
    before = _replicas(n)
    after = _replicas(n + 1)
    added = after[-1]
    moved = [c for c in CREATORS if home(c, before) != home(c, after)]
    assert all(home(c, after) == added for c in moved), "a creator only ever moves to the new replica"
    share = len(moved) / len(CREATORS)
    assert abs(share - 1 / (n + 1)) < 0.04, share


@pytest.mark.parametrize("n", [3, 5, 10])
def test_removing_a_replica_moves_only_its_creators_to_their_second_choice(n: int) -> None:
    before = _replicas(n)
    gone = before[1]
    after = [r for r in before if r != gone]
    for creator in CREATORS:
        if home(creator, before) == gone:
            assert home(creator, after) == rank(creator, before)[1]
        else:
            assert home(creator, after) == home(creator, before)
    share = sum(home(c, before) == gone for c in CREATORS) / len(CREATORS)
    assert abs(share - 1 / n) < 0.04, share


def test_failover_goes_to_the_next_ranked_replica_and_down_ones_come_last() -> None:
    replicas = _replicas(4)
    ranked = rank("rio", replicas)
    health = ReplicaHealth(backoff=1.0, max_backoff=8.0)
    assert failover_order("rio", replicas, health, now=0.0) == ranked

    health.mark_down(ranked[0], now=0.0)
    assert failover_order("rio", replicas, health, now=0.5) == [*ranked[1:], ranked[0]]
    health.mark_down(ranked[2], now=0.5)
    assert failover_order("rio", replicas, health, now=0.6) == [ranked[1], ranked[3], ranked[0], ranked[2]]
    # Back-off over: the home replica is tried first again (the request is the probe).
    assert failover_order("rio", replicas, health, now=1.0)[0] == ranked[0]

    health.mark_up(ranked[2])
    assert failover_order("rio", replicas, health, now=0.7) == [*ranked[1:], ranked[0]]


def test_backoff_doubles_per_consecutive_failure_up_to_the_cap_and_resets_on_success() -> None:
    health = ReplicaHealth(backoff=1.0, max_backoff=8.0)
    assert [health.mark_down("r", now=100.0) for _ in range(6)] == [101.0, 102.0, 104.0, 108.0, 108.0, 108.0]
    assert health.is_down("r", 107.9) and not health.is_down("r", 108.0)
    health.mark_up("r")
    assert not health.is_down("r", 100.0)
    assert health.mark_down("r", now=200.0) == 201.0
    for _ in range(5000):  # no overflow however long a replica stays down
        health.mark_down("r", now=300.0)
    assert health.is_down("r", 307.0)


def test_forgetting_scaled_away_replicas() -> None:
    health = ReplicaHealth()
    health.mark_down("a:1", 0.0)
    health.mark_down("b:1", 0.0)
    health.forget_except(["b:1"])
    assert not health.is_down("a:1", 0.1) and health.is_down("b:1", 0.1)


def test_any_replica_round_robins_over_healthy_ones() -> None:
    replicas = ["c:1", "a:1", "b:1"]
    health = ReplicaHealth()
    firsts = [any_order(replicas, health, 0.0, turn)[0] for turn in range(6)]
    assert firsts == ["a:1", "b:1", "c:1", "a:1", "b:1", "c:1"]
    health.mark_down("b:1", 0.0)
    assert [any_order(replicas, health, 0.1, turn) for turn in range(2)] == [
        ["a:1", "c:1", "b:1"],
        ["c:1", "a:1", "b:1"],
    ]
    assert any_order([], health, 0.0, 3) == []


def test_config_reads_one_target_a_list_or_a_dns_name() -> None:
    one = GatewayConfig.from_env({"AVATAR_INFERENCE_TARGET": "inf:50055"})
    assert one.inference_replicas == ("inf:50055",) and one.inference_dns is None
    many = GatewayConfig.from_env(
        {"AVATAR_INFERENCE_TARGET": "x:1", "AVATAR_INFERENCE_TARGETS": " a:1, b:2,,a:1 ,[::1]:3"}
    )
    assert many.inference_replicas == ("a:1", "b:2", "[::1]:3")
    dns = GatewayConfig.from_env(
        {"AVATAR_INFERENCE_DNS": "inference-headless:50055", "AVATAR_INFERENCE_DNS_REFRESH_SECONDS": "5"}
    )
    assert (dns.inference_dns, dns.inference_dns_refresh_seconds) == ("inference-headless:50055", 5.0)
    for bad in (
        {"AVATAR_INFERENCE_TARGETS": "a:1,b"},
        {"AVATAR_INFERENCE_TARGETS": "a:1", "AVATAR_INFERENCE_DNS": "h:1"},
        {"AVATAR_INFERENCE_DNS": "no-port"},
        {"AVATAR_INFERENCE_DNS": "h:1", "AVATAR_INFERENCE_DNS_REFRESH_SECONDS": "0"},
    ):
        with pytest.raises(ConfigError):
            GatewayConfig.from_env(bad)


def test_split_target() -> None:
    assert split_target("inference:50055") == ("inference", 50055)
    assert split_target("[::1]:7") == ("::1", 7)
    for bad in ("inference", ":1", "h:x"):
        with pytest.raises(ValueError):
            split_target(bad)


async def test_resolve_all_lists_every_address_of_a_name() -> None:
    found = await resolve_all("localhost:50055")
    assert "127.0.0.1:50055" in found
    assert all(t.endswith(":50055") for t in found) and found == sorted(set(found))
    with pytest.raises(OSError):
        await resolve_all("no-such-host.invalid:1")
