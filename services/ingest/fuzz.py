"""Fuzz the parsers: mutate the fixture exports and check that only `IngestError` ever escapes.

    .venv/bin/python -m services.ingest.fuzz --seconds 60 [--seed 1]

A mutation fuzzer (no extra dependency): each round takes a fixture file and flips bytes,
truncates, duplicates a slice, inserts deep nesting or invalid UTF-8, then parses the result under
the fixture's own name (so the format's parser runs) and under a random other format's name. Any
other exception is a bug: it is printed with the seed and round to reproduce it, and the exit
status is 1.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

from services.ingest.core.errors import IngestError
from services.ingest.core.parsers import parse_entry

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "ingest"
NAMES = ["a.txt", "a.md", "a.jsonl", "a.csv", "posts_1.json", "tweets.js", "c.vtt", "c.srt", "noext"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random mutation of ``data``."""
    buf = bytearray(data)
    choice = rng.randrange(6)
    if choice == 0 and buf:
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif choice == 1 and buf:
        del buf[rng.randrange(len(buf)) :]
    elif choice == 2 and buf:
        start = rng.randrange(len(buf))
        piece = buf[start : start + rng.randint(1, 64)]
        at = rng.randrange(len(buf))
        buf[at:at] = piece * rng.randint(1, 50)
    elif choice == 3:
        depth = rng.choice([10, 100, 10_000])
        at = rng.randrange(len(buf) + 1)
        buf[at:at] = b"[" * depth + b"]" * rng.choice([0, depth])
    elif choice == 4:
        at = rng.randrange(len(buf) + 1)
        buf[at:at] = rng.choice([b"\xff\xfe", b"\xc3", b"\x00", b"\xed\xa0\x80", "\u2028".encode()])
    else:
        at = rng.randrange(len(buf) + 1)
        buf[at:at] = rng.choice([b'"', b"{", b"}", b",", b"\n", b"-->", b"window.YTD.x.part0 = "])
    return bytes(buf)


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzer; 0 when nothing but IngestError was raised."""
    parser = argparse.ArgumentParser(description="Fuzz the ingest parsers.")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    corpus = [(p.name, p.read_bytes()) for p in sorted(FIXTURES.rglob("*")) if p.is_file()]
    deadline = time.monotonic() + args.seconds
    rounds = failures = 0
    while time.monotonic() < deadline:
        name, data = rng.choice(corpus)
        mutated = data
        for _ in range(rng.randint(1, 3)):
            mutated = mutate(mutated, rng)
        for target in (name, rng.choice(NAMES)):
            try:
                parse_entry(mutated, target)
            except IngestError:
                pass
            except Exception:
                failures += 1
                print(f"round {rounds} (seed {args.seed}), {target}: {mutated[:200]!r}", file=sys.stderr)
                traceback.print_exc()
        rounds += 1
    print(f"{rounds} rounds, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
