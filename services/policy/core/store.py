"""Postgres storage: creator controls (every version kept), the decision log, the approval queue
and the per-turn audit records."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.common.db import apply_migrations, open_pool
from services.policy.core.controls import Controls
from services.policy.core.decisions import Decision, Stage
from services.policy.core.records import (
    MAX_LIST,
    MAX_VOICE_EXAMPLES,
    DecisionLogEntry,
    Draft,
    DraftAlreadyDecided,
    DraftNotFound,
    DraftStatus,
    EvidenceRef,
    NewDraft,
    RecordedDecision,
    TurnOutcome,
    TurnRecord,
    VoiceExample,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
"""The policy service's SQL migrations."""

COMPONENT = "policy"
"""The name the policy migrations are recorded under in ``schema_migrations``."""


class VersionConflict(Exception):
    """The controls changed since the caller read them (optimistic concurrency).

    Attributes:
        creator_id: Whose controls.
        expected: The version the caller based its change on.
        actual: The latest stored version (0 when none).
    """

    def __init__(self, creator_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"controls of creator {creator_id!r} are at version {actual}, not {expected}; "
            "reload them and apply the change again"
        )
        self.creator_id = creator_id
        self.expected = expected
        self.actual = actual


class PolicyStore:
    """Reads and writes controls and decisions through a connection pool.

    Args:
        pool: An open pool on a database where the policy migrations have been applied
            (see :func:`open_store`).
        controls_cache_size: Creators whose parsed controls are kept (least recently read dropped).
    """

    def __init__(self, pool: AsyncConnectionPool, *, controls_cache_size: int = 1024) -> None:
        self._pool = pool
        # Parsed controls of recently checked creators, keyed by creator: (version, controls, when the
        # database last confirmed that version was the latest, on the monotonic clock). A plain read
        # still asks the database for the latest version, so a cached entry is only served while it
        # IS the latest (a kill switch takes effect on the next call); a read that accepts an age
        # (``max_age_s``) is served from here while the confirmation is that recent.
        self._controls: OrderedDict[str, tuple[int, Controls, float]] = OrderedDict()
        self._controls_cache_size = controls_cache_size

    async def close(self) -> None:
        """Close the underlying pool."""
        await self._pool.close()

    async def get_controls(self, creator_id: str, *, max_age_s: float = 0.0) -> Controls:
        """The latest controls of a creator.

        By default always asks the database which version is the latest; only the parsing of a
        version this store has parsed before is skipped, so the result is never older than what is
        stored.

        Args:
            creator_id: The creator.
            max_age_s: Accept the version this store last confirmed as the latest if it did so at
                most this many seconds ago (0 = ask the database now). Versions saved through this
                store are known at once; one saved elsewhere (another replica) is seen after at most
                this long. The per-sentence output check uses a fraction of a second: every sentence
                of a streaming reply is still checked against controls at most that old, without a
                database round trip per sentence.

        Returns:
            The newest stored version, or ``Controls.default(creator_id)`` (version 0) when the
            creator has saved none.
        """
        cached = self._controls.get(creator_id)
        probed_at = time.monotonic()
        if cached is not None and max_age_s > 0 and probed_at - cached[2] <= max_age_s:
            return cached[1]
        known = cached[0] if cached is not None else 0
        async with self._pool.connection() as conn:
            # One index probe for the latest version; its document only crosses the wire (and is
            # decoded and validated) when it is not the version already parsed here, which on the
            # per-sentence path saves about a third of this call.
            cur = await conn.execute(
                "SELECT version, CASE WHEN version = %s THEN NULL ELSE document END "
                "FROM policy_controls WHERE creator_id = %s ORDER BY version DESC LIMIT 1",
                (known, creator_id),
            )
            row = await cur.fetchone()
        if row is None:
            return Controls.default(creator_id)
        version = int(row[0])
        if cached is not None and version == cached[0]:
            controls = cached[1]
        else:
            controls = _from_row(creator_id, version, row[1])
        self._remember(creator_id, version, controls, probed_at)
        return controls

    def _remember(self, creator_id: str, version: int, controls: Controls, confirmed_at: float) -> None:
        current = self._controls.get(creator_id)
        # A confirmation older than the one held (a save through this store while the probe was on
        # its way) must not replace it: it could bring back the version the save just replaced.
        if current is not None and current[2] > confirmed_at:
            self._controls.move_to_end(creator_id)
            return
        self._controls[creator_id] = (version, controls, confirmed_at)
        self._controls.move_to_end(creator_id)
        while len(self._controls) > self._controls_cache_size:
            self._controls.popitem(last=False)

    async def put_controls(self, controls: Controls, expected_version: int | None = None) -> Controls:
        """Validate and save controls as the creator's next version.

        ``controls.version`` is ignored; the stored version is always latest + 1, assigned inside one
        transaction that holds a per-creator lock, so concurrent writers get distinct versions.

        Args:
            controls: The new controls.
            expected_version: The version the caller's change is based on (0 for "none saved yet").
                When given and not the latest, nothing is stored. ``None`` means last writer wins.

        Returns:
            The controls as stored, with their new version.

        Raises:
            InvalidControls: The controls break a rule; nothing is stored.
            VersionConflict: ``expected_version`` is not the latest version; nothing is stored.
        """
        controls.validate()
        async with self._pool.connection() as conn, conn.transaction():
            # Serialise writers per creator: two writers must never both read the same "latest".
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('policy_controls/' || %s, 0))",
                (controls.creator_id,),
            )
            cur = await conn.execute(
                "SELECT coalesce(max(version), 0) FROM policy_controls WHERE creator_id = %s",
                (controls.creator_id,),
            )
            row = await cur.fetchone()
            latest = int(row[0]) if row is not None else 0
            if expected_version is not None and expected_version != latest:
                raise VersionConflict(controls.creator_id, expected_version, latest)
            stored = dataclasses.replace(controls, version=latest + 1)
            await conn.execute(
                "INSERT INTO policy_controls (creator_id, version, document) VALUES (%s, %s, %s)",
                (stored.creator_id, stored.version, Jsonb(stored.to_document())),
            )
        # Committed: reads through this store see the new version at once, whatever age they accept.
        self._remember(stored.creator_id, stored.version, stored, time.monotonic())
        return stored

    async def history(self, creator_id: str, limit: int | None = None) -> list[Controls]:
        """Stored versions of a creator's controls, newest first.

        Args:
            creator_id: Whose controls.
            limit: At most this many versions; ``None`` for all.

        Returns:
            The versions (empty when none were saved; the defaults are not a stored version).
        """
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT version, document FROM policy_controls WHERE creator_id = %s "
                "ORDER BY version DESC LIMIT %s",
                (creator_id, limit),
            )
            rows = await cur.fetchall()
        return [_from_row(creator_id, version, doc) for version, doc in rows]

    async def record_decision(
        self,
        creator_id: str,
        stage: Stage | str,
        decision: Decision,
        *,
        controls_version: int | None = None,
        at: datetime | None = None,
    ) -> int:
        """Append a decision to the audit log.

        Args:
            creator_id: Whose avatar the decision was about.
            stage: ``"input"`` or ``"output"``.
            decision: The decision, with all its reasons.
            controls_version: The controls version it was made under, when known.
            at: When it was made (``None`` = now).

        Returns:
            The audit record's id.

        Raises:
            ValueError: ``stage`` is not a known stage.
        """
        stage = Stage(stage)
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"{_INSERT_DECISION} RETURNING id",
                _decision_params(DecisionLogEntry(creator_id, stage, decision, controls_version, at)),
            )
            row = await cur.fetchone()
        assert row is not None  # INSERT ... RETURNING always yields the row
        return int(row[0])

    async def record_decisions(self, entries: Sequence[DecisionLogEntry]) -> None:
        """Append several decisions to the audit log in one transaction (all or none).

        Args:
            entries: The decisions, in the order they were made.
        """
        if not entries:
            return
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(_INSERT_DECISION, [_decision_params(e) for e in entries])

    # -- approval queue ---------------------------------------------------------------------

    async def submit_draft(self, draft: NewDraft) -> str:
        """Store a held reply as pending; returns its id."""
        draft_id = uuid.uuid4().hex
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO policy_drafts (id, creator_id, fan_id, conversation_id, fan_message, "
                "draft_text, evidence, decisions, controls_version) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    draft_id,
                    draft.creator_id,
                    draft.fan_id,
                    draft.conversation_id,
                    draft.fan_message,
                    draft.draft_text,
                    Jsonb([e.to_document() for e in draft.evidence]),
                    Jsonb([d.to_document() for d in draft.decisions]),
                    draft.controls_version,
                ),
            )
        return draft_id

    async def get_draft(self, creator_id: str, draft_id: str) -> Draft:
        """One draft of the creator.

        Raises:
            DraftNotFound: No such draft for this creator.
        """
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_DRAFT_COLUMNS} FROM policy_drafts WHERE creator_id = %s AND id = %s",
                (creator_id, draft_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise DraftNotFound(f"no draft {draft_id!r} for creator {creator_id!r}")
        return _draft(row)

    async def list_drafts(
        self,
        creator_id: str,
        *,
        status: DraftStatus | None = None,
        fan_id: str = "",
        conversation_id: str = "",
        edited_only: bool = False,
        limit: int = 50,
    ) -> list[Draft]:
        """The creator's drafts, oldest first (the order a queue is worked through).

        Args:
            creator_id: Whose drafts.
            status: Only drafts in this state; ``None`` for all.
            fan_id: Only this fan's ("" = all).
            conversation_id: Only this conversation's ("" = all).
            edited_only: Only approved drafts the creator edited (the teaching examples).
            limit: At most this many (capped at ``MAX_LIST``).
        """
        clauses, params = ["creator_id = %s"], [creator_id]
        if status is not None:
            clauses.append("status = %s")
            params.append(status.value)
        if fan_id:
            clauses.append("fan_id = %s")
            params.append(fan_id)
        if conversation_id:
            clauses.append("conversation_id = %s")
            params.append(conversation_id)
        if edited_only:
            clauses.append("edited")
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_DRAFT_COLUMNS} FROM policy_drafts WHERE {' AND '.join(clauses)} "
                "ORDER BY created_at, id LIMIT %s",
                (*params, min(max(limit, 1), MAX_LIST)),
            )
            rows = await cur.fetchall()
        return [_draft(r) for r in rows]

    async def decide_draft(
        self, creator_id: str, draft_id: str, *, approve: bool, text: str | None = None, note: str = ""
    ) -> Draft:
        """Approve (optionally with edited text) or reject a pending draft.

        Args:
            creator_id: Whose draft.
            draft_id: Which draft.
            approve: Approve (True) or reject (False).
            text: The text to send instead of the draft (approve only); ``None`` keeps the draft.
            note: The creator's note.

        Raises:
            DraftNotFound: No such draft for this creator.
            DraftAlreadyDecided: It was approved or rejected before.
        """
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT status, draft_text FROM policy_drafts WHERE creator_id = %s AND id = %s FOR UPDATE",
                (creator_id, draft_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise DraftNotFound(f"no draft {draft_id!r} for creator {creator_id!r}")
            if row[0] != DraftStatus.PENDING.value:
                raise DraftAlreadyDecided(f"draft {draft_id!r} is already {row[0]}")
            final = (text if text is not None else row[1]) if approve else None
            edited = approve and final != row[1]
            # An edited approval becomes the creator's newest voice example (and bumps the version
            # the gateway watches to refresh its cached examples).
            await conn.execute(
                "UPDATE policy_drafts SET status = %s, final_text = %s, edited = %s, note = %s, "
                "decided_at = now(), "
                "example_seq = CASE WHEN %s THEN nextval('policy_voice_example_seq') END WHERE id = %s",
                (
                    (DraftStatus.APPROVED if approve else DraftStatus.REJECTED).value,
                    final,
                    edited,
                    note,
                    edited,
                    draft_id,
                ),
            )
        return await self.get_draft(creator_id, draft_id)

    async def voice_examples(self, creator_id: str, limit: int = 3) -> tuple[list[VoiceExample], int]:
        """The creator's newest edited approvals and the examples version.

        Args:
            creator_id: Whose examples.
            limit: At most this many (1 to ``MAX_VOICE_EXAMPLES``).

        Returns:
            ``(examples newest first, version)``; the version is 0 when the creator has none.
        """
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, fan_message, final_text, decided_at, example_seq FROM policy_drafts "
                "WHERE creator_id = %s AND example_seq IS NOT NULL ORDER BY example_seq DESC LIMIT %s",
                (creator_id, min(max(limit, 1), MAX_VOICE_EXAMPLES)),
            )
            rows = await cur.fetchall()
        examples = [VoiceExample(str(r[0]), r[1], r[2], r[3]) for r in rows]
        return examples, int(rows[0][4]) if rows else 0

    async def voice_examples_version(self, creator_id: str) -> int:
        """The creator's examples version alone (0 = none): one index probe, asked on every turn."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT coalesce(max(example_seq), 0) FROM policy_drafts "
                "WHERE creator_id = %s AND example_seq IS NOT NULL",
                (creator_id,),
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def mark_delivered(self, creator_id: str, draft_ids: Sequence[str]) -> list[str]:
        """Mark approved drafts as handed to the fan app.

        Returns:
            The ids that were approved and not delivered before (each id is returned once ever, so
            the gateway stores each approved reply in the conversation exactly once).
        """
        if not draft_ids:
            return []
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE policy_drafts SET delivered_at = now() WHERE creator_id = %s AND id = ANY(%s) "
                "AND status = 'approved' AND delivered_at IS NULL RETURNING id",
                (creator_id, list(draft_ids)),
            )
            rows = await cur.fetchall()
        return sorted(str(r[0]) for r in rows)

    # -- audit ------------------------------------------------------------------------------

    async def record_turn(self, record: TurnRecord, *, at: datetime | None = None) -> int:
        """Append a turn to the audit log; returns its id.

        Args:
            record: The turn.
            at: Its time (``None`` = now); tests and imports backdate records with it.
        """
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO policy_audit (creator_id, fan_id, conversation_id, fan_message, retrieved, "
                "draft_text, decisions, final_text, outcome, controls_version, draft_id, created_at, "
                "system_prompt, persona_version, voice_examples_version) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s, %s, %s) "
                "RETURNING id",
                (
                    record.creator_id,
                    record.fan_id,
                    record.conversation_id,
                    record.fan_message,
                    Jsonb([e.to_document() for e in record.retrieved]),
                    record.draft_text,
                    Jsonb([d.to_document() for d in record.decisions]),
                    record.final_text,
                    record.outcome.value,
                    record.controls_version,
                    record.draft_id or None,
                    at,
                    record.system_prompt,
                    record.persona_version,
                    record.voice_examples_version,
                ),
            )
            row = await cur.fetchone()
        assert row is not None  # INSERT ... RETURNING always yields the row
        return int(row[0])

    async def list_audit(
        self,
        creator_id: str,
        *,
        fan_id: str = "",
        conversation_id: str = "",
        before_id: int = 0,
        limit: int = 50,
    ) -> list[TurnRecord]:
        """The creator's audit records, newest first.

        Args:
            creator_id: Whose records.
            fan_id: Only this fan's ("" = all).
            conversation_id: Only this conversation's ("" = all).
            before_id: Only records older than this id (paging; 0 = from the newest).
            limit: At most this many (capped at ``MAX_LIST``).
        """
        clauses, params = ["creator_id = %s"], [creator_id]
        if fan_id:
            clauses.append("fan_id = %s")
            params.append(fan_id)
        if conversation_id:
            clauses.append("conversation_id = %s")
            params.append(conversation_id)
        if before_id > 0:
            clauses.append("id < %s")
            params.append(str(before_id))
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, creator_id, fan_id, conversation_id, fan_message, retrieved, draft_text, "
                "decisions, final_text, outcome, controls_version, coalesce(draft_id, ''), created_at, "
                "system_prompt, persona_version, voice_examples_version "
                "FROM policy_audit "
                f"WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT %s",
                (*params, min(max(limit, 1), MAX_LIST)),
            )
            rows = await cur.fetchall()
        return [_turn_record(r) for r in rows]

    async def delete_audit(
        self,
        creator_id: str,
        *,
        fan_id: str = "",
        record_ids: Sequence[int] = (),
        before: datetime | None = None,
    ) -> int:
        """Delete audit records of a creator; returns how many.

        With no filter every record of the creator goes; filters narrow it (all must hold).
        """
        clauses: list[str] = ["creator_id = %s"]
        params: list[Any] = [creator_id]
        if fan_id:
            clauses.append("fan_id = %s")
            params.append(fan_id)
        if record_ids:
            clauses.append("id = ANY(%s)")
            params.append(list(record_ids))
        if before is not None:
            clauses.append("created_at < %s")
            params.append(before)
        async with self._pool.connection() as conn:
            cur = await conn.execute(f"DELETE FROM policy_audit WHERE {' AND '.join(clauses)}", params)
            return cur.rowcount

    async def purge_expired(self, creator_id: str, retention_days: int) -> int:
        """Delete the creator's audit records older than ``retention_days``; returns how many."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM policy_audit WHERE creator_id = %s "
                "AND created_at < now() - make_interval(days => %s)",
                (creator_id, retention_days),
            )
            return cur.rowcount

    async def purge_all_expired(self) -> int:
        """Apply every creator's retention setting (their latest controls; defaults when none)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT DISTINCT creator_id FROM policy_audit")
            creators = [str(r[0]) for r in await cur.fetchall()]
        total = 0
        for creator_id in creators:
            controls = await self.get_controls(creator_id)
            total += await self.purge_expired(creator_id, controls.audit_retention_days)
        return total


_INSERT_DECISION = (
    "INSERT INTO policy_decisions (creator_id, stage, action, reasons, controls_version, created_at) "
    "VALUES (%s, %s, %s, %s, %s, coalesce(%s, now()))"
)


def _decision_params(entry: DecisionLogEntry) -> tuple[Any, ...]:
    return (
        entry.creator_id,
        Stage(entry.stage).value,
        entry.decision.action.value,
        Jsonb([r.to_document() for r in entry.decision.reasons]),
        entry.controls_version,
        entry.at,
    )


_DRAFT_COLUMNS = (
    "id, creator_id, fan_id, conversation_id, fan_message, draft_text, evidence, decisions, "
    "controls_version, status, final_text, edited, note, created_at, decided_at, delivered_at"
)


def _draft(row: Sequence[Any]) -> Draft:
    new = NewDraft(
        creator_id=row[1],
        fan_id=row[2],
        conversation_id=row[3],
        fan_message=row[4],
        draft_text=row[5],
        evidence=tuple(EvidenceRef.from_document(e) for e in row[6]),
        decisions=tuple(RecordedDecision.from_document(d) for d in row[7]),
        controls_version=int(row[8]),
    )
    return Draft(
        draft_id=row[0],
        new=new,
        status=DraftStatus(row[9]),
        final_text=row[10],
        edited=bool(row[11]),
        note=row[12],
        created_at=row[13],
        decided_at=row[14],
        delivered_at=row[15],
    )


def _turn_record(row: Sequence[Any]) -> TurnRecord:
    return TurnRecord(
        record_id=int(row[0]),
        creator_id=row[1],
        fan_id=row[2],
        conversation_id=row[3],
        fan_message=row[4],
        retrieved=tuple(EvidenceRef.from_document(e) for e in row[5]),
        draft_text=row[6],
        decisions=tuple(RecordedDecision.from_document(d) for d in row[7]),
        final_text=row[8],
        outcome=TurnOutcome(row[9]),
        controls_version=int(row[10]),
        draft_id=row[11],
        created_at=row[12],
        system_prompt=row[13],
        persona_version=int(row[14]),
        voice_examples_version=int(row[15]),
    )


async def open_store(
    url: str, *, min_size: int = 1, max_size: int = 10, controls_cache_size: int = 1024
) -> PolicyStore:
    """Apply the policy migrations, then open a pool on ``url``.

    Args:
        url: Postgres connection URL (the database must allow ``CREATE EXTENSION vector``, which the
            shared migration runner requires).
        min_size: Pool minimum size.
        max_size: Pool maximum size.
        controls_cache_size: Creators whose parsed controls are kept (least recently read dropped).
    """
    await apply_migrations(url, COMPONENT, MIGRATIONS_DIR)
    pool = await open_pool(url, min_size=min_size, max_size=max_size)
    return PolicyStore(pool, controls_cache_size=controls_cache_size)


def _from_row(creator_id: str, version: int, document: Any) -> Controls:
    # The columns are the truth for identity; the document only carries the content.
    controls = Controls.from_document(document)
    return dataclasses.replace(controls, creator_id=creator_id, version=int(version))
