"""Shared pieces of the inference benchmarks: the SmolLM-135M-shaped random model, timing, roofline.

The bench model has SmolLM-135M's shapes (hidden 576, 30 layers, 9 heads / 3 KV heads, SwiGLU 1536,
vocab 49152, tied embeddings) and random weights, built here in both graph variants: the
GroupQueryAttention serving graph the engine runs and the standard graph of the plain decode loop
(baseline). It borrows the tiny model's tokenizer files; prompts are token ids, and the model has no
EOS id so every request generates exactly its ``max_tokens``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from services.inference.core.gqa_graph import ATTENTION_KIND, GRAPH_REVISION
from services.inference.core.llama_config import LlamaConfig
from services.inference.core.llama_graph import save_model
from services.inference.core.model_build import build_tiny, random_weights

RESULTS = Path(__file__).resolve().parent / "results"
SMOLLM = LlamaConfig(
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    head_dim=64,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
    bos_token_id=None,
    eos_token_ids=(),
)
THREADS = 2


def param_count(config: LlamaConfig = SMOLLM) -> int:
    """Weights used per token (the tied embedding counted once, as the LM head)."""
    from services.inference.core.llama_config import weight_shapes

    return sum(int(np.prod(s)) for s in weight_shapes(config).values())


def bench_model(
    attention: str, config: LlamaConfig = SMOLLM, *, dtype: str = "fp32", name: str = "smollm-shapes"
) -> Path:
    """Build (once, cached under bench/results) a random-weight model of ``config`` with ``attention``."""
    out = RESULTS / f"{name}-{attention}" if dtype == "fp32" else RESULTS / f"{name}-{dtype}-{attention}"
    if attention == ATTENTION_KIND:  # a serving graph of an older layout is not what the code builds now
        out = out.with_name(f"{out.name}-r{GRAPH_REVISION}")
    if (out / "config.json").exists():
        return out
    from services.inference.core.model_build import _graph, _write_config

    print(f"building the bench model ({name}, {dtype}, {attention}) in {out} ...", flush=True)
    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok_dir = build_tiny(RESULTS / "tiny-tokenizer")
    weights = random_weights(config, seed=0)
    graph = _graph(config, weights, dtype, attention)  # type: ignore[arg-type]
    del weights  # a 1B-parameter build holds both copies otherwise
    save_model(graph, tmp, external_data=True)
    _write_config(tmp, config, random=True, dtype=dtype, attention=attention, extra={"seed": 0})  # type: ignore[arg-type]
    shutil.copyfile(tok_dir / "tokenizer.json", tmp / "tokenizer.json")
    (tmp / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    tmp.rename(out)
    return out


def hf_checkpoint() -> Path:
    """The bench model's weights as a Hugging Face ``LlamaForCausalLM`` directory (cached).

    Exactly the engine's weights (``random_weights(SMOLLM, seed=0)``) in ``model.safetensors``, a
    config.json with SmolLM-135M's shapes (tied embeddings, ``rope_scaling={"rope_type": "default"}``
    which onnxruntime-genai's builder needs) and the tiny tokenizer's files, for the onnxruntime-genai
    baseline. No EOS id: every request generates exactly its new tokens.
    """
    out = RESULTS / "smollm-shapes-hf"
    if (out / "model.safetensors").exists():
        return out
    from safetensors.numpy import save_file

    print(f"writing the bench weights as a Hugging Face checkpoint in {out} ...", flush=True)
    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tok_dir = build_tiny(RESULTS / "tiny-tokenizer")
    c = SMOLLM
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads,
        "head_dim": c.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_theta,
        "rope_scaling": {"rope_type": "default"},
        "max_position_embeddings": c.max_position_embeddings,
        "tie_word_embeddings": c.tie_word_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": None,
        "eos_token_id": None,
        "torch_dtype": "float32",
    }
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    (tmp / "generation_config.json").write_text(json.dumps({"do_sample": False}))
    weights = random_weights(SMOLLM, seed=0)
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(tmp / "model.safetensors"))
    shutil.copyfile(tok_dir / "tokenizer.json", tmp / "tokenizer.json")
    tok_config = json.loads((tok_dir / "tokenizer_config.json").read_text())
    tok_config.pop("chat_template", None)
    (tmp / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))
    tmp.rename(out)
    return out


def prompts(n: int, length: int, seed: int = 0) -> list[list[int]]:
    """``n`` random prompts of ``length`` ids (distinct, so nothing is shared by accident)."""
    rng = np.random.default_rng(seed)
    return [[int(t) for t in rng.integers(100, SMOLLM.vocab_size, size=length)] for _ in range(n)]


def matmul_peak_gflops(n: int = 1536, repeats: int = 8) -> float:
    """Best fp32 GFLOP/s of a numpy ``n x n`` matmul (the machine's practical compute ceiling)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def machine_note() -> str:
    """Cores and load average, printed with every result (the machine is shared)."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load}"
