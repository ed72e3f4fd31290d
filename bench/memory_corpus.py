"""A realistic creator corpus for the memory benchmark, embedded with the real MiniLM model and cached.

The texts are generated (a cooking / fitness / travel / gear creator writing posts, captions, video
transcripts and Q&A answers) from templates over a large vocabulary, so they read like social posts,
share words (full-text search has real work to do) and differ enough that MiniLM spreads them over
the embedding space. The vectors are real MiniLM embeddings of those texts, never random.

Embedding 200,000 texts on two busy cores takes tens of minutes, so the corpus is cached in shards
under ``.avatar/bench/memory`` (gitignored): a rerun loads it in seconds, and an interrupted run resumes
from the last finished shard.

    .venv/bin/python -m bench.memory_corpus --n 200000      # build (or finish building) the cache
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO / ".avatar" / "bench" / "memory"
SHARD = 10_000
SEED = 20240501

PLATFORMS = ("instagram", "youtube", "tiktok", "x")
KINDS = ("post", "caption", "transcript", "qa")

_DISHES = (
    "sourdough loaf",
    "focaccia",
    "banana bread",
    "lemon tart",
    "ramen broth",
    "chili con carne",
    "shakshuka",
    "pad thai",
    "mushroom risotto",
    "carrot cake",
    "cinnamon rolls",
    "miso salmon",
    "chickpea curry",
    "brown butter cookies",
    "pavlova",
    "gnocchi",
    "tomato galette",
    "bao buns",
    "apple crumble",
    "overnight oats",
    "dal makhani",
    "paella",
    "beef pho",
    "kimchi fried rice",
    "olive oil cake",
    "croissants",
    "bagels",
    "tiramisu",
    "granola",
    "lentil soup",
    "pierogi",
    "tacos al pastor",
    "churros",
    "panna cotta",
    "chocolate babka",
    "ciabatta",
    "baklava",
)
_INGREDIENTS = (
    "rye flour",
    "brown butter",
    "smoked paprika",
    "tahini",
    "cardamom",
    "maple syrup",
    "sea salt",
    "vanilla bean",
    "fresh basil",
    "gochujang",
    "coconut milk",
    "buttermilk",
    "lemon zest",
    "dark chocolate",
    "rolled oats",
    "miso paste",
    "chili crisp",
    "greek yogurt",
    "honey",
    "saffron",
    "cold butter",
    "instant yeast",
    "whole wheat flour",
    "pistachios",
    "ginger",
    "black garlic",
)
_GEAR = (
    "Canon R50",
    "Sony ZV-E10",
    "a cast iron skillet",
    "my stand mixer",
    "a Dutch oven",
    "the Rode mic",
    "a ring light",
    "my GoPro",
    "the air fryer",
    "a digital scale",
    "a bench scraper",
    "my running shoes",
    "a kettlebell",
    "the rowing machine",
    "resistance bands",
    "a foam roller",
    "my old tripod",
    "a pasta machine",
    "a pizza steel",
    "the proofing basket",
)
_PLACES = (
    "Lisbon",
    "Kyoto",
    "Oaxaca",
    "Naples",
    "Istanbul",
    "Hanoi",
    "Copenhagen",
    "Marrakech",
    "Lima",
    "Tbilisi",
    "Seoul",
    "Porto",
    "Mexico City",
    "Bologna",
    "Penang",
    "Montreal",
    "Cape Town",
    "the farmers market",
    "my grandmother's kitchen",
    "a tiny bakery downtown",
    "the night market",
)
_WORKOUTS = (
    "a 5k tempo run",
    "leg day",
    "a 20 minute HIIT session",
    "mobility work",
    "a long hike",
    "yoga flow",
    "deadlift practice",
    "a recovery walk",
    "hill sprints",
    "core circuit",
    "a swim session",
    "pull-up progressions",
    "a rest day",
    "interval cycling",
)
_FEELINGS = (
    "honestly obsessed",
    "a little nervous",
    "so proud",
    "completely exhausted",
    "really grateful",
    "surprisingly calm",
    "super excited",
    "a bit frustrated",
    "pleasantly surprised",
    "hooked",
)
_TIMES = (
    "this morning",
    "last weekend",
    "on Sunday",
    "after work",
    "at 6am",
    "last night",
    "yesterday",
    "before sunrise",
    "during the holidays",
    "on my day off",
    "this week",
    "last summer",
)
_TIPS = (
    "let the dough rest longer than you think",
    "weigh everything instead of using cups",
    "salt the pasta water like the sea",
    "toast your spices before adding liquid",
    "do not skip the warm-up",
    "sleep matters more than supplements",
    "film in natural light",
    "keep the oven door closed for the first twenty minutes",
    "hydrate before you feel thirsty",
    "use cold butter for flaky layers",
    "track progress with photos not the scale",
    "batch cook grains on Sunday",
    "check the internal temperature",
    "rest meat before slicing",
    "increase the load by small steps",
    "clean as you go",
    "taste and adjust at the end",
)
_QUESTIONS = (
    "what flour do you use for {dish}",
    "how long do you proof the {dish}",
    "can I swap {ing} in the {dish}",
    "what camera do you film with",
    "how do you stay consistent with {workout}",
    "where did you eat in {place}",
    "any tips for a beginner trying {workout}",
    "is the {dish} freezer friendly",
    "why did my {dish} come out dense",
    "what do you eat after {workout}",
)
_OPENERS = (
    "Made {dish} {time} and I am {feeling}.",
    "Quick one: {dish} with {ing}, ready in under an hour.",
    "Back from {place} and still dreaming about the {dish}.",
    "{time_cap} I tried {workout} and felt {feeling}.",
    "New video is up: the {dish} everyone asked for.",
    "Testing {gear} for the first time {time}.",
    "Day {n} of my {dish} experiment.",
    "Shoutout to everyone who baked the {dish} {time}!",
    "Storytime from {place}: I got lost looking for {dish}.",
    "Fueling {workout} with {dish} {time}.",
)
_MIDDLES = (
    "The secret is {ing} and patience.",
    "I used {ing} instead of {ing2} and it worked better.",
    "Filmed everything on {gear}, no fancy lighting.",
    "My tip: {tip}.",
    "Pro tip: {tip}.",
    "It took {n} tries to get the crumb right.",
    "The recipe serves {small} and keeps for {small} days.",
    "Paired it with {workout} earlier, so I was starving.",
    "The smell of {ing} filled the whole flat.",
    "I learned this version in {place} from a {adj} cook.",
    "Bake at {temp} degrees for {mins} minutes.",
    "Ran {small}k {time} before breakfast.",
    "If you only change one thing, {tip}.",
)
_CLOSERS = (
    "Full recipe in the description.",
    "Tell me if you try it!",
    "Saving this one for later.",
    "Next week: {dish2}.",
    "Link to {gear} in my bio, not sponsored.",
    "Would you make this?",
    "Comment your questions and I will answer them live.",
    "Tag me if you bake it.",
    "#{tag} #{tag2}",
    "Swipe for the process shots.",
    "Ask me anything about {workout}.",
)
_ADJS = ("wonderful", "grumpy", "patient", "legendary", "eighty year old", "young", "famous", "kind")
_TAGS = ("baking", "mealprep", "sourdough", "fitness", "homecook", "travel", "foodie", "running", "recipe")


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        dish=rng.choice(_DISHES),
        dish2=rng.choice(_DISHES),
        ing=rng.choice(_INGREDIENTS),
        ing2=rng.choice(_INGREDIENTS),
        gear=rng.choice(_GEAR),
        place=rng.choice(_PLACES),
        workout=rng.choice(_WORKOUTS),
        feeling=rng.choice(_FEELINGS),
        time=rng.choice(_TIMES),
        time_cap=rng.choice(_TIMES).capitalize(),
        tip=rng.choice(_TIPS),
        adj=rng.choice(_ADJS),
        tag=rng.choice(_TAGS),
        tag2=rng.choice(_TAGS),
        n=rng.randint(2, 60),
        small=rng.randint(2, 12),
        temp=rng.choice((180, 200, 220, 230, 250)),
        mins=rng.randint(12, 75),
    )


def make_text(rng: random.Random, kind: str) -> str:
    """One chunk of creator text of the given kind (a post, caption, transcript or Q&A answer)."""
    if kind == "qa":
        q = _fill(rng.choice(_QUESTIONS), rng)
        parts = [f"Q: {q[0].upper()}{q[1:]}?", "A:", _fill(rng.choice(_MIDDLES), rng)]
        parts += [_fill(rng.choice(_MIDDLES), rng) for _ in range(rng.randint(0, 2))]
        return " ".join(parts)
    if kind == "caption":
        return " ".join([_fill(rng.choice(_OPENERS), rng), _fill(rng.choice(_CLOSERS), rng)])
    parts = [_fill(rng.choice(_OPENERS), rng)]
    middles = rng.randint(2, 5) if kind == "transcript" else rng.randint(1, 3)
    parts += [_fill(rng.choice(_MIDDLES), rng) for _ in range(middles)]
    parts.append(_fill(rng.choice(_CLOSERS), rng))
    text = " ".join(parts)
    if kind == "transcript":
        # Spoken style: one run-on sentence, lower case, the way auto-captions read.
        text = "so " + " and ".join(p.rstrip(".!?").lower() for p in parts) + "."
    return text


@dataclass(frozen=True)
class Meta:
    """Source metadata of one corpus chunk."""

    platform: str
    kind: str
    created_at: datetime


def generate(n: int, seed: int = SEED) -> tuple[list[str], list[Meta]]:
    """Generate ``n`` distinct chunk texts and their source metadata, deterministically."""
    rng = random.Random(seed)
    seen: set[str] = set()
    texts: list[str] = []
    metas: list[Meta] = []
    start = datetime(2019, 1, 1, tzinfo=UTC)
    while len(texts) < n:
        kind = rng.choices(KINDS, weights=(5, 3, 3, 2))[0]
        text = make_text(rng, kind)
        if text in seen:
            continue
        seen.add(text)
        texts.append(text)
        metas.append(
            Meta(
                platform=rng.choice(PLATFORMS),
                kind=kind,
                created_at=start + timedelta(minutes=rng.randint(0, 6 * 365 * 24 * 60)),
            )
        )
    return texts, metas


def model_dir() -> Path:
    """The MiniLM embedder directory, built once from the locally installed weights."""
    from services.inference.core.embedder import build_embedder

    out = CACHE_DIR / "embedder"
    if not (out / "embedder_config.json").exists():
        build_embedder(out)
    return out


def load_corpus(
    n: int, seed: int = SEED, *, log: bool = True
) -> tuple[list[str], list[Meta], npt.NDArray[np.float32], float]:
    """Return texts, metadata and MiniLM embeddings of the first ``n`` corpus chunks.

    Embeddings are computed shard by shard and cached, so only missing shards cost model time.

    Returns:
        ``(texts, metas, embeddings [n, 384], seconds spent embedding in this call)``.
    """
    texts, metas = generate(n, seed)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    parts: list[npt.NDArray[np.float32]] = []
    embedder = None
    spent = 0.0
    for index, start in enumerate(range(0, n, SHARD)):
        shard_texts = texts[start : start + SHARD]
        path = CACHE_DIR / f"seed{seed}-shard{index:03d}.npy"
        names = CACHE_DIR / f"seed{seed}-shard{index:03d}.json"
        if path.exists() and names.exists():
            cached = json.loads(names.read_text(encoding="utf-8"))
            vecs = np.load(path)
            # A shard is reused only for exactly the texts it was made from (shards are full, except
            # possibly the last one of a smaller earlier run).
            if cached[: len(shard_texts)] == shard_texts and vecs.shape[0] >= len(shard_texts):
                parts.append(vecs[: len(shard_texts)])
                continue
        if embedder is None:
            from services.inference.core.embedder import Embedder

            embedder = Embedder(model_dir())
        t0 = time.perf_counter()
        vecs = embedder.embed(shard_texts, batch_size=256)
        took = time.perf_counter() - t0
        spent += took
        # Write then rename: a killed run never leaves a half-written shard that looks complete.
        with tempfile.NamedTemporaryFile(dir=CACHE_DIR, suffix=".npy", delete=False) as tmp:
            np.save(tmp, vecs)
        Path(tmp.name).replace(path)
        names.write_text(json.dumps(shard_texts), encoding="utf-8")
        if log:
            print(
                f"embedded shard {index} ({len(shard_texts)} texts) in {took:.1f}s "
                f"({len(shard_texts) / took:.0f} texts/s)",
                file=sys.stderr,
                flush=True,
            )
        parts.append(vecs)
    return texts, metas, np.concatenate(parts).astype(np.float32, copy=False), spent


def main() -> None:
    """Build (or finish building) the cached corpus."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000, help="chunks to generate and embed")
    args = parser.parse_args()
    t0 = time.perf_counter()
    texts, _, vecs, spent = load_corpus(args.n)
    print(
        f"{len(texts)} chunks, embeddings {vecs.shape}, embedding time this run {spent:.0f}s, "
        f"total {time.perf_counter() - t0:.0f}s"
    )


if __name__ == "__main__":
    main()
