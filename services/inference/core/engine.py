"""The generation engine: one thread owns the ONNX Runtime session, requests come via a queue.

ONNX Runtime never runs on the event loop. Handlers call :meth:`GenerationEngine.stream`, which
enqueues the request and yields events as the engine thread produces them. A consumer that stops
iterating (the gRPC client cancelled or its deadline passed) flags the request, and the engine
drops it before its next model step. This version decodes one request at a time (a plain loop);
continuous batching replaces the loop body without changing this interface.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from services.inference.core.embedder import Embedder
from services.inference.core.generator import DecoderModel, GenerationEvent
from services.inference.core.sampling import SamplingParams

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The engine's admission queue is full; the caller should back off."""


class EngineStopped(Exception):
    """The engine is shutting down and takes no new requests."""


_DONE = object()


@dataclass
class _Request:
    prompt_ids: list[int]
    params: SamplingParams
    push: Callable[[object], object]
    deadline: float | None
    cancelled: threading.Event = field(default_factory=threading.Event)
    enqueued_at: float = field(default_factory=time.monotonic)

    def should_stop(self) -> bool:
        return self.cancelled.is_set() or (self.deadline is not None and time.monotonic() > self.deadline)


class GenerationEngine:
    """Serialises generation on one thread that owns the model.

    Args:
        model: The loaded decoder.
        max_queue: Requests that may wait for the engine; beyond that :meth:`stream` raises
            :class:`QueueFull` at once instead of letting latency grow without bound.
    """

    def __init__(self, model: DecoderModel, max_queue: int = 64) -> None:
        self.model = model
        self._queue: queue.Queue[_Request | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="generation-engine", daemon=True)
        self._stopping = False
        self.completed = 0

    def start(self) -> None:
        """Start the engine thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the running request, fail the waiting ones, and join the thread."""
        self._stopping = True
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                break
            if pending is not None:
                pending.push(EngineStopped("inference engine is shutting down"))
        self._queue.put(None)
        self._thread.join(timeout)

    @property
    def queue_depth(self) -> int:
        """Requests waiting for the engine."""
        return self._queue.qsize()

    async def stream(
        self, prompt_ids: Sequence[int], params: SamplingParams, deadline: float | None = None
    ) -> AsyncIterator[GenerationEvent]:
        """Generate for ``prompt_ids``, yielding events as the engine thread produces them.

        Args:
            prompt_ids: The tokenised prompt.
            params: Sampling settings.
            deadline: ``time.monotonic()`` value after which the request is dropped.

        Raises:
            QueueFull: The admission queue is full.
            EngineStopped: The engine is shutting down.
        """
        if self._stopping:
            raise EngineStopped("inference engine is shutting down")
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[object] = asyncio.Queue()
        request = _Request(
            list(prompt_ids),
            params,
            lambda item: loop.call_soon_threadsafe(events.put_nowait, item),
            deadline,
        )
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise QueueFull(f"inference queue is full ({self._queue.maxsize} waiting)") from None
        try:
            while True:
                item = await events.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, GenerationEvent)
                yield item
        finally:
            # Reached on normal end, on error, and when the consumer is cancelled or closes us.
            request.cancelled.set()

    def _run(self) -> None:
        while True:
            request = self._queue.get()
            if request is None:
                return
            if request.should_stop():
                request.push(_DONE)
                continue
            try:
                for event in self.model.generate(request.prompt_ids, request.params, request.should_stop):
                    request.push(event)
            except Exception as exc:  # delivered to the waiting handler, which maps it to a status
                request.push(exc)
            finally:
                request.push(_DONE)
                self.completed += 1


class EmbeddingWorker:
    """Runs the embedder on its own thread so embedding never blocks the event loop."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (unit vectors, request order)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.embedder.embed, list(texts))

    def stop(self) -> None:
        """Stop the worker thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)
