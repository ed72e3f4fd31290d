"""The generation engine: continuous batching with prefix-cache reuse on one thread per model.

ONNX Runtime never runs on the event loop. Handlers call :meth:`GenerationEngine.stream`, which
enqueues the request and yields events as the engine thread produces them. The thread loops over
*steps* (vLLM's ``step()``):

1. take new requests; drop any whose client went away or whose deadline passed (their slot and
   cache pins are released before the next model call);
2. admit waiting requests into free slots: look the prompt up in the prefix cache, copy the cached
   blocks into the slot, and pin them (a request whose prompt shares blocks that another request is
   prefilling right now waits for them to be cached, then hits);
3. prefill: run up to ``prefill_chunk`` prompt tokens (long prompts are split over several steps); a
   finished prompt samples its first token and is inserted into the cache;
4. decode: one model call for every decoding slot, each at its own length; sample all rows at once;
   stream; retire finished sequences, inserting prompt *and* generated tokens into the cache so the
   next turn of the conversation hits.

Prefill goes first (as in vLLM's and SGLang's default schedulers): while prompts are still being
prefilled, the decode call is skipped unless the running sequences have waited
``max_decode_stall_s`` since their last token. A decode step costs about the same whether it carries
2 rows or 16 (it streams every weight either way), so decoding a half-admitted burst row by row is
paid again when the rest of the burst joins; prefilling first shortens time to first token for the
newcomers and makes the batch full sooner, and the bound keeps a streaming reply from pausing for long.

Requests join and leave at any step. The slot-row design and why it was chosen over a paged cache
are in ``docs/adr-inference.md``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from services.inference.core.embedder import DEFAULT_MAX_BATCH_TOKENS, Embedder
from services.inference.core.generator import (
    DecoderModel,
    FinishReason,
    GenerationEvent,
    PromptTooLongError,
    StopStringMatcher,
)
from services.inference.core.kv_cache import CacheStats, PrefixCache
from services.inference.core.runner import BlockPool, SlotRunner
from services.inference.core.sampling import SamplingParams, make_rng, sample_batch
from services.inference.core.tokenizer import IncrementalDetokenizer

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The engine's admission queue is full; the caller should back off."""


class EngineStopped(Exception):
    """The engine is shutting down and takes no new requests."""


@dataclass(frozen=True)
class EngineConfig:
    """Sizing of a :class:`GenerationEngine`."""

    max_batch: int = 16
    """Sequences decoded together (slots)."""
    max_seq_len: int = 2048
    """Tokens per slot, prompt plus generated (capped at the model's context)."""
    prefill_chunk: int = 512
    """Prompt tokens computed per engine step; longer prompts take several steps."""
    kv_cache_bytes: int = 256 * 1024 * 1024
    """Memory budget of the prefix cache (host memory), divided into blocks."""
    block_size: int = 16
    """Tokens per prefix-cache block."""
    max_queue: int = 64
    """Requests allowed to wait for a slot; more are refused with :class:`QueueFull`."""
    max_decode_stall_s: float = 2.0
    """Longest decoding sequences wait for prompts being prefilled before a decode step runs anyway
    (0: decode at every step)."""
    share_inflight_prefixes: bool = True
    """Hold a request back while another one computes blocks of its prompt, so it hits the cache
    instead of computing them too (False: admit in arrival order regardless)."""

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_seq_len", "prefill_chunk", "block_size", "max_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kv_cache_bytes < 0:
            raise ValueError(f"kv_cache_bytes must be >= 0, got {self.kv_cache_bytes}")
        if not self.max_decode_stall_s >= 0:  # also refuses NaN
            raise ValueError(f"max_decode_stall_s must be >= 0, got {self.max_decode_stall_s}")


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of the engine's counters (for metrics and tests)."""

    cache: CacheStats
    """Prefix-cache counters."""
    running: int
    """Sequences holding a slot."""
    waiting: int
    """Requests waiting for a slot."""
    steps: int
    """Engine steps run."""
    decode_steps: int
    """Decode model calls run (a step that only prefills runs none)."""
    prefill_tokens: int
    """Prompt tokens computed by the model (cache hits excluded)."""
    cached_prompt_tokens: int
    """Prompt tokens copied from the cache instead of computed."""
    generated_tokens: int
    """Tokens sampled."""
    completed: int
    """Requests finished (any reason)."""
    free_slots: int
    """Slots free for new sequences."""


