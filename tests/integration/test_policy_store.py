"""The policy store against a real Postgres: versioned controls and the decision audit log."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import psycopg
import pytest

from services.policy.core.controls import Autonomy, BlockedTopic, Controls, DisclosureMode, InvalidControls
from services.policy.core.decisions import Action, Decision, Reason
from services.policy.core.store import PolicyStore, VersionConflict, open_store


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PolicyStore]:
    opened = await open_store(database_url, max_size=4)
    try:
        yield opened
    finally:
        await opened.close()


def family_controls(creator_id: str = "chef-ana") -> Controls:
    return Controls(
        creator_id=creator_id,
        blocked_topics=(BlockedTopic(name="family", keywords=("kids",), reply="I keep family private."),),
        disclosure_mode=DisclosureMode.AFTER_GAP,
        disclosure_gap_minutes=90,
        never_claim=("I have a child",),
        stated_facts=("I grew up in Naples.",),
        allowed_link_domains=("chefana.com",),
    )


async def test_defaults_when_nothing_is_stored(store: PolicyStore) -> None:
    assert await store.get_controls("nobody") == Controls.default("nobody")
    assert await store.history("nobody") == []


async def test_put_then_get_round_trips(store: PolicyStore) -> None:
    controls = family_controls()
    stored = await store.put_controls(controls, expected_version=0)
    assert stored == dataclasses.replace(controls, version=1)
    assert await store.get_controls("chef-ana") == stored


async def test_versions_increment_and_history_is_newest_first(store: PolicyStore) -> None:
    first = await store.put_controls(family_controls(), expected_version=0)
    # The version on the object passed in is ignored: the store assigns latest + 1.
    second = await store.put_controls(dataclasses.replace(first, autonomy=Autonomy.APPROVAL, version=42), 1)
    third = await store.put_controls(dataclasses.replace(second, autonomy=Autonomy.PAUSED), None)
    await store.put_controls(family_controls("someone-else"))
    assert [c.version for c in (first, second, third)] == [1, 2, 3]
    assert await store.get_controls("chef-ana") == third
    assert await store.history("chef-ana") == [third, second, first]
    assert await store.history("chef-ana", limit=2) == [third, second]


async def test_stale_expected_version_conflicts_and_stores_nothing(store: PolicyStore) -> None:
    await store.put_controls(family_controls(), expected_version=0)
    with pytest.raises(VersionConflict) as caught:
        await store.put_controls(dataclasses.replace(family_controls(), autonomy=Autonomy.PAUSED), 0)
    assert (caught.value.expected, caught.value.actual) == (0, 1)
    latest = await store.get_controls("chef-ana")
    assert (latest.version, latest.autonomy) == (1, Autonomy.AUTO)


async def test_concurrent_writers_with_the_same_base_one_wins(store: PolicyStore) -> None:
    results = await asyncio.gather(
        *(store.put_controls(family_controls(), expected_version=0) for _ in range(4)), return_exceptions=True
    )
    assert sum(isinstance(r, Controls) for r in results) == 1
    assert sum(isinstance(r, VersionConflict) for r in results) == 3
    # Without an expected version every writer gets its own, distinct version.
    done = await asyncio.gather(*(store.put_controls(family_controls()) for _ in range(4)))
    assert sorted(c.version for c in done) == [2, 3, 4, 5]


async def test_invalid_controls_are_rejected_and_nothing_is_stored(store: PolicyStore) -> None:
    duplicate_topics = (BlockedTopic(name="x"), BlockedTopic(name="X"))
    bad = dataclasses.replace(family_controls(), blocked_topics=duplicate_topics)
    with pytest.raises(InvalidControls, match="duplicates"):
        await store.put_controls(bad, expected_version=0)
    assert await store.history("chef-ana") == []
    assert await store.get_controls("chef-ana") == Controls.default("chef-ana")


async def test_record_decision(store: PolicyStore, database_url: str) -> None:
    decision = Decision(Action.REFUSE, (Reason("blocked_topic", "mentions 'kids'", "family"),), "private")
    first = await store.record_decision("chef-ana", "input", decision, controls_version=1)
    second = await store.record_decision("chef-ana", "output", Decision(Action.ALLOW))
    assert second > first
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT creator_id, stage, action, reasons, controls_version FROM policy_decisions ORDER BY id"
        ).fetchall()
    reason = {"code": "blocked_topic", "detail": "mentions 'kids'", "topic": "family"}
    assert rows == [
        ("chef-ana", "input", "refuse", [reason], 1),
        ("chef-ana", "output", "allow", [], None),
    ]
    with pytest.raises(ValueError):
        await store.record_decision("chef-ana", "middle", decision)


async def test_open_store_is_idempotent(database_url: str) -> None:
    for _ in range(2):
        opened = await open_store(database_url, max_size=1)
        await opened.close()


async def test_parsed_controls_are_reused_only_while_they_are_the_latest(
    store: PolicyStore, database_url: str
) -> None:
    first = await store.put_controls(family_controls())
    got = await store.get_controls("chef-ana")
    assert got == first
    assert await store.get_controls("chef-ana") is got, "an unchanged version is not parsed again"
    # Another replica (its own store, its own cache) flips the kill switch: the next read sees it.
    other = await open_store(database_url, max_size=1)
    try:
        paused = await other.put_controls(dataclasses.replace(first, autonomy=Autonomy.PAUSED))
    finally:
        await other.close()
    now = await store.get_controls("chef-ana")
    assert (now.version, now.autonomy) == (2, Autonomy.PAUSED)
    assert now == paused
    # A version written behind the store's back is never shadowed by what it parsed before.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM policy_controls WHERE creator_id = 'chef-ana' AND version = 2")
    assert await store.get_controls("chef-ana") == first
    assert await store.get_controls("someone-else") == Controls.default("someone-else")


async def test_the_controls_cache_keeps_the_most_recently_read_creators(database_url: str) -> None:
    store = await open_store(database_url, max_size=1, controls_cache_size=2)
    try:
        for creator in ("a", "b", "c"):
            await store.put_controls(family_controls(creator))
        a, b = await store.get_controls("a"), await store.get_controls("b")
        assert await store.get_controls("a") is a  # a is now the most recent, b the oldest
        await store.get_controls("c")
        assert await store.get_controls("a") is a
        again = await store.get_controls("b")
        assert again == b and again is not b, "b was evicted and parsed again"
    finally:
        await store.close()


async def test_a_read_that_accepts_an_age_is_served_from_the_last_confirmation(
    store: PolicyStore, database_url: str
) -> None:
    first = await store.put_controls(family_controls())
    # A save through this store is known at once, whatever age a read accepts.
    assert await store.get_controls("chef-ana", max_age_s=60) is first
    other = await open_store(database_url, max_size=1)
    try:
        paused = await other.put_controls(dataclasses.replace(first, autonomy=Autonomy.PAUSED))
    finally:
        await other.close()
    # Another replica's save: a read that accepts a minute may still get the confirmed version...
    assert (await store.get_controls("chef-ana", max_age_s=60)).version == 1
    # ...a short age expires and asks the database again...
    await asyncio.sleep(0.06)
    assert await store.get_controls("chef-ana", max_age_s=0.05) == paused
    # ...and a plain read always does; it also renews the confirmation aged reads use.
    resumed = await store.put_controls(dataclasses.replace(paused, autonomy=Autonomy.AUTO))
    assert (await store.get_controls("chef-ana")).autonomy is Autonomy.AUTO
    assert await store.get_controls("chef-ana", max_age_s=60) == resumed


async def test_an_aged_read_never_brings_back_a_version_saved_over(store: PolicyStore) -> None:
    first = await store.put_controls(family_controls())
    # A probe that started before a save through this store finishes after it: the save wins.
    probe = asyncio.ensure_future(store.get_controls("chef-ana"))
    paused = await store.put_controls(dataclasses.replace(first, autonomy=Autonomy.PAUSED))
    await probe
    assert await store.get_controls("chef-ana", max_age_s=60) == paused
