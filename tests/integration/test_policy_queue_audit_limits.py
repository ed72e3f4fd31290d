"""Approval queue, audit log and rate limiter against real Postgres and Redis."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.policy.core.controls import Controls, RateLimit
from services.policy.core.decisions import Action, Decision, Reason
from services.policy.core.ratelimit import Bucket, RateLimited, RateLimiter, RateLimiterUnavailable
from services.policy.core.records import (
    DraftAlreadyDecided,
    DraftNotFound,
    DraftStatus,
    EvidenceRef,
    NewDraft,
    RecordedDecision,
    TurnOutcome,
    TurnRecord,
)
from services.policy.core.store import PolicyStore, open_store

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PolicyStore]:
    opened = await open_store(database_url, max_size=4)
    try:
        yield opened
    finally:
        await opened.close()


def draft(fan: str = "fan-1", text: str = "Twice a day.") -> NewDraft:
    hold = Decision(Action.HOLD, (Reason("approval_required", "creator approves"),))
    return NewDraft(
        creator_id="maya",
        fan_id=fan,
        conversation_id="c1",
        fan_message="How often do you feed her?",
        draft_text=text,
        evidence=(EvidenceRef("chunk-1", "Twice a day when I bake daily.", 0.8),),
        decisions=(RecordedDecision(hold, 3),),
        controls_version=3,
    )


async def test_a_draft_is_pending_until_decided_and_decisions_are_final(store: PolicyStore) -> None:
    first = await store.submit_draft(draft())
    second = await store.submit_draft(draft(fan="fan-2", text="Daily."))
    pending = await store.list_drafts("maya", status=DraftStatus.PENDING)
    assert [d.draft_id for d in pending] == [first, second]
    assert pending[0].new == draft() and pending[0].final_text is None and not pending[0].edited
    approved = await store.decide_draft("maya", first, approve=True, text="Twice a day, 1:2:2 in winter.")
    assert (approved.status, approved.final_text, approved.edited) == (
        DraftStatus.APPROVED,
        "Twice a day, 1:2:2 in winter.",
        True,
    )
    assert approved.decided_at is not None
    as_is = await store.decide_draft("maya", second, approve=True)
    assert (as_is.final_text, as_is.edited) == ("Daily.", False)
    with pytest.raises(DraftAlreadyDecided):
        await store.decide_draft("maya", first, approve=False)
    with pytest.raises(DraftNotFound):
        await store.decide_draft("someone-else", first, approve=True)
    with pytest.raises(DraftNotFound):
        await store.get_draft("maya", "nope")
    examples = await store.list_drafts("maya", edited_only=True)
    assert [(d.new.draft_text, d.final_text) for d in examples] == [
        ("Twice a day.", "Twice a day, 1:2:2 in winter.")
    ]
    assert [d.draft_id for d in await store.list_drafts("maya", fan_id="fan-2")] == [second]


async def test_rejected_drafts_have_no_text_and_delivery_happens_once(store: PolicyStore) -> None:
    ok = await store.submit_draft(draft())
    no = await store.submit_draft(draft())
    await store.decide_draft("maya", ok, approve=True)
    rejected = await store.decide_draft("maya", no, approve=False, note="off brand")
    assert (rejected.status, rejected.final_text, rejected.note) == (DraftStatus.REJECTED, None, "off brand")
    # Concurrent pollers: each approved id is handed out exactly once; rejected ones never.
    results = await asyncio.gather(*(store.mark_delivered("maya", [ok, no]) for _ in range(4)))
    assert sorted(results, key=len) == [[], [], [], [ok]]
    assert (await store.get_draft("maya", ok)).delivered_at is not None


def record(fan: str = "fan-1", outcome: TurnOutcome = TurnOutcome.ANSWERED) -> TurnRecord:
    refuse = Decision(Action.REFUSE, (Reason("blocked_topic", "kids", "family"),), "Private.")
    return TurnRecord(
        creator_id="maya",
        fan_id=fan,
        conversation_id="c1",
        fan_message="hello",
        outcome=outcome,
        retrieved=(EvidenceRef("chunk-1", "quote", 0.5),),
        draft_text="raw",
        decisions=(RecordedDecision(refuse, 2),),
        final_text="Private.",
        controls_version=2,
    )


async def test_audit_records_round_trip_page_and_delete(store: PolicyStore) -> None:
    ids = [await store.record_turn(record(fan=f"fan-{i % 2}")) for i in range(5)]
    newest = await store.list_audit("maya", limit=2)
    assert [r.record_id for r in newest] == ids[::-1][:2]
    older = await store.list_audit("maya", before_id=newest[-1].record_id, limit=10)
    assert [r.record_id for r in older] == ids[::-1][2:]
    got = newest[0]
    assert got.retrieved == record().retrieved and got.decisions == record().decisions
    assert got.created_at is not None and got.outcome is TurnOutcome.ANSWERED
    assert [r.fan_id for r in await store.list_audit("maya", fan_id="fan-1")] == ["fan-1", "fan-1"]
    assert await store.delete_audit("maya", fan_id="fan-1") == 2
    assert await store.delete_audit("maya", record_ids=[ids[0]]) == 1
    assert await store.delete_audit("other") == 0
    assert [r.record_id for r in await store.list_audit("maya")] == [ids[4], ids[2]]


async def test_retention_purges_only_what_is_older_than_the_setting(store: PolicyStore) -> None:
    now = datetime.now(UTC)
    old = await store.record_turn(record(), at=now - timedelta(days=8))
    await store.record_turn(record(), at=now - timedelta(days=6))
    await store.record_turn(dataclasses.replace(record(), creator_id="rio"), at=now - timedelta(days=100))
    assert await store.purge_expired("maya", retention_days=7) == 1
    assert old not in [r.record_id for r in await store.list_audit("maya")]
    await store.put_controls(Controls(creator_id="maya", audit_retention_days=5))
    # Every creator's own setting: maya's is now 5 days, rio has the default 90.
    assert await store.purge_all_expired() == 2
    assert await store.list_audit("maya") == [] and await store.list_audit("rio") == []


# -- rate limiter -------------------------------------------------------------------------------


async def test_token_buckets_refill_and_spend_all_or_nothing(redis_client: Any) -> None:
    limiter = RateLimiter(redis_client)
    fan = Bucket("fan:maya/f1", RateLimit(per_minute=60, burst=2))  # one token per second
    creator = Bucket("creator:maya", RateLimit(per_minute=60, burst=3))
    t0 = 1_000_000
    await limiter.spend([fan, creator], now_ms=t0)
    await limiter.spend([fan, creator], now_ms=t0)
    with pytest.raises(RateLimited) as info:
        await limiter.spend([fan, creator], now_ms=t0)
    assert (info.value.subject, info.value.retry_after_ms) == ("fan:maya/f1", 1000)
    # The refused call spent nothing: the creator bucket still has its third token.
    other = Bucket("fan:maya/f2", RateLimit(per_minute=60, burst=2))
    await limiter.spend([other, creator], now_ms=t0)
    with pytest.raises(RateLimited) as info:
        await limiter.spend([other, creator], now_ms=t0)
    assert info.value.subject == "creator:maya"
    # Half a second refills half a token: still refused; a full second later, one message passes.
    with pytest.raises(RateLimited):
        await limiter.spend([fan], now_ms=t0 + 500)
    await limiter.spend([fan], now_ms=t0 + 1000)
    # per_minute 0 means unlimited: no Redis call at all.
    for _ in range(5):
        await limiter.spend([Bucket("fan:free", RateLimit(per_minute=0, burst=1))], now_ms=t0)
    assert await redis_client.exists("avatar:policy:bucket:fan:free") == 0
    ttl = await redis_client.pttl("avatar:policy:bucket:fan:maya/f1")
    assert 0 < ttl <= 3000, "idle buckets expire once they would be full again"


async def test_redis_clock_is_used_when_no_time_is_given(redis_client: Any) -> None:
    limiter = RateLimiter(redis_client)
    bucket = Bucket("fan:maya/clock", RateLimit(per_minute=1, burst=1))
    await limiter.spend([bucket])
    with pytest.raises(RateLimited):
        await limiter.spend([bucket])


async def test_rate_limits_fail_closed_when_redis_is_unreachable() -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5, socket_timeout=0.5)
    limiter = RateLimiter(client)
    try:
        with pytest.raises(RateLimiterUnavailable, match="rate limiter store is unavailable"):
            await limiter.spend([Bucket("fan:x/y", RateLimit(per_minute=10, burst=1))])
    finally:
        await limiter.close()


async def test_edited_approvals_become_voice_examples_newest_first(store: PolicyStore) -> None:
    assert await store.voice_examples("maya") == ([], 0)
    assert await store.voice_examples_version("maya") == 0
    ids = [await store.submit_draft(draft(fan=f"fan-{i}", text=f"draft {i}")) for i in range(5)]
    await store.decide_draft("maya", ids[0], approve=True, text="edit 0")
    await store.decide_draft("maya", ids[1], approve=True)  # approved as is: not an example
    await store.decide_draft("maya", ids[2], approve=False)  # rejected: not an example
    await store.decide_draft("maya", ids[3], approve=True, text="edit 3")
    examples, version = await store.voice_examples("maya", limit=3)
    assert [(e.draft_id, e.fan_message, e.reply) for e in examples] == [
        (ids[3], "How often do you feed her?", "edit 3"),
        (ids[0], "How often do you feed her?", "edit 0"),
    ]
    assert version == await store.voice_examples_version("maya") and version > 0
    # A new edit moves the version (what the gateway watches) and comes first.
    await store.decide_draft("maya", ids[4], approve=True, text="edit 4")
    newest, moved = await store.voice_examples("maya", limit=1)
    assert [e.reply for e in newest] == ["edit 4"] and moved > version
    assert await store.voice_examples("someone-else") == ([], 0)


async def test_the_audit_record_keeps_the_system_prompt_and_its_versions(store: PolicyStore) -> None:
    record = TurnRecord(
        "maya",
        "fan-1",
        "c1",
        "hi",
        TurnOutcome.ANSWERED,
        final_text="hello",
        system_prompt="You are the AI avatar of the creator 'maya'.",
        persona_version=7,
        voice_examples_version=2,
    )
    record_id = await store.record_turn(record)
    [stored] = await store.list_audit("maya", fan_id="fan-1")
    assert dataclasses.replace(stored, record_id=0, created_at=None) == record
    assert stored.record_id == record_id
