"""onnxruntime-genai side of the decode benchmark; runs in the bench venv, never in the project venv.

    .avatar/bench-venv/bin/python bench/genai_driver.py build HF_DIR OUT_DIR {pruned,full}
    .avatar/bench-venv/bin/python bench/genai_driver.py run MODEL_DIR REQUESTS_JSON MODE

``build`` runs onnxruntime-genai's model builder (fp32, CPU) on the bench weights' Hugging Face
directory; ``pruned`` adds ``prune_lm_head=true`` (prefill computes only the last token's logits:
the Generator's best graph, which its Engine fails to run on CPU), ``full`` is the default graph.
transformers releases whose ``__init__`` lacks the ``Qwen3_5*ForConditionalGeneration`` classes the
builder imports get empty stand-ins first (in this process only; site-packages is not touched).

``run`` loads the built model (``genai_config.json`` already carries 2 intra-op threads and the
Engine's batch size, written by :mod:`bench.genai_baseline`), generates for every prompt of
``REQUESTS_JSON`` (``{"prompts": [[ids]], "new": int}``) greedily with the end-of-sequence token masked
so each request yields exactly ``new`` tokens, and prints one JSON line: ``seconds`` (end to end,
prefill included), ``new_tokens`` (counted from genai's own output) and ``first`` (the first
request's new tokens). MODE ``generator``: one ``og.Generator`` with ``batch_size = N``; ``engine``:
the ``og.Engine`` request API with all N requests submitted at once.
"""

from __future__ import annotations

import json
import runpy
import sys
import time
from typing import Any

import numpy as np

_QWEN35_STUBS = (
    "Qwen3_5ForConditionalGeneration",
    "Qwen3_5MoeForConditionalGeneration",
    "Qwen3_5ForCausalLM",
    "Qwen3_5MoeForCausalLM",
)


def build(hf_dir: str, out_dir: str, variant: str) -> None:
    """Run ``python -m onnxruntime_genai.models.builder`` with the stand-ins it may need."""
    import transformers

    for name in _QWEN35_STUBS:
        if not hasattr(transformers, name):
            setattr(transformers, name, type(name, (), {}))
    sys.argv = [
        "builder",
        "-i",
        hf_dir,
        "-o",
        out_dir,
        "-p",
        "fp32",
        "-e",
        "cpu",
    ]
    if variant == "pruned":
        sys.argv += ["--extra_options", "prune_lm_head=true"]
    runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__")


def run_generator(og: Any, model: Any, prompts: list[list[int]], new: int) -> tuple[int, list[int]]:
    """All prompts as one batch of a ``Generator``; (new tokens generated, first request's tokens)."""
    n, length = len(prompts), len(prompts[0])
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=length + new, min_length=length + new, batch_size=n)
    generator = og.Generator(model, params)
    generator.append_tokens(np.asarray(prompts, dtype=np.int32))
    while not generator.is_done():
        generator.generate_next_token()
    sequences = [np.asarray(generator.get_sequence(i)) for i in range(n)]
    total = sum(len(s) - length for s in sequences)
    return total, [int(t) for t in sequences[0][length:]]


def run_engine(og: Any, model: Any, prompts: list[list[int]], new: int) -> tuple[int, list[int]]:
    """All prompts submitted at once to an ``og.Engine``; (new tokens streamed, first request's tokens)."""
    engine = og.Engine(model)
    requests = []
    for p in prompts:
        request = engine.create_request()
        options = og.TurnOptions(request)
        options.set_do_sample(False)
        options.set_max_generated_tokens(new)
        options.set_min_generated_tokens(new)
        request.begin_turn(np.asarray(p, dtype=np.int32), options)
        requests.append((request, options))
    index = {id(r): i for i, (r, _) in enumerate(requests)}
    tokens: list[list[int]] = [[] for _ in prompts]
    buffer = engine.create_event_buffer(max(256, 2 * len(prompts)))
    token_flag = int(og.EngineEventFlags.TOKEN)
    failed_flag = int(og.EngineEventFlags.FAILED)
    while engine.has_pending_requests():
        for event in engine.run(buffer):
            flags = int(event.flags)
            if flags & failed_flag:
                raise RuntimeError(f"genai Engine request failed: {event.error_code}")
            if flags & token_flag:
                tokens[index[id(event.request)]].append(int(event.token))
    return sum(len(t) for t in tokens), tokens[0]


def run(model_dir: str, requests_json: str, mode: str) -> None:
    import onnxruntime_genai as og

    with open(requests_json, encoding="utf-8") as f:
        spec = json.load(f)
    prompts: list[list[int]] = spec["prompts"]
    new: int = spec["new"]
    model = og.Model(model_dir)
    fn = run_generator if mode == "generator" else run_engine
    fn(og, model, prompts[:1], 2)  # warm-up: first-run allocations are not part of the measurement
    start = time.perf_counter()
    total, first = fn(og, model, prompts, new)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "new_tokens": total, "first": first, "version": og.__version__}))


def main() -> None:
    command = sys.argv[1]
    if command == "build":
        build(sys.argv[2], sys.argv[3], sys.argv[4])
    elif command == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