_DONE = object()


@dataclass(frozen=True)
class RequestHandle:
    """A request queued with :meth:`GenerationEngine.generate_blocking`."""

    done: threading.Event
    """Set once the request has finished and its last event was delivered."""
    cancel: Callable[[], None]
    """Ask the engine to drop the request at its next step."""


class _State(Enum):
    WAITING = 0
    PREFILL = 1
    DECODE = 2


@dataclass(eq=False)
class _Sequence:
    prompt: list[int]
    params: SamplingParams
    push: Callable[[object], object]
    deadline: float | None
    cancelled: threading.Event = field(default_factory=threading.Event)
    state: _State = _State.WAITING
    slot: int = -1
    tokens: list[int] = field(default_factory=list)
    filled: int = 0  # tokens whose KV is in the slot
    pinned: tuple[int, ...] = ()
    cached_tokens: int = 0
    admitted_at: float | None = None
    last_token_at: float = 0.0  # monotonic time of the last sampled token (decode-stall bound)
    _prompt_array: np.ndarray | None = None
    rng: np.random.Generator | None = None
    detok: IncrementalDetokenizer | None = None
    stops: StopStringMatcher | None = None

    @property
    def prompt_ids(self) -> np.ndarray:
        """The prompt as an array (built once: compared against other prompts at admission)."""
        if self._prompt_array is None:
            self._prompt_array = np.asarray(self.prompt, dtype=np.int64)
        return self._prompt_array

    def should_stop(self) -> bool:
        return self.cancelled.is_set() or (self.deadline is not None and time.monotonic() > self.deadline)

    @property
    def generated(self) -> int:
        return len(self.tokens) - len(self.prompt)


