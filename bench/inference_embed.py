"""Embeddings/s: our ONNX Runtime MiniLM (through the dynamic-batching worker) vs sentence-transformers.

    .venv/bin/python -m bench.inference_embed [--sentences 1024] [--st-python .avatar/bench-venv/bin/python]

Both embed the same sentences (lines of the sample creators' posts, repeated to ``--sentences``) with
2 threads. Ours: 64 concurrent Embed-sized requests of 16 texts through :class:`EmbeddingWorker`
with the service's default batching settings, as the service runs it. sentence-transformers (which
needs torch) runs in its own venv, in a subprocess, with ``encode(batch_size=64)``; create it with
``python3.11 -m venv .avatar/bench-venv && .avatar/bench-venv/bin/pip install torch==2.13.0
sentence-transformers``. The vectors are compared too (cosine).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.inference_common import THREADS, machine_note
from services.inference.config import InferenceConfig
from services.inference.core.embedder import Embedder, _default_source_dir, build_embedder
from services.inference.core.engine import EmbeddingWorker

REPO = Path(__file__).resolve().parent.parent

_ST_SCRIPT = """
import json, sys, time, torch
from sentence_transformers import SentenceTransformer
torch.set_num_threads(int(sys.argv[2]))
texts = json.load(open(sys.argv[1]))
model = SentenceTransformer(sys.argv[3], device="cpu")
model.encode(texts[:64], batch_size=64)
start = time.perf_counter()
vectors = model.encode(texts, batch_size=64, normalize_embeddings=True)
elapsed = time.perf_counter() - start
import numpy as np
np.save(sys.argv[4], vectors)
print(json.dumps({"seconds": elapsed}))
"""


def sentences(n: int) -> list[str]:
    lines = [
        line.strip()
        for path in sorted((REPO / "samples" / "creators").rglob("*"))
        if path.is_file() and path.suffix in {".md", ".txt", ".jsonl", ".json"}
        for line in path.read_text(encoding="utf-8", errors="ignore").splitlines()
        if len(line.strip()) > 20
    ]
    if not lines:
        lines = [f"sentence number {i} about sourdough and croissants" for i in range(100)]
    return [lines[i % len(lines)] + ("" if i < len(lines) else f" ({i})") for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=1024)
    parser.add_argument("--st-python", default=str(REPO / ".avatar" / "bench-venv" / "bin" / "python"))
    args = parser.parse_args()
    texts = sentences(args.sentences)
    print(f"machine: {machine_note()}")

    model_dir = Path(tempfile.mkdtemp(prefix="embbench")) / "embedder"
    build_embedder(model_dir)
    embedder = Embedder(model_dir, intra_op_threads=THREADS)
    # The service's defaults (merge size, token budget per run, wait), as `python -m services.inference`.
    cfg = InferenceConfig.from_env({})
    worker = EmbeddingWorker(
        embedder,
        max_batch=cfg.embed_max_batch,
        max_wait_s=cfg.embed_max_wait_ms / 1000.0,
        max_batch_tokens=cfg.embed_max_batch_tokens,
    )
    worker.embed_blocking(texts[:64])
    results: list[np.ndarray] = [np.empty(0)] * (len(texts) // 16)
    start = time.perf_counter()

    def call(i: int) -> None:
        results[i] = worker.embed_blocking(texts[i * 16 : (i + 1) * 16])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ours = time.perf_counter() - start
    worker.stop()
    ours_vectors = np.concatenate(results)
    print(
        f"ours (ORT, dynamic batching, {len(results)} requests of 16): "
        f"{len(ours_vectors) / ours:.0f} sentences/s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "texts.json"
        data.write_text(json.dumps(texts[: len(ours_vectors)]))
        out = Path(tmp) / "st.npy"
        proc = subprocess.run(
            [args.st_python, "-c", _ST_SCRIPT, str(data), str(THREADS), str(_default_source_dir()), str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(f"sentence-transformers run failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            sys.exit(1)
        st_seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
        st_vectors = np.load(out)
    st_rate = len(st_vectors) / st_seconds
    cosine = np.sum(ours_vectors * st_vectors, axis=1)
    print(f"sentence-transformers (torch, batch 64): {st_rate:.0f} sentences/s")
    print(
        f"ours / sentence-transformers: {len(ours_vectors) / ours / st_rate:.2f}x; "
        f"min cosine {cosine.min():.6f}"
    )
    print(f"machine after: {machine_note()}")


if __name__ == "__main__":
    main()
