"""Postgres storage for creator controls (every version kept) and the decision audit log."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.common.db import apply_migrations, open_pool
from services.policy.core.controls import Controls
from services.policy.core.decisions import Decision, Stage

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
    """

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def close(self) -> None:
        """Close the underlying pool."""
        await self._pool.close()

    async def get_controls(self, creator_id: str) -> Controls:
        """The latest controls of a creator.

        Returns:
            The newest stored version, or ``Controls.default(creator_id)`` (version 0) when the
            creator has saved none.
        """
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT version, document FROM policy_controls WHERE creator_id = %s "
                "ORDER BY version DESC LIMIT 1",
                (creator_id,),
            )
            row = await cur.fetchone()
        if row is None:
            return Controls.default(creator_id)
        return _from_row(creator_id, row[0], row[1])

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
        self, creator_id: str, stage: Stage | str, decision: Decision, *, controls_version: int | None = None
    ) -> int:
        """Append a decision to the audit log.

        Args:
            creator_id: Whose avatar the decision was about.
            stage: ``"input"`` or ``"output"``.
            decision: The decision, with all its reasons.
            controls_version: The controls version it was made under, when known.

        Returns:
            The audit record's id.

        Raises:
            ValueError: ``stage`` is not a known stage.
        """
        stage = Stage(stage)
        reasons = [r.to_document() for r in decision.reasons]
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO policy_decisions (creator_id, stage, action, reasons, controls_version) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (creator_id, stage.value, decision.action.value, Jsonb(reasons), controls_version),
            )
            row = await cur.fetchone()
        assert row is not None  # INSERT ... RETURNING always yields the row
        return int(row[0])


async def open_store(url: str, *, min_size: int = 1, max_size: int = 10) -> PolicyStore:
    """Apply the policy migrations, then open a pool on ``url``.

    Args:
        url: Postgres connection URL (the database must allow ``CREATE EXTENSION vector``, which the
            shared migration runner requires).
        min_size: Pool minimum size.
        max_size: Pool maximum size.
    """
    await apply_migrations(url, COMPONENT, MIGRATIONS_DIR)
    return PolicyStore(await open_pool(url, min_size=min_size, max_size=max_size))


def _from_row(creator_id: str, version: int, document: Any) -> Controls:
    # The columns are the truth for identity; the document only carries the content.
    controls = Controls.from_document(document)
    return dataclasses.replace(controls, creator_id=creator_id, version=int(version))
