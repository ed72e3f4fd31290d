"""Writes check decisions to the decision log off the reply's critical path.

A refused message or a rewritten sentence is logged, but the fan must not wait for the insert:
on the per-sentence path it was most of the added latency. The servicer hands each decision to a
:class:`DecisionWriter`, which writes them in batches from one background task:

* a bounded queue: when the database falls behind, :meth:`DecisionWriter.put` waits for room
  (backpressure on the checks) instead of dropping decisions or growing without limit;
* transient database errors (a dropped connection, a pool timeout, a cancelled statement, a
  serialisation failure) are retried with exponential backoff; a batch that still fails is
  logged entry by entry at ERROR and counted, never raised to a caller (a batch the database
  rejects outright is written entry by entry, so only the offending entry is lost);
* :meth:`DecisionWriter.close` (the service's ``on_stop``) writes everything queued before it
  returns, so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import psycopg
import psycopg_pool

from services.policy.core.decisions import Decision, Stage
from services.policy.core.records import DecisionLogEntry

log = logging.getLogger(__name__)


class DecisionSink(Protocol):
    """Where decisions end up (:class:`~services.policy.core.store.PolicyStore`)."""

    async def record_decisions(self, entries: Sequence[DecisionLogEntry]) -> None: ...


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same write later may succeed.

    Operational errors (connection lost, pool timeout, statement cancelled, serialisation
    failure, deadlock) are; a closed pool and anything else (a constraint violation, a missing
    table) are not.
    """
    return isinstance(exc, psycopg.OperationalError) and not isinstance(exc, psycopg_pool.PoolClosed)


class DecisionWriter:
    """A bounded queue of decisions and the one task that writes them.

    Args:
        sink: Writes a batch of decisions in one transaction.
        max_pending: Decisions queued at most; :meth:`put` waits while the queue is full.
        max_batch: Decisions written per transaction at most.
        attempts: Tries per batch (the first one included) on transient errors.
        backoff_s: Wait before the first retry; doubled for each further one.
        max_backoff_s: Longest wait between two tries.
        linger_s: How long the writer waits, after taking a decision, for more to share its
            transaction (0 = write at once). Decisions come one per changed sentence; without a
            wait nearly every batch is one insert and one commit, each a turn of the event loop
            and a round trip competing with the checks being answered meanwhile.
    """

    def __init__(
        self,
        sink: DecisionSink,
        *,
        max_pending: int = 1000,
        max_batch: int = 100,
        attempts: int = 5,
        backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
        linger_s: float = 0.05,
    ) -> None:
        if max_pending < 1 or max_batch < 1 or attempts < 1:
            raise ValueError("max_pending, max_batch and attempts must be at least 1")
        if linger_s < 0:
            raise ValueError("linger_s must not be negative")
        self._linger_s = linger_s
        self._sink = sink
        self._queue: asyncio.Queue[DecisionLogEntry] = asyncio.Queue(max_pending)
        self._max_batch = max_batch
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._closing = asyncio.Event()
        self.written = 0
        """Decisions written so far."""
        self.retries = 0
        """Tries repeated after a transient error."""
        self.lost = 0
        """Decisions given up on (each one logged at ERROR)."""

    @property
    def pending(self) -> int:
        """Decisions queued and not yet taken by the writer task."""
        return self._queue.qsize()

    async def put(
        self, creator_id: str, stage: Stage, decision: Decision, *, controls_version: int | None
    ) -> None:
        """Queue one decision; waits while the queue is full.

        Raises:
            RuntimeError: The writer was closed.
        """
        if self._closed:
            raise RuntimeError("the decision writer is closed")
        if self._task is None:
            # Started on first use, on the loop the servicer runs on.
            self._task = asyncio.get_running_loop().create_task(self._run(), name="policy-decision-writer")
        entry = DecisionLogEntry(creator_id, stage, decision, controls_version, datetime.now(UTC))
        await self._queue.put(entry)

    async def close(self) -> None:
        """Write every queued decision (retrying as usual), then stop the writer task."""
        self._closed = True
        self._closing.set()
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._linger_s > 0 and self._max_batch > 1 and not self._closed:
                # Let the decisions of the next moments join this batch (close() skips the wait).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self._linger_s)
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[DecisionLogEntry]) -> None:
        delay = self._backoff_s
        for attempt in range(1, self._attempts + 1):
            try:
                await self._sink.record_decisions(batch)
            except Exception as exc:
                if is_transient(exc) and attempt < self._attempts:
                    self.retries += 1
                    log.warning(
                        "writing %d policy decisions failed (try %d of %d), retrying in %.2fs: %s",
                        len(batch),
                        attempt,
                        self._attempts,
                        delay,
                        exc,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_backoff_s)
                    continue
                if not is_transient(exc) and len(batch) > 1:
                    # One bad entry must not take its batch-mates down with it: write them singly.
                    for entry in batch:
                        await self._write([entry])
                    return
                self.lost += len(batch)
                # The entries go to the log in full, so an operator can still see (and replay) them.
                log.error("gave up writing %d policy decisions after %d tries: %r", len(batch), attempt, exc)
                for e in batch:
                    log.error(
                        "unwritten policy decision: creator=%s stage=%s action=%s reasons=%s "
                        "controls_version=%s at=%s",
                        e.creator_id,
                        e.stage.value,
                        e.decision.action.value,
                        list(e.decision.codes),
                        e.controls_version,
                        e.at.isoformat() if e.at is not None else "",
                    )
                return
            self.written += len(batch)
            return