class GenerationEngine:
    """Continuous-batching generation over one model, on one thread that owns its session.

    Args:
        model: the loaded decoder (a ``group_query_attention`` model directory).
        config: sizing; see :class:`EngineConfig`.

    Raises:
        ValueError: the model directory has the ``standard`` graph, which cannot batch in place.
    """

    def __init__(self, model: DecoderModel, config: EngineConfig | None = None) -> None:
        self.model = model
        self.config = config or EngineConfig()
        cfg = self.config
        if not model.supports_batching:
            raise ValueError(
                f"{model.model_dir} has the {model.info.attention!r} graph; the engine needs "
                "'group_query_attention' (rebuild it with python -m services.inference.build_model)"
            )
        self.max_len = min(cfg.max_seq_len, model.config.max_context)
        """Longest sequence (prompt plus generated) the engine runs."""
        self._runner = SlotRunner(model.session, model.config, model.kv_dtype, cfg.max_batch, self.max_len)
        per_block = BlockPool.bytes_per_block(model.config, cfg.block_size, model.kv_dtype)
        num_blocks = cfg.kv_cache_bytes // per_block
        self.cache = PrefixCache(num_blocks, cfg.block_size)
        """The prefix cache's bookkeeping (read it only through :meth:`stats` from other threads)."""
        self._pool = BlockPool(model.config, num_blocks, cfg.block_size, model.kv_dtype)
        self._stop_ids = frozenset(model.eos_token_ids)
        self._inbox: queue.SimpleQueue[_Sequence | None] = queue.SimpleQueue()
        self._pending_lock = threading.Lock()
        self._pending = 0  # submitted and not yet in a slot: bounded by max_queue
        self._waiting: deque[_Sequence] = deque()
        self._slots: list[_Sequence | None] = [None] * cfg.max_batch
        self._thread = threading.Thread(target=self._run, name="generation-engine", daemon=True)
        self._stopping = False
        self._steps = self._prefill_tokens = self._cached_tokens = self._generated = self.completed = 0
        self._decode_steps = 0
        self._stats_lock = threading.Lock()

    # -- public API (any thread) ------------------------------------------------------------------

    def start(self) -> None:
        """Start the engine thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Fail running and waiting requests with :class:`EngineStopped` and join the thread."""
        self._stopping = True
        self._inbox.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a slot."""
        return self._pending

    def stats(self) -> EngineStats:
        """Counters for metrics (consistent snapshot taken under a lock)."""
        with self._stats_lock:
            running = sum(1 for s in self._slots if s is not None)
            return EngineStats(
                cache=self.cache.stats(),
                running=running,
                waiting=self._pending,
                steps=self._steps,
                decode_steps=self._decode_steps,
                prefill_tokens=self._prefill_tokens,
                cached_prompt_tokens=self._cached_tokens,
                generated_tokens=self._generated,
                completed=self.completed,
                free_slots=self.config.max_batch - running,
            )

    def validate(self, prompt_ids: Sequence[int]) -> list[int]:
        """Check a prompt before queueing it.

        Raises:
            ValueError: empty prompt or an id outside the vocabulary.
            PromptTooLongError: the prompt leaves no room for a generated token.
        """
        prompt = [int(t) for t in prompt_ids]
        if not prompt:
            raise ValueError("prompt_ids must not be empty")
        vocab = self.model.config.vocab_size
        if min(prompt) < 0 or max(prompt) >= vocab:
            raise ValueError(f"prompt token ids must be in [0, {vocab})")
        if len(prompt) >= self.max_len:
            raise PromptTooLongError(
                f"prompt has {len(prompt)} tokens; the engine's context is {self.max_len} tokens"
            )
        return prompt

    async def stream(
        self, prompt_ids: Sequence[int], params: SamplingParams, deadline: float | None = None
    ) -> AsyncGenerator[GenerationEvent, None]:
        """Generate for ``prompt_ids``, yielding events as the engine thread produces them.

        Stopping iteration (the client cancelled, or the handler was cancelled) frees the sequence at
        the engine's next step.

        Args:
            prompt_ids: the tokenised prompt.
            params: sampling settings.
            deadline: ``time.monotonic()`` value after which the request is dropped.

        Raises:
            QueueFull: the admission queue is full (raised at once, nothing is queued).
            EngineStopped: the engine is shutting down.
            ValueError: a bad prompt (see :meth:`validate`).
        """
        prompt = self.validate(prompt_ids)
        if self._stopping:
            raise EngineStopped("inference engine is shutting down")
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[object] = asyncio.Queue()
        seq = _Sequence(
            prompt, params, lambda item: loop.call_soon_threadsafe(events.put_nowait, item), deadline
        )
        self.submit(seq)
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
            seq.cancelled.set()

    def generate_blocking(
        self, prompt_ids: Sequence[int], params: SamplingParams, on_event: Callable[[GenerationEvent], None]
    ) -> RequestHandle:
        """Queue a request from plain threads (benchmarks, tests); ``on_event`` runs on the engine thread.

        Returns:
            A handle whose ``done`` is set after the last ``on_event``, and whose ``cancel()`` frees the
            sequence at the next step (what a disconnecting gRPC client does).

        Raises:
            QueueFull: the admission queue is full.
            ValueError: a bad prompt (see :meth:`validate`).
        """
        done = threading.Event()

        def push(item: object) -> None:
            if isinstance(item, GenerationEvent):
                on_event(item)
            elif item is _DONE:
                done.set()

        seq = _Sequence(self.validate(prompt_ids), params, push, None)
        self.submit(seq)
        return RequestHandle(done, seq.cancelled.set)

    def submit(self, seq: _Sequence) -> None:
        """Enqueue a prepared sequence (see :meth:`stream`)."""
        with self._pending_lock:
            if self._pending >= self.config.max_queue:
                raise QueueFull(f"inference queue is full ({self.config.max_queue} waiting)")
            self._pending += 1
        self._inbox.put(seq)

    # -- engine thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            idle = not self._waiting and all(s is None for s in self._slots)
            if not self._take_new(block=idle):
                self._shutdown()
                return
            try:
                self._step()
            except Exception as exc:  # a model failure fails the sequences involved, not the thread
                log.exception("engine step failed")
                for seq in [s for s in self._slots if s is not None]:
                    self._retire(seq, None, error=exc)

    def _take_new(self, *, block: bool) -> bool:
        try:
            item = self._inbox.get() if block else self._inbox.get_nowait()
            while True:
                if item is None:
                    return False
                self._waiting.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            return True

    def _shutdown(self) -> None:
        error = EngineStopped("inference engine is shutting down")
        for seq in [s for s in self._slots if s is not None]:
            self._retire(seq, None, error=error)
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._waiting.append(item)
        for seq in self._waiting:
            seq.push(error)
            seq.push(_DONE)
        self._waiting.clear()

    def _step(self) -> None:
        with self._stats_lock:
            self._steps += 1
        # 1. Cancelled or past their deadline: free before computing anything for them.
        for seq in [s for s in self._slots if s is not None and s.should_stop()]:
            self._retire(seq, "cancelled")
        if any(s.should_stop() for s in self._waiting):
            keep: deque[_Sequence] = deque()
            for seq in self._waiting:
                if seq.should_stop():
                    with self._pending_lock:
                        self._pending -= 1
                    seq.push(GenerationEvent(None, "", "cancelled", len(seq.prompt), 0, 0))
                    seq.push(_DONE)
                    with self._stats_lock:
                        self.completed += 1
                else:
                    keep.append(seq)
            self._waiting = keep
        # 2. Admit, except requests waiting for a prefix another request is computing right now.
        if self._waiting and None in self._slots:
            held: deque[_Sequence] = deque()
            while self._waiting and None in self._slots:
                seq = self._waiting.popleft()
                if self._prefix_in_flight(seq):
                    held.append(seq)
                else:
                    self._admit(seq, self._slots.index(None))
            held.extend(self._waiting)
            self._waiting = held
        # 3. Prefill (chunked), 4. decode (unless prompts are still being prefilled; see the module doc).
        self._prefill()
        if self._decode_due():
            self._decode()

    def _prefix_in_flight(self, seq: _Sequence) -> bool:
        """Whether a request being prefilled will cache more of ``seq``'s prompt than is cached now.

        Fans of one creator share the persona prefix; when several arrive before it is cached (a
        creator goes live, a cache was evicted), admitting them together makes each compute the same
        blocks. Held back for the one prefill in flight, they hit the cache when it is inserted at the
        end of that prefill (the ADR's "two fans arriving in the same step both compute the persona").
        """
        if not self.config.share_inflight_prefixes or self.cache.num_blocks == 0:
            return False
        bs = self.cache.block_size
        cached_blocks = self.cache.match(seq.prompt, record=False).num_tokens // bs
        usable = len(seq.prompt) - 1  # the last prompt token is always computed
        for other in self._slots:
            if other is None or other.state is not _State.PREFILL:
                continue
            common = min(common_prefix_length(seq.prompt_ids, other.prompt_ids), usable)
            if common // bs > cached_blocks:
                return True
        return False

    def _admit(self, seq: _Sequence, slot: int) -> None:
        match = self.cache.match(seq.prompt)
        self.cache.lock(match.block_ids)
        self._runner.load_blocks(slot, self._pool, match.block_ids)
        seq.slot, seq.state, seq.pinned = slot, _State.PREFILL, match.block_ids
        seq.admitted_at = time.monotonic()
        seq.tokens = list(seq.prompt)
        seq.filled = seq.cached_tokens = match.num_tokens
        seq.rng = make_rng(seq.params)
        seq.detok = IncrementalDetokenizer(self.model.tokenizer, seq.prompt)
        seq.stops = StopStringMatcher(seq.params.stop)
        with self._stats_lock:
            self._slots[slot] = seq
            self._cached_tokens += match.num_tokens
        with self._pending_lock:
            self._pending -= 1

    def _prefill(self) -> None:
        budget = self.config.prefill_chunk
        for seq in sorted(
            (s for s in self._slots if s is not None and s.state is _State.PREFILL), key=id_order
        ):
            if budget <= 0:
                break
            n = min(len(seq.prompt) - seq.filled, budget)
            start = seq.filled
            chunk = np.array([seq.prompt[start : start + n]], dtype=np.int64)
            logits = self._runner.run(seq.slot, chunk, [start + n - 1])
            seq.filled += n
            budget -= n
            with self._stats_lock:
                self._prefill_tokens += n
            if seq.filled == len(seq.prompt):
                # Cache the prompt now, not only at the end, so fans arriving meanwhile already hit.
                self._runner.store_blocks(seq.slot, self._pool, self.cache.insert(seq.prompt))
                seq.state = _State.DECODE
                self._accept([seq], logits)

    def _decode_due(self) -> bool:
        """Whether this step decodes: no prompt is mid-prefill, or a decoding row waited too long."""
        active = [s for s in self._slots if s is not None]
        if not any(s.state is _State.PREFILL for s in active):
            return True
        waited = [s.last_token_at for s in active if s.state is _State.DECODE]
        return bool(waited) and time.monotonic() - min(waited) >= self.config.max_decode_stall_s

    def _decode(self) -> None:
        rows = [s for s in self._slots if s is not None and s.state is _State.DECODE]
        if not rows:
            return
        hi = max(s.slot for s in rows) + 1
        ids = np.zeros((hi, 1), dtype=np.int64)
        seqlens = np.zeros(hi, dtype=np.int32)
        for r in range(hi):
            other = self._slots[r]
            if other is not None:
                # A decoding row feeds its last token; a prefilling row gets a dummy write at its next
                # position, which its next prefill chunk overwrites; a free row writes at 0.
                seqlens[r] = min(other.filled, self.max_len - 1)
                if other.state is _State.DECODE:
                    ids[r, 0] = other.tokens[other.filled]
        logits = self._runner.run(0, ids, seqlens)
        with self._stats_lock:
            self._decode_steps += 1
        for s in rows:
            s.filled += 1
        self._accept(rows, logits[[s.slot for s in rows]])

    def _accept(self, rows: list[_Sequence], logits: np.ndarray) -> None:
        """Sample one token per row, stream it, and retire rows that finished."""
        picks = sample_batch(
            logits,
            [s.tokens for s in rows],
            [s.params for s in rows],
            [s.rng for s in rows],  # type: ignore[misc]  # set at admission
        )
        now = time.monotonic()
        with self._stats_lock:
            self._generated += len(rows)
        for seq, token in zip(rows, picks.tolist(), strict=True):
            seq.tokens.append(int(token))
            seq.last_token_at = now
            assert seq.detok is not None and seq.stops is not None
            stops = seq.stops
            if token in self._stop_ids or token in seq.params.stop_token_ids:
                self._emit(seq, token, stops.release(seq.detok.flush(), final=True), "stop")
                self._retire(seq, None)
                continue
            text = stops.release(seq.detok.add(token), final=False)
            if stops.matched:
                self._emit(seq, token, text, "stop")
                self._retire(seq, None)
            elif seq.generated >= seq.params.max_tokens or len(seq.tokens) >= self.max_len:
                text += stops.release(seq.detok.flush(), final=True)
                self._emit(seq, token, text, "stop" if stops.matched else "length")
                self._retire(seq, None)
            else:
                self._emit(seq, token, text, None)

    def _emit(self, seq: _Sequence, token: int | None, text: str, reason: FinishReason | None) -> None:
        seq.push(
            GenerationEvent(
                token, text, reason, len(seq.prompt), seq.generated, seq.cached_tokens, seq.admitted_at
            )
        )

    def _retire(
        self, seq: _Sequence, reason: FinishReason | None, error: BaseException | None = None
    ) -> None:
        """Free ``seq``'s slot and pins; cache what it computed; end its stream."""
        if error is None:
            if reason is not None:  # cancelled: a last event without a token
                text = seq.stops.release(seq.detok.flush(), final=True) if seq.stops and seq.detok else ""
                self._emit(seq, None, text, reason)
            # Everything with KV in the slot (prompt and generated) becomes reusable: the next turn of
            # this conversation starts with exactly these tokens.
            self._runner.store_blocks(seq.slot, self._pool, self.cache.insert(seq.tokens[: seq.filled]))
        else:
            seq.push(error)
        self.cache.unlock(seq.pinned)
        seq.pinned = ()
        with self._stats_lock:
            self._slots[seq.slot] = None
            self.completed += 1
        seq.push(_DONE)


def common_prefix_length(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading entries two 1-D arrays share."""
    n = min(a.shape[0], b.shape[0])
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if differ.size else n


def id_order(seq: _Sequence) -> int:
    """Prefill order: lowest slot first (slots are handed out in admission order when free)."""
    return seq.slot


class EmbeddingWorker:
    """Batched embeddings with dynamic batching on one thread.

    Concurrent :meth:`embed` calls are merged: the worker takes the first waiting request, then keeps
    collecting for up to ``max_wait_s`` or until ``max_batch`` texts, and embeds them together. The
    embedder sorts the merged texts by length and splits them into runs of at most
    ``max_batch_tokens`` padded tokens, so a bigger merge means less padding, not bigger runs.

    Args:
        embedder: the loaded embedder.
        max_batch: most texts merged into one pass.
        max_wait_s: longest a request waits for others to join its batch.
        max_batch_tokens: most padded tokens per model run.
        start: start the worker thread now (tests queue requests first, then :meth:`start`).
    """

    def __init__(
        self,
        embedder: Embedder,
        max_batch: int = 64,
        max_wait_s: float = 0.005,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        *,
        start: bool = True,
    ) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_batch_tokens = max_batch_tokens
        self._inbox: queue.SimpleQueue[tuple[list[str], Callable[[object], object]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="embedder", daemon=True)
        self.batches = 0
        """Model batches run (for tests and metrics)."""
        if start:
            self.start()

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (unit vectors, request order)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()

        def deliver(result: object) -> None:
            if future.done():
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)  # type: ignore[arg-type]

        self._inbox.put((list(texts), lambda r: loop.call_soon_threadsafe(deliver, r)))
        return await future

    def embed_blocking(self, texts: Sequence[str]) -> np.ndarray:
        """Embed from a plain thread through the same batching queue."""
        box: list[object] = []
        done = threading.Event()

        def deliver(result: object) -> None:
            box.append(result)
            done.set()

        self._inbox.put((list(texts), deliver))
        done.wait()
        if isinstance(box[0], BaseException):
            raise box[0]
        assert isinstance(box[0], np.ndarray)
        return box[0]

    def stop(self) -> None:
        """Stop the worker thread."""
        self._inbox.put(None)
        if self._thread.is_alive():
            self._thread.join(10.0)

    def _run(self) -> None:
        while True:
            first = self._inbox.get()
            if first is None:
                return
            batch = [first]
            size = len(first[0])
            deadline = time.monotonic() + self.max_wait_s
            stop = False
            while size < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._inbox.get(timeout=remaining) if remaining > 0 else self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
                size += len(item[0])
            texts = [t for req, _ in batch for t in req]
            try:
                vectors = self.embedder.embed(
                    texts, batch_size=max(self.max_batch, 1), max_batch_tokens=self.max_batch_tokens
                )
                self.batches += 1
            except Exception as exc:  # delivered to every caller of this batch
                for _, deliver in batch:
                    deliver(exc)
            else:
                start = 0
                for req, deliver in batch:
                    deliver(vectors[start : start + len(req)])
                    start += len(req)
            if stop:
                return
