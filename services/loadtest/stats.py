"""Load-test results and their summary (pure: no gRPC, no I/O)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TurnResult:
    """One fan turn as the load client saw it.

    Attributes:
        started_at: Seconds since the run started.
        code: gRPC status code name ("OK" on success).
        ttft_s: Time to the first reply text (``None`` when none arrived).
        e2e_s: Time to the end of the reply (or to the error).
        completion_tokens: Tokens generated.
        prompt_tokens: Prompt tokens.
        cached_prompt_tokens: Prompt tokens served from the KV cache.
        outcome: Reply outcome name ("ANSWERED", "REFUSED", ...), "" on error.
    """

    started_at: float
    code: str
    ttft_s: float | None
    e2e_s: float
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    outcome: str = ""


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class Summary:
    """Aggregates of a run, in the shape written to the JSON report."""

    wall_s: float
    turns: int
    ok: int
    errors: dict[str, int]
    turns_per_s: float
    tokens_per_s: float
    ttft_s: dict[str, float | None]
    e2e_s: dict[str, float | None]
    cache_hit_rate: float | None
    outcomes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def summarize(results: Sequence[TurnResult], wall_s: float) -> Summary:
    """Throughput, latency percentiles (p50/p90/p99), tokens/s, cache hit rate, errors by code."""
    ok = [r for r in results if r.code == "OK"]
    errors = Counter(r.code for r in results if r.code != "OK")
    ttfts = [r.ttft_s for r in ok if r.ttft_s is not None]
    e2es = [r.e2e_s for r in ok]
    prompt = sum(r.prompt_tokens for r in ok)
    wall = max(wall_s, 1e-9)
    return Summary(
        wall_s=wall_s,
        turns=len(results),
        ok=len(ok),
        errors=dict(sorted(errors.items())),
        turns_per_s=len(ok) / wall,
        tokens_per_s=sum(r.completion_tokens for r in ok) / wall,
        ttft_s={f"p{q}": percentile(ttfts, q) for q in (50, 90, 99)},
        e2e_s={f"p{q}": percentile(e2es, q) for q in (50, 90, 99)},
        cache_hit_rate=(sum(r.cached_prompt_tokens for r in ok) / prompt) if prompt else None,
        outcomes=dict(sorted(Counter(r.outcome for r in ok).items())),
    )
