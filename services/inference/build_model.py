"""Build a model directory for the inference service.

Usage::

    python -m services.inference.build_model tiny --out DIR [--seed N] [--dtype fp32|fp16] [--attention A]
    python -m services.inference.build_model hf --src HF_DIR --out DIR [--dtype fp32|fp16] [--attention A]

``tiny`` makes a random-weight test model with a locally trained tokenizer (its replies are noise, and
its ``config.json`` says so); ``hf`` converts a local Llama/Qwen2/Mistral checkpoint. Nothing is
downloaded. The directory format is described in services/inference/MODEL_FORMAT.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from services.inference.core.gqa_graph import ATTENTION_KIND as GQA_ATTENTION
from services.inference.core.model_build import build_from_hf, build_tiny

ATTENTION_CHOICES = [GQA_ATTENTION, "standard"]
ATTENTION_HELP = "graph variant: the serving graph (default) or the standard plain-loop graph"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m services.inference.build_model", description=__doc__.split("\n")[1]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    tiny = sub.add_parser("tiny", help="tiny random-weight Llama + locally trained tokenizer (for tests)")
    tiny.add_argument("--out", type=Path, required=True, help="output model directory")
    tiny.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    tiny.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    tiny.add_argument("--attention", choices=ATTENTION_CHOICES, default=GQA_ATTENTION, help=ATTENTION_HELP)
    hf = sub.add_parser("hf", help="convert a local Hugging Face checkpoint directory")
    hf.add_argument(
        "--src", type=Path, required=True, help="checkpoint dir: config.json, *.safetensors, tokenizer.json"
    )
    hf.add_argument("--out", type=Path, required=True, help="output model directory")
    hf.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    hf.add_argument("--attention", choices=ATTENTION_CHOICES, default=GQA_ATTENTION, help=ATTENTION_HELP)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    try:
        if args.command == "tiny":
            out = build_tiny(args.out, seed=args.seed, dtype=args.dtype, attention=args.attention)
        else:
            out = build_from_hf(args.src, args.out, dtype=args.dtype, attention=args.attention)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} in {time.perf_counter() - start:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
