"""Simulated fans holding multi-turn conversations against a gateway.

Closed loop (each fan sends its next message when the reply ends) or open loop at a fixed rate of
turn starts across all fans; bounded by turns per fan and/or a duration, so a run always stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from avatar.v1 import conversation_service_pb2 as pb
from avatar.v1 import conversation_service_pb2_grpc as pb_grpc
from services.common.clients import open_channel
from services.common.config import ClientSecurity
from services.loadtest.stats import TurnResult

DEFAULT_MESSAGES = (
    "Hi! What are you working on this week?",
    "How did you get started?",
    "What would you recommend to a beginner?",
    "What does a normal day look like for you?",
    "Any tips for staying consistent?",
    "Thanks! What's next for you?",
)


@dataclass(frozen=True)
class LoadConfig:
    """What to simulate."""

    target: str
    """Gateway ``host:port``."""
    creators: Sequence[str]
    """Creators the fans talk to (fan i talks to creator i mod len)."""
    fans: int = 8
    """Concurrent fans."""
    turns_per_fan: int = 6
    """Turns each fan sends (0 = until the duration ends)."""
    duration_s: float = 0.0
    """Stop starting turns after this many seconds (0 = no time limit)."""
    rate: float = 0.0
    """Turn starts per second across all fans (0 = closed loop)."""
    timeout_s: float = 120.0
    """Deadline of each turn."""
    messages: Sequence[str] = DEFAULT_MESSAGES
    """Fan messages, used in order and cycled."""
    run_id: str = "load"
    """Prefix of fan ids, so runs do not share conversations."""

    def __post_init__(self) -> None:
        if self.fans < 1:
            raise ValueError("fans must be >= 1")
        if not self.creators:
            raise ValueError("at least one creator is required")
        if self.turns_per_fan <= 0 and self.duration_s <= 0:
            raise ValueError("set turns_per_fan or duration_s, or the run would never stop")
        if self.rate < 0 or self.duration_s < 0 or self.turns_per_fan < 0:
            raise ValueError("rate, duration and turns must not be negative")


class _Pacer:
    """Releases turn starts at a fixed rate (open loop); a no-op in closed loop."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self._interval:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(self._next, now) + self._interval
        if delay > 0:
            await asyncio.sleep(delay)


async def _one_turn(
    stub: pb_grpc.ConversationServiceAsyncStub,
    creator: str,
    fan: str,
    conversation_id: str,
    message: str,
    deadline_s: float,
    t0: float,
) -> tuple[TurnResult, str]:
    start = time.monotonic()
    ttft: float | None = None
    request = pb.ConverseRequest(
        creator_id=creator, fan_id=fan, conversation_id=conversation_id, message=message
    )
    try:
        async for event in stub.Converse(request, timeout=deadline_s):
            kind = event.WhichOneof("event")
            if kind == "start":
                conversation_id = event.start.conversation_id
            elif kind == "delta" and ttft is None:
                ttft = time.monotonic() - start
            elif kind == "end":
                end = event.end
                if ttft is None and end.text:
                    ttft = time.monotonic() - start
                return (
                    TurnResult(
                        started_at=start - t0,
                        code="OK",
                        ttft_s=ttft,
                        e2e_s=time.monotonic() - start,
                        completion_tokens=end.usage.completion_tokens,
                        prompt_tokens=end.usage.prompt_tokens,
                        cached_prompt_tokens=end.usage.cached_prompt_tokens,
                        outcome=pb.ReplyOutcome.Name(end.outcome).removeprefix("REPLY_OUTCOME_"),
                    ),
                    conversation_id,
                )
        code = "UNKNOWN"  # stream ended without an end event
    except grpc.aio.AioRpcError as err:
        code = err.code().name
    return TurnResult(
        started_at=start - t0, code=code, ttft_s=ttft, e2e_s=time.monotonic() - start
    ), conversation_id


async def run_load(
    cfg: LoadConfig, on_result: Callable[[TurnResult], None] | None = None
) -> tuple[list[TurnResult], float]:
    """Run the simulation; returns every turn's result and the wall time."""
    results: list[TurnResult] = []
    pacer = _Pacer(cfg.rate)
    t0 = time.monotonic()
    stop_at = t0 + cfg.duration_s if cfg.duration_s > 0 else float("inf")
    async with open_channel(cfg.target, ClientSecurity.for_cli()) as channel:
        stub = pb_grpc.ConversationServiceStub(channel)

        async def fan(i: int) -> None:
            creator = cfg.creators[i % len(cfg.creators)]
            fan_id, conversation_id, turn = f"{cfg.run_id}-fan-{i}", "", 0
            while (cfg.turns_per_fan <= 0 or turn < cfg.turns_per_fan) and time.monotonic() < stop_at:
                await pacer.wait()
                if time.monotonic() >= stop_at:
                    break
                message = cfg.messages[(i + turn) % len(cfg.messages)]
                result, conversation_id = await _one_turn(
                    stub, creator, fan_id, conversation_id, message, cfg.timeout_s, t0
                )
                results.append(result)
                if on_result is not None:
                    on_result(result)
                turn += 1

        await asyncio.gather(*(fan(i) for i in range(cfg.fans)))
    return results, time.monotonic() - t0
