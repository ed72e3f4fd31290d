"""Per-fan memory (facts, rolling summary, forgetting), paginated history, persona profiles."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.memory.core import InvalidArgument, MemoryStore, NotFound, open_store
from services.memory.core.errors import Conflict

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[MemoryStore]:
    s = await open_store(database_url, summary_window=4)
    try:
        await s.upsert_creator("chef", "Chef Ana")
        yield s
    finally:
        await s.close()


async def test_facts_are_extracted_from_fan_turns_and_replaced_by_newer_ones(store: MemoryStore) -> None:
    await store.append_turn("chef", "f1", "c1", "fan", "Hi! My name is Sam and I'm vegan.")
    await store.append_turn(
        "chef", "f1", "c1", "avatar", "My name is Ana, I love rye bread."
    )  # not the fan's
    await store.append_turn("chef", "f1", "c2", "fan", "I love sourdough, but I'm allergic to walnuts")
    memory = await store.fan_memory("chef", "f1")
    assert {f.key: (f.value, f.origin) for f in memory.facts} == {
        "name": ("Sam", "extracted"),
        "diet": ("vegan", "extracted"),
        "likes": ("sourdough", "extracted"),
        "allergies": ("walnuts", "extracted"),
    }
    await store.append_turn("chef", "f1", "c2", "fan", "call me Samantha please")
    await store.put_fan_facts("chef", "f1", {"timezone": "Europe/Lisbon", "diet": "vegetarian"})
    memory = await store.fan_memory("chef", "f1")
    assert {f.key: (f.value, f.origin) for f in memory.facts} == {
        "name": ("Samantha", "extracted"),
        "diet": ("vegetarian", "explicit"),
        "likes": ("sourdough", "extracted"),
        "allergies": ("walnuts", "extracted"),
        "timezone": ("Europe/Lisbon", "explicit"),
    }
    # Another fan of the same creator knows nothing of it.
    assert (await store.fan_memory("chef", "f2")).facts == []


async def test_rolling_summary_covers_turns_older_than_the_window(store: MemoryStore) -> None:
    for i in range(1, 7):
        await store.append_turn("chef", "f1", "c1", "fan" if i % 2 else "avatar", f"message {i} " + "x" * 200)
    memory = await store.fan_memory("chef", "f1")
    # Window 4: turns 1 and 2 are summarised, 3..6 verbatim.
    assert memory.turns_summarised == 2
    lines = memory.summary.split("\n")
    assert [line[:17] for line in lines] == ["Fan: message 1 xx", "Avatar: message 2"]
    assert all(len(line) <= len("Avatar: ") + 160 and line.endswith("...") for line in lines)
    assert [t.text[:9] for t in memory.recent_turns] == [f"message {i}" for i in range(3, 7)]
    assert [t.text[:9] for t in (await store.fan_memory("chef", "f1", recent=2)).recent_turns] == [
        "message 5",
        "message 6",
    ]


async def test_forget_fan_everything_or_some_facts(store: MemoryStore) -> None:
    for i in range(6):
        await store.append_turn("chef", "f1", f"c{i % 2}", "fan", f"my name is Sam, turn {i}")
    await store.put_fan_facts("chef", "f1", {"likes": "rye"})
    await store.append_turn("chef", "f2", "c0", "fan", "my name is Kim")

    assert await store.forget_fan("chef", "f1", ["likes", "nope"]) == (0, 1)
    assert [f.key for f in (await store.fan_memory("chef", "f1")).facts] == ["name"]

    assert await store.forget_fan("chef", "f1") == (6, 1)
    memory = await store.fan_memory("chef", "f1")
    assert (memory.facts, memory.summary, memory.turns_summarised, memory.recent_turns) == ([], "", 0, [])
    assert await store.history("chef", "f1") == []
    assert (await store.list_conversations("chef", "f1")).conversations == []
    assert await store.forget_fan("chef", "f1") == (0, 0)  # idempotent
    # Other fans are untouched.
    assert [f.value for f in (await store.fan_memory("chef", "f2")).facts] == ["Kim"]
    # The fan can come back and start over.
    await store.append_turn("chef", "f1", "c0", "fan", "hello again")
    assert [t.text for t in await store.history("chef", "f1")] == ["hello again"]


async def test_history_pages_walk_back_in_time(store: MemoryStore) -> None:
    for i in range(7):
        await store.append_turn("chef", "f1", "c1" if i < 5 else "c2", "fan", f"m{i}")
    seen: list[list[str]] = []
    token = ""
    while True:
        page = await store.history_page("chef", "f1", limit=3, page_token=token)
        seen.append([t.text for t in page.turns])
        token = page.next_page_token
        if not token:
            break
    assert seen == [["m4", "m5", "m6"], ["m1", "m2", "m3"], ["m0"]]
    # Per conversation.
    page = await store.history_page("chef", "f1", "c1", limit=4)
    assert [t.text for t in page.turns] == ["m1", "m2", "m3", "m4"]
    last = await store.history_page("chef", "f1", "c1", limit=4, page_token=page.next_page_token)
    assert ([t.text for t in last.turns], last.next_page_token) == (["m0"], "")
    # An exact multiple of the page size ends without an empty extra page.
    page = await store.history_page("chef", "f1", "c2", limit=2)
    assert ([t.text for t in page.turns], page.next_page_token) == (["m5", "m6"], "")
    assert [t.turn_id for t in page.turns] == sorted(t.turn_id for t in page.turns)
    with pytest.raises(InvalidArgument, match="page_token"):
        await store.history_page("chef", "f1", page_token="garbage")


async def test_conversations_per_creator_paginated(store: MemoryStore) -> None:
    for fan, conv, n in [("f1", "a", 2), ("f2", "b", 1), ("f1", "c", 3), ("f3", "d", 1)]:
        for i in range(n):
            await store.append_turn("chef", fan, conv, "fan", f"{conv}{i}")
    await store.upsert_creator("coach")
    await store.append_turn("coach", "f1", "z", "fan", "other creator")

    pages = []
    token = ""
    while True:
        page = await store.list_conversations("chef", limit=3, page_token=token)
        pages.append([(c.fan_id, c.conversation_id, c.turn_count) for c in page.conversations])
        token = page.next_page_token
        if not token:
            break
    assert pages == [[("f3", "d", 1), ("f1", "c", 3), ("f2", "b", 1)], [("f1", "a", 2)]]
    only = await store.list_conversations("chef", "f1")
    assert [(c.conversation_id, c.created_at <= c.last_turn_at) for c in only.conversations] == [
        ("c", True),
        ("a", True),
    ]


async def test_persona_profile_versions(store: MemoryStore) -> None:
    with pytest.raises(NotFound, match="persona"):
        await store.get_persona("chef")
    first = await store.put_persona("chef", {"tone": "warm", "emoji_rate": 0.12, "phrases": ["hey friends"]})
    assert (first.version, first.profile["phrases"]) == (1, ["hey friends"])
    second = await store.put_persona("chef", {"tone": "playful"}, expected_version=1)
    assert second.version == 2
    with pytest.raises(Conflict, match="version 2, not 1"):
        await store.put_persona("chef", {"tone": "stale"}, expected_version=1)
    got = await store.get_persona("chef")
    assert (got.profile, got.version, got.updated_at) == ({"tone": "playful"}, 2, second.updated_at)
    # A persona can arrive before any content: the creator is created.
    assert (await store.put_persona("newbie", {"tone": "shy"})).version == 1
    # The creator's corrections override the computed fields they name and survive re-computation.
    corrected = await store.correct_persona("chef", {"tone": "gentle", "emoji_rate": 0}, expected_version=2)
    assert (corrected.profile, corrected.version) == ({"tone": "gentle", "emoji_rate": 0}, 3)
    assert corrected.corrected_fields == ("emoji_rate", "tone")
    recomputed = await store.put_persona("chef", {"tone": "loud", "emoji_rate": 0.5, "phrases": ["yo"]})
    assert recomputed.profile == {"tone": "gentle", "emoji_rate": 0, "phrases": ["yo"]}
    assert recomputed.version == 4
    # The same computation again changes nothing, not even the version.
    assert (
        await store.put_persona("chef", {"tone": "loud", "emoji_rate": 0.5, "phrases": ["yo"]})
    ).version == 4
    with pytest.raises(Conflict, match="version 4, not 3"):
        await store.correct_persona("chef", {"tone": "x"}, expected_version=3)
    with pytest.raises(NotFound, match="ingest their content first"):
        await store.correct_persona("nobody", {"tone": "x"})
    await store.delete_creator("chef")
    with pytest.raises(NotFound):
        await store.get_persona("chef")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.put_fan_facts("chef", "f", {}), "non-empty"),
        (lambda s: s.put_fan_facts("chef", "f", {"Bad Key": "x"}), "fact key"),
        (lambda s: s.put_fan_facts("chef", "f", {"k": ""}), r"facts\[k\]"),
        (lambda s: s.put_fan_facts("chef", "f", {"k": "x" * 501}), "at most 500"),
        (lambda s: s.forget_fan("chef", "f", "name"), "fact_keys"),
        (lambda s: s.fan_memory("chef", "f", recent=-1), "recent"),
        (lambda s: s.list_conversations("chef", limit=0), "limit"),
        (lambda s: s.list_conversations("chef", page_token="x"), "page_token"),
        (lambda s: s.put_persona("chef", ["not", "an", "object"]), "JSON object"),
        (lambda s: s.put_persona("chef", {"x": float("nan")}), "JSON"),
        (lambda s: s.put_persona("chef", {"x": "y" * 300_000}), "256 KiB"),
        (lambda s: s.put_persona("chef", {"x": 1}, expected_version=-1), "expected_version"),
        (lambda s: s.correct_persona("chef", {}), "at least one field"),
    ],
)
async def test_bad_fan_and_persona_input(store: MemoryStore, call: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        await call(store)  # type: ignore[operator]


async def test_fan_facts_need_an_existing_creator(store: MemoryStore) -> None:
    with pytest.raises(NotFound, match="ghost"):
        await store.put_fan_facts("ghost", "f", {"name": "Sam"})
