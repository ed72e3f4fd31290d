"""Ingest throughput: a generated 50,000-post X archive through the real pipeline, end to end.

    .venv/bin/python bench/ingest_throughput.py [--posts 50000]

Starts embedded Postgres (pgvector), the inference service (ONNX MiniLM, built locally) and the
memory service on port 0, then ingests the archive through the ingest pipeline with gRPC clients,
exactly as the service does. Prints posts/s end to end and per stage (parse, chunk, embed, write),
and, as the baseline measured in the same run, re-ingests the same export (everything unchanged)
and prints the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

from avatar.v1 import inference_service_pb2_grpc as inf_grpc
from avatar.v1 import memory_service_pb2_grpc as mem_grpc
from services.common.clients import open_channel
from services.common.config import ServerConfig
from services.common.infra import start_postgres
from services.common.server import start_server
from services.inference import server as inference_server
from services.inference.config import InferenceConfig
from services.inference.models import ensure_models
from services.ingest.core.chunker import ChunkingParams
from services.ingest.core.jobs import new_job
from services.ingest.core.pipeline import Pipeline
from services.ingest.records import open_records
from services.ingest.server import InferenceEmbedder, MemoryWriter
from services.memory import server as memory_server
from services.memory.config import MemoryConfig

WORDS = [
    "sourdough",
    "starter",
    "flour",
    "water",
    "salt",
    "oven",
    "crumb",
    "crust",
    "proof",
    "fold",
    "shape",
    "score",
    "bake",
    "rye",
    "wheat",
    "levain",
    "hydration",
    "kitchen",
    "morning",
    "loaf",
    "bagel",
    "honey",
    "butter",
    "tucson",
    "class",
    "weekend",
    "recipe",
    "dough",
    "bench",
    "tension",
]
EMOJI = ["🍞", "🔥", "🥯", "😊", "✨"]


def make_archive(path: Path, posts: int, seed: int = 7) -> None:
    """A tweets.js with ``posts`` distinct tweets (plus 5% retweets that are excluded)."""
    rng = random.Random(seed)
    records = []
    for i in range(posts):
        words = rng.choices(WORDS, k=rng.randint(12, 40))
        text = f"Post {i}: " + " ".join(words) + f". {rng.choice(EMOJI)} #bake{i % 50}"
        records.append(
            {
                "tweet": {
                    "id_str": str(10**18 + i),
                    "full_text": text,
                    "created_at": "Wed Jan 10 15:00:00 +0000 2024",
                    "entities": {"urls": []},
                }
            }
        )
        if i % 20 == 0:
            records.append(
                {"tweet": {"id_str": str(2 * 10**18 + i), "full_text": "RT @other: " + text, "entities": {}}}
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("window.YTD.tweets.part0 = " + json.dumps(records), encoding="utf-8")


def _cfg() -> ServerConfig:
    return ServerConfig(host="127.0.0.1", port=0, grace_seconds=1.0, otlp_endpoint=None, log_level="WARNING")


async def main(posts: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="avbench", dir="/tmp"))
    pg = start_postgres(tmp / "pg", delete_on_stop=True)
    models = tmp / "models"
    ensure_models(models)
    archive = tmp / "export" / "data" / "tweets.js"
    make_archive(archive, posts)
    inference = await start_server(
        await inference_server.build(InferenceConfig(_cfg(), models, 2, 64, 256, build_missing=False))
    )
    memory = await start_server(
        await memory_server.build(MemoryConfig(_cfg(), pg.url, ef_search=100, pool_size=4))
    )
    records = await open_records(pg.url)
    inf_ch, mem_ch = open_channel(inference.target), open_channel(memory.target)
    try:
        for label in ("first ingest", "re-ingest (baseline: nothing new)"):
            pipeline = Pipeline(
                InferenceEmbedder(inf_grpc.InferenceServiceStub(inf_ch)),
                MemoryWriter(mem_grpc.MemoryServiceStub(mem_ch)),
                records,
                ChunkingParams(max_tokens=200),
            )
            job = new_job("bench", str(archive.parent.parent))
            await records.save_job(job)
            started = time.perf_counter()
            done = await pipeline.run(job)
            total = time.perf_counter() - started
            t = pipeline.times
            print(f"== {label}: {posts} posts in {total:.1f}s -> {posts / total:,.0f} posts/s end to end")
            print(f"   chunks inserted {done.chunks_inserted}, unchanged {done.chunks_unchanged}")
            # One batch's write overlaps the next one's embedding, so the shares can sum past 100%.
            for stage in ("parse", "chunk", "embed", "write", "profile"):
                seconds = getattr(t, stage)
                # A stage that did no work (re-ingest: nothing to embed) has no meaningful rate.
                rate = f"{posts / seconds:,.0f} posts/s" if seconds >= 0.01 else "n/a"
                print(f"   {stage:8s} {seconds:7.2f}s  {rate:>16s}  {seconds / total:6.1%} of wall time")
            if label.startswith("first"):
                first = total
            else:
                print(f"ratio first ingest / re-ingest wall time: {first / total:.1f}x")
    finally:
        await inf_ch.close(None)
        await mem_ch.close(None)
        await records.close()
        await memory.stop(0.5)
        await inference.stop(0.5)
        pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=50_000)
    asyncio.run(main(parser.parse_args().posts))
