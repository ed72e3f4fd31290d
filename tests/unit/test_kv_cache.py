"""PrefixCache bookkeeping: exact block ids, eviction order, pins, and a property test of its invariants."""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.inference.core.kv_cache import PrefixCache

pytestmark = pytest.mark.timeout(60)


def seq(*blocks: int, size: int = 2) -> list[int]:
    """Tokens made of whole blocks: block value ``b`` is ``[b] * size``."""
    return [b for b in blocks for _ in range(size)]


def test_insert_then_match_returns_the_same_blocks() -> None:
    cache = PrefixCache(num_blocks=8, block_size=2)
    assert cache.insert(seq(1, 2, 3)) == [(0, 0), (1, 1), (2, 2)]
    # Match never covers the last token: the model must compute the next-token logits.
    m = cache.match(seq(1, 2, 3))
    assert (m.block_ids, m.num_tokens) == ((0, 1), 4)
    m = cache.match([*seq(1, 2, 3), 9])
    assert (m.block_ids, m.num_tokens) == ((0, 1, 2), 6)
    # A partial trailing block is never cached; a shared prefix reuses the existing blocks.
    assert cache.insert([*seq(1, 2), 7]) == []
    assert cache.insert(seq(1, 4)) == [(1, 3)]
    assert cache.match([*seq(1, 4), 0]).block_ids == (0, 3)
    assert cache.match(seq(2, 1, 1)).block_ids == ()
    stats = cache.stats()
    assert (stats.lookups, stats.hits, stats.misses, stats.hit_tokens) == (4, 3, 1, 14)
    assert stats.queried_tokens == 6 + 7 + 5 + 6
    assert stats.used_blocks == 4


def test_lru_leaf_is_evicted_first_and_shared_parent_survives() -> None:
    cache = PrefixCache(num_blocks=4, block_size=2)
    cache.insert(seq(1, 2))  # blocks 0 (persona), 1
    cache.insert(seq(1, 3))  # block 2 under the same parent
    cache.insert(seq(5))  # block 3
    cache.match([*seq(1, 2), 0])  # touches blocks 0 and 1
    # Leaves by last use: 2 (2nd op), 3 (3rd), 1 (4th). Block 0 has children: never a candidate.
    assert cache.insert(seq(6)) == [(0, 2)]
    assert cache.cached_block_ids() == {0, 1, 2, 3}
    assert cache.match([*seq(1, 3), 0]).block_ids == (0,)
    assert cache.insert(seq(7)) == [(0, 3)]  # then block 3 (seq 5)
    assert cache.stats().evictions == 2
    assert cache.match([*seq(1, 2), 0]).block_ids == (0, 1)


def test_pinned_blocks_are_never_evicted_and_unlock_releases_them() -> None:
    cache = PrefixCache(num_blocks=2, block_size=2)
    cache.insert(seq(1, 2))
    m = cache.match([*seq(1, 2), 0])
    cache.lock(m.block_ids)
    assert cache.refs(0) == 1 and cache.refs(1) == 1
    assert cache.insert(seq(3)) == []  # everything pinned: insertion stops, nothing is corrupted
    assert cache.stats().pinned_blocks == 2
    cache.unlock(m.block_ids)
    assert cache.refs(0) == 0
    assert cache.insert(seq(3)) == [(0, 1)]  # the leaf (block 1) goes, its parent stays
    with pytest.raises(ValueError, match="not locked"):
        cache.unlock([0])


def test_insertion_never_evicts_its_own_path() -> None:
    cache = PrefixCache(num_blocks=2, block_size=2)
    # Inserting a 3-block sequence into 2 blocks: the third allocation finds only its own path.
    assert cache.insert(seq(1, 2, 3)) == [(0, 0), (1, 1)]
    assert cache.match(seq(1, 2, 3)).block_ids == (0, 1)


def test_zero_budget_caches_nothing() -> None:
    cache = PrefixCache(num_blocks=0, block_size=4)
    assert cache.insert(list(range(12))) == []
    assert cache.match(list(range(12))).num_tokens == 0


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["insert", "match_lock", "unlock"]),
            st.lists(st.integers(0, 2), min_size=1, max_size=12),
        ),
        max_size=40,
    ),
    num_blocks=st.integers(0, 6),
)
def test_invariants_over_random_operations(ops: list[tuple[str, list[int]]], num_blocks: int) -> None:
    """Whatever the mix: pinned blocks stay cached with their content; a match is a true prefix."""
    size = 2
    cache = PrefixCache(num_blocks=num_blocks, block_size=size)
    content: dict[int, tuple[int, ...]] = {}  # block id -> the full token prefix it ends
    pins: list[tuple[tuple[int, ...], tuple[int, ...]]] = []  # (block ids, tokens they cover)
    for op, tokens in ops:
        if op == "insert":
            for index, block_id in cache.insert(tokens):
                assert block_id not in {b for ids, _ in pins for b in ids}, "evicted a pinned block"
                content[block_id] = tuple(tokens[: (index + 1) * size])
        elif op == "match_lock":
            m = cache.match(tokens)
            assert m.num_tokens == len(m.block_ids) * size <= max(len(tokens) - 1, 0)
            for i, b in enumerate(m.block_ids):
                assert content[b] == tuple(tokens[: (i + 1) * size]), "match returned a stale block"
            cache.lock(m.block_ids)
            pins.append((m.block_ids, tuple(tokens[: m.num_tokens])))
        elif pins:
            ids, _ = pins.pop(0)
            cache.unlock(ids)
        cached = cache.cached_block_ids()
        assert len(cached) <= num_blocks
        for ids, covered in pins:
            assert set(ids) <= cached
            for i, b in enumerate(ids):
                assert content[b] == covered[: (i + 1) * size]
        stats = cache.stats()
        assert stats.used_blocks == len(cached)
        assert stats.pinned_blocks == len({b for ids, _ in pins for b in ids})


def test_stats_can_be_read_from_another_thread_while_the_cache_changes() -> None:
    """Metrics read stats() off the engine thread; it must never walk structures being mutated."""
    cache = PrefixCache(num_blocks=64, block_size=2)
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                stats = cache.stats()
                assert 0 <= stats.pinned_blocks <= stats.used_blocks <= 64
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    rng = random.Random(0)
    pins: list[tuple[int, ...]] = []
    try:
        for _ in range(20_000):
            tokens = [rng.randrange(6) for _ in range(rng.randrange(2, 40))]
            cache.insert(tokens)
            match = cache.match(tokens)
            cache.lock(match.block_ids)
            pins.append(match.block_ids)
            if len(pins) > 4:
                cache.unlock(pins.pop(0))
    finally:
        done.set()
        reader.join()
    assert not errors, errors[0]
    assert cache.stats().pinned_blocks == len({b for ids in pins for b in ids})
