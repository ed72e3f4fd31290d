"""Baseline (b) of the decode benchmark: onnxruntime-genai on the bench model's exact weights.

onnxruntime-genai (and its model builder, which needs torch and transformers) is not a project
dependency: it runs in the bench venv, in subprocesses (:mod:`bench.genai_driver`). Create it with::

    python3.11 -m venv .avatar/bench-venv
    .avatar/bench-venv/bin/pip install torch==2.13.0 sentence-transformers \\
        onnxruntime-genai==0.18.0 onnx_ir==1.1.0

The bench weights are written as a Hugging Face checkpoint (:func:`bench.inference_common.hf_checkpoint`)
and converted once by genai's builder (fp32, CPU), cached under ``bench/results``: for the
``Generator`` with ``prune_lm_head=true`` (prefill computes only the last token's logits), for the
``Engine`` without it (the Engine fails on the pruned graph on CPU). Its ``genai_config.json`` gets
``intra_op_num_threads = 2`` (genai's sessions otherwise use about one thread here) and, for the
Engine, ``engine.static_batching.max_batch_size = N``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.inference_common import RESULTS, THREADS, hf_checkpoint
from services.inference.core.runner import GQA_FLASH_ENV

REPO = Path(__file__).resolve().parent.parent
BENCH_PYTHON = REPO / ".avatar" / "bench-venv" / "bin" / "python"
DRIVER = Path(__file__).resolve().parent / "genai_driver.py"
MODES = ("generator", "generator-gemm", "engine")
"""genai configurations: a batched ``og.Generator`` on onnxruntime's default CPU attention kernel, the
same with the GEMM attention kernel our engine uses (``ORT_GQA_DISABLE_FLASH_ATTENTION=1``, in case
it helps genai's graph too), and ``og.Engine``. The best one is the baseline."""
VENV_HELP = (
    "python3.11 -m venv .avatar/bench-venv && .avatar/bench-venv/bin/pip install torch==2.13.0 "
    "sentence-transformers onnxruntime-genai==0.18.0 onnx_ir==1.1.0"
)


@dataclass(frozen=True)
class GenaiRun:
    """One measured genai configuration."""

    mode: str
    seconds: float
    new_tokens: int
    first: list[int]
    version: str

    @property
    def rate(self) -> float:
        return self.new_tokens / self.seconds


def missing(python: Path) -> str | None:
    """Why the genai baseline cannot run with ``python`` (``None`` when it can)."""
    if not python.exists():
        return f"{python} does not exist"
    probe = subprocess.run(
        [str(python), "-c", "import onnxruntime_genai, onnx_ir, transformers, torch"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "import failed"
    return None


def genai_model(python: Path, mode: str) -> Path:
    """Build (once, cached under bench/results) the genai model of the bench weights for ``mode``."""
    variant = "pruned" if mode.startswith("generator") else "full"
    out = RESULTS / f"smollm-shapes-genai-{variant}"
    if (out / "genai_config.json").exists():
        return out
    hf_dir = hf_checkpoint()
    print(f"building the onnxruntime-genai model in {out} ...", flush=True)
    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    build = subprocess.run(
        [str(python), str(DRIVER), "build", str(hf_dir), str(tmp), variant],
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0:
        raise RuntimeError(f"genai builder failed:\n{build.stdout[-2000:]}\n{build.stderr[-4000:]}")
    _set_config(tmp, max_batch_size=4)
    tmp.rename(out)
    return out


def _set_config(model_dir: Path, *, max_batch_size: int) -> None:
    path = model_dir / "genai_config.json"
    config = json.loads(path.read_text())
    config["model"]["decoder"]["session_options"]["intra_op_num_threads"] = THREADS
    config["engine"] = {"static_batching": {"max_batch_size": max_batch_size}}
    path.write_text(json.dumps(config, indent=4))


def measure(python: Path, model_dir: Path, prompts: list[list[int]], new: int, mode: str) -> GenaiRun:
    """Time ``prompts`` (all at once, ``new`` greedy tokens each) through genai in ``mode``."""
    _set_config(model_dir, max_batch_size=len(prompts))
    with tempfile.TemporaryDirectory(prefix="genai-bench") as tmp:
        spec = Path(tmp) / "requests.json"
        spec.write_text(json.dumps({"prompts": prompts, "new": new}))
        # The attention kernel is chosen per process by this variable; the bench process itself has
        # it set for our engine (runner.prefer_gemm_attention), so every genai run sets it explicitly.
        env = {**os.environ, GQA_FLASH_ENV: "1" if mode.endswith("-gemm") else "0"}
        proc = subprocess.run(
            [str(python), str(DRIVER), "run", str(model_dir), str(spec), mode.removesuffix("-gemm")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"genai {mode} run failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = len(prompts) * new
    if result["new_tokens"] != expected:
        raise RuntimeError(f"genai {mode} produced {result['new_tokens']} new tokens, expected {expected}")
    return GenaiRun(
        mode, float(result["seconds"]), int(result["new_tokens"]), list(result["first"]), result["version"]
    )
