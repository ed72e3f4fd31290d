"""Postgres implementation of the pipeline's `IngestRecords` port, plus deletion queries.

The persona profile is not here: memory owns it (ingest computes it and writes it through
MemoryService.PutPersonaProfile).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from services.common.db import apply_migrations, open_pool
from services.common.errors import NotFound
from services.ingest.core.jobs import FileOutcome, FileStatus, Job, JobState
from services.ingest.core.persona import SourceText
from services.ingest.core.pipeline import KnownDocument, SourceKey, StoredDocument
from services.ingest.core.types import ParseOptions

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _options_json(options: ParseOptions) -> str:
    return json.dumps(asdict(options))


def _options_from(raw: dict[str, Any]) -> ParseOptions:
    known = {f.name for f in fields(ParseOptions)}
    return ParseOptions(**{k: v for k, v in raw.items() if k in known})


class PostgresRecords:
    """Jobs, files and documents in the ingest service's own tables."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    # --- jobs ---------------------------------------------------------------------------------

    async def save_job(self, job: Job) -> None:
        """Insert or update a job's row (and bump its heartbeat)."""
        async with self._pool.connection() as conn:
            await conn.execute(
                """INSERT INTO ingest_jobs (id, creator_id, state, root, options, files_total, error,
                                            created_at, updated_at, heartbeat_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                   ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, files_total = EXCLUDED.files_total,
                       error = EXCLUDED.error, updated_at = EXCLUDED.updated_at, heartbeat_at = now()""",
                (
                    job.job_id,
                    job.creator_id,
                    job.state.value,
                    job.root,
                    _options_json(job.options),
                    job.files_total,
                    job.error,
                    job.created_at,
                    job.updated_at,
                ),
            )

    async def save_file(self, job_id: str, outcome: FileOutcome) -> None:
        """Record a finished file of a job."""
        async with self._pool.connection() as conn:
            await conn.execute(
                """INSERT INTO ingest_job_files (job_id, ordinal, path, status, platform, documents,
                       documents_unchanged, duplicates_dropped, records_excluded, chunks_inserted,
                       chunks_unchanged, error)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (job_id, ordinal) DO NOTHING""",
                (
                    job_id,
                    outcome.ordinal,
                    outcome.path,
                    outcome.status.value,
                    outcome.platform,
                    outcome.documents,
                    outcome.documents_unchanged,
                    outcome.duplicates_dropped,
                    outcome.records_excluded,
                    outcome.chunks_inserted,
                    outcome.chunks_unchanged,
                    outcome.error,
                ),
            )

    async def load_job(self, job_id: str) -> Job:
        """A job with its finished files.

        Raises:
            NotFound: No such job.
        """
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """SELECT creator_id, state, root, options, files_total, error, created_at, updated_at
                   FROM ingest_jobs WHERE id = %s""",
                (job_id,),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no ingest job {job_id!r}")
            cur = await conn.execute(
                """SELECT ordinal, path, status, platform, documents, documents_unchanged,
                          duplicates_dropped, records_excluded, chunks_inserted, chunks_unchanged, error
                   FROM ingest_job_files WHERE job_id = %s ORDER BY ordinal""",
                (job_id,),
            )
            files = tuple(
                FileOutcome(
                    ordinal=r[0],
                    path=r[1],
                    status=FileStatus(r[2]),
                    platform=r[3],
                    documents=r[4],
                    documents_unchanged=r[5],
                    duplicates_dropped=r[6],
                    records_excluded=r[7],
                    chunks_inserted=r[8],
                    chunks_unchanged=r[9],
                    error=r[10],
                )
                for r in await cur.fetchall()
            )
        return Job(
            job_id=job_id,
            creator_id=row[0],
            state=JobState(row[1]),
            root=row[2],
            options=_options_from(row[3]),
            files_total=row[4],
            error=row[5],
            created_at=row[6],
            updated_at=row[7],
            files=files,
        )

    async def claim_orphans(self, stale_seconds: float) -> list[str]:
        """Ids of unfinished jobs nobody has touched for ``stale_seconds``, claimed by this caller.

        The heartbeat bump in the same statement is the claim: two replicas starting together cannot
        both resume a job.
        """
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """UPDATE ingest_jobs SET heartbeat_at = now()
                   WHERE state IN ('queued', 'running')
                     AND heartbeat_at < now() - make_interval(secs => %s)
                   RETURNING id""",
                (stale_seconds,),
            )
            return sorted(r[0] for r in await cur.fetchall())

    # --- documents ------------------------------------------------------------------------------

    async def known_documents(self, creator_id: str) -> dict[SourceKey, KnownDocument]:
        """Every document recorded for the creator."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """SELECT platform, external_id, text_hash, chunks, simhash
                   FROM ingest_documents WHERE creator_id = %s""",
                (creator_id,),
            )
            return {(r[0], r[1]): KnownDocument(r[2], r[3], r[4]) for r in await cur.fetchall()}

    async def record_documents(self, creator_id: str, docs: Sequence[StoredDocument]) -> None:
        """Record documents whose chunks are all in memory (an edited document replaces its row)."""
        async with self._pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO ingest_documents (creator_id, platform, external_id, kind, text_hash,
                                                 simhash, chunks, text, created_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (creator_id, platform, external_id) DO UPDATE SET
                       kind = EXCLUDED.kind, text_hash = EXCLUDED.text_hash, simhash = EXCLUDED.simhash,
                       chunks = EXCLUDED.chunks, text = EXCLUDED.text, created_at = EXCLUDED.created_at,
                       ingested_at = now()""",
                [
                    (
                        creator_id,
                        d.doc.meta.platform,
                        d.doc.meta.source_id,
                        d.doc.meta.kind,
                        d.text_hash,
                        d.simhash,
                        d.chunks,
                        d.doc.text,
                        d.doc.meta.created_at,
                    )
                    for d in docs
                ],
            )

    async def forget_documents(self, creator_id: str) -> int:
        """Drop the creator's document records; returns how many."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("DELETE FROM ingest_documents WHERE creator_id = %s", (creator_id,))
            return cur.rowcount

    async def forget_source(self, creator_id: str, platform: str, external_id: str) -> int:
        """Drop one document record; returns 0 or 1."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM ingest_documents WHERE creator_id = %s AND platform = %s AND external_id = %s",
                (creator_id, platform, external_id),
            )
            return cur.rowcount

    async def forget_creator(self, creator_id: str) -> tuple[int, int]:
        """Drop everything the ingest service holds for a creator; returns (documents, jobs) removed."""
        async with self._pool.connection() as conn, conn.transaction():
            docs = await conn.execute("DELETE FROM ingest_documents WHERE creator_id = %s", (creator_id,))
            jobs = await conn.execute("DELETE FROM ingest_jobs WHERE creator_id = %s", (creator_id,))
            return docs.rowcount, jobs.rowcount

    async def count_creator_rows(self, creator_id: str) -> dict[str, int]:
        """Rows the creator has in each ingest table (deletion tests and operators use it)."""
        out: dict[str, int] = {}
        async with self._pool.connection() as conn:
            for table in ("ingest_documents", "ingest_jobs"):
                cur = await conn.execute(f"SELECT count(*) FROM {table} WHERE creator_id = %s", (creator_id,))
                row = await cur.fetchone()
                out[table] = int(row[0]) if row else 0
        return out

    async def source_texts(self, creator_id: str) -> list[SourceText]:
        """Texts of the creator's documents, oldest first, for the persona profile."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """SELECT text, platform, external_id FROM ingest_documents WHERE creator_id = %s
                   ORDER BY created_at NULLS LAST, platform, external_id""",
                (creator_id,),
            )
            return [SourceText(r[0], r[1], r[2]) for r in await cur.fetchall()]


async def open_records(url: str, pool_size: int = 4) -> PostgresRecords:
    """Apply the ingest migrations and open the records on a pool."""
    await apply_migrations(url, "ingest", MIGRATIONS)
    return PostgresRecords(await open_pool(url, min_size=1, max_size=pool_size))
