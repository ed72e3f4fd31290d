"""Prefix cache bookkeeping: a radix tree of fixed-size token blocks, reference counts, LRU eviction.

This module decides *which* blocks of a fixed pool hold *which* token prefixes; it stores no tensors
(the engine's :class:`~services.inference.core.runner.BlockPool` does, indexed by the block ids
handed out here), so it can be tested exhaustively without a model.

Design (after SGLang's RadixAttention and vLLM's automatic prefix caching):

* Only full blocks of ``block_size`` tokens are cached. A node of the tree is one block; its key is
  the tuple of its tokens and its identity includes the whole path from the root, so two prompts share
  a node exactly when they share every token up to the end of that block.
* ``match`` walks the tree from the root and returns the longest cached chain. It never returns the
  whole prompt: at least one token must be recomputed to produce the next-token logits (vLLM's rule;
  forgetting it makes a fully cached prompt either crash or silently miss).
* Reference counts (``lock``/``unlock``) pin the chain a running request was served from; a pinned
  block, and every block with a child, is never evicted.
* Eviction takes the least recently used *leaf* with no references, so a shared persona prefix (whose
  blocks are parents of every fan's conversation) outlives the conversations hanging off it, and no
  cached block is ever left unreachable behind an evicted parent.
* Callers insert the prompt after prefill *and* prompt + generated tokens when a request ends, so the
  next turn of a conversation (whose prompt starts with this turn's prompt and reply) hits; caching
  only prompts is the multi-turn miss users reported against vLLM.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class _Node:
    block_id: int
    parent: _Node | None
    key: tuple[int, ...]
    children: dict[tuple[int, ...], _Node] = field(default_factory=dict)
    refs: int = 0
    last_access: int = 0


@dataclass(frozen=True)
class PrefixMatch:
    """A cached prefix: its blocks in order, and how many tokens they cover."""

    block_ids: tuple[int, ...]
    """Pool blocks holding the prefix's KV, first block first."""
    num_tokens: int
    """Tokens covered (``len(block_ids) * block_size``)."""


@dataclass(frozen=True)
class CacheStats:
    """Counters of a :class:`PrefixCache` since it was created."""

    lookups: int
    """Calls to :meth:`PrefixCache.match`."""
    hits: int
    """Lookups that found at least one cached block."""
    misses: int
    """Lookups that found nothing."""
    hit_tokens: int
    """Prompt tokens served from the cache over all lookups."""
    queried_tokens: int
    """Prompt tokens looked up over all lookups (``hit_tokens / queried_tokens`` is the token hit rate)."""
    evictions: int
    """Blocks evicted to make room."""
    num_blocks: int
    """Blocks in the pool."""
    used_blocks: int
    """Blocks holding a cached prefix."""
    pinned_blocks: int
    """Blocks referenced by running requests (never evicted)."""


class PrefixCache:
    """Which pool block holds which token prefix.

    Args:
        num_blocks: blocks in the pool (the memory budget divided by the size of one block).
        block_size: tokens per block.

    Raises:
        ValueError: for a non-positive size.
    """

    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks < 0 or block_size < 1:
            raise ValueError(f"need num_blocks >= 0 and block_size >= 1, got {num_blocks}, {block_size}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._root = _Node(block_id=-1, parent=None, key=())
        self._nodes: dict[int, _Node] = {}
        self._free = list(range(num_blocks - 1, -1, -1))  # pop() hands out low ids first
        self._heap: list[tuple[int, int]] = []  # (last_access, block_id), stale entries skipped
        self._clock = 0
        self._lookups = self._hits = self._hit_tokens = self._queried = self._evictions = 0
        # Kept as a count rather than summed over the nodes in stats(): metrics read stats() from
        # another thread while the engine thread grows and shrinks the node dict (iterating it there
        # raised "dictionary changed size during iteration" under load).
        self._pinned = 0

    # -- queries ----------------------------------------------------------------------------------

    def match(self, tokens: Sequence[int], *, record: bool = True) -> PrefixMatch:
        """The longest cached prefix of ``tokens``, leaving at least the last token uncached.

        Args:
            tokens: the prompt.
            record: count this lookup in :meth:`stats` (False for probes that are not requests).

        Returns:
            The matched blocks (possibly none). They are marked as recently used.
        """
        limit = (len(tokens) - 1) // self.block_size
        node, chain = self._root, []
        for i in range(limit):
            child = node.children.get(tuple(tokens[i * self.block_size : (i + 1) * self.block_size]))
            if child is None:
                break
            chain.append(child)
            node = child
        self._touch(chain)
        num_tokens = len(chain) * self.block_size
        if record:
            self._lookups += 1
            self._queried += len(tokens)
            self._hit_tokens += num_tokens
            if chain:
                self._hits += 1
        return PrefixMatch(tuple(n.block_id for n in chain), num_tokens)

    def stats(self) -> CacheStats:
        """Counters and occupancy (safe to call from any thread: it reads counters, walks nothing)."""
        return CacheStats(
            lookups=self._lookups,
            hits=self._hits,
            misses=self._lookups - self._hits,
            hit_tokens=self._hit_tokens,
            queried_tokens=self._queried,
            evictions=self._evictions,
            num_blocks=self.num_blocks,
            used_blocks=len(self._nodes),
            pinned_blocks=self._pinned,
        )

    def refs(self, block_id: int) -> int:
        """Reference count of a cached block (0 when not cached)."""
        node = self._nodes.get(block_id)
        return 0 if node is None else node.refs

    def cached_block_ids(self) -> set[int]:
        """Ids of all blocks that currently hold a prefix."""
        return set(self._nodes)

    # -- updates ----------------------------------------------------------------------------------

    def lock(self, block_ids: Sequence[int]) -> None:
        """Pin blocks (a running request was served from them) so they are not evicted."""
        for b in block_ids:
            self._pin(self._nodes[b])

    def unlock(self, block_ids: Sequence[int]) -> None:
        """Release pins taken by :meth:`lock`; unpinned leaves become evictable.

        Raises:
            ValueError: a block is not pinned (an unlock without a lock).
        """
        for b in block_ids:
            node = self._nodes[b]
            if node.refs <= 0:
                raise ValueError(f"block {b} is not locked")
            self._unpin(node)
            self._maybe_evictable(node)

    def insert(self, tokens: Sequence[int]) -> list[tuple[int, int]]:
        """Cache every full block of ``tokens`` that is not cached yet.

        Blocks already in the tree are reused (and marked recently used); new ones are allocated from
        free blocks, evicting unpinned LRU leaves when none is free. Allocation stops early, without
        error, when everything left is pinned or on the path being inserted.

        Args:
            tokens: a sequence whose KV the caller holds for every position.

        Returns:
            ``(block_index, block_id)`` for each newly allocated block, in order: the caller must copy
            the KV of tokens ``block_index * block_size ...`` into ``block_id``.
        """
        n_full = len(tokens) // self.block_size
        node = self._root
        path: list[_Node] = []
        new: list[tuple[int, int]] = []
        for i in range(n_full):
            key = tuple(tokens[i * self.block_size : (i + 1) * self.block_size])
            child = node.children.get(key)
            if child is None:
                # Pin the path while allocating so eviction cannot take a block we are extending.
                for n in path:
                    self._pin(n)
                block_id = self._allocate()
                for n in path:
                    self._unpin(n)
                if block_id is None:
                    break
                child = _Node(block_id=block_id, parent=node, key=key)
                node.children[key] = child
                self._nodes[block_id] = child
                new.append((i, block_id))
            path.append(child)
            node = child
        self._touch(path)
        for n in path:
            self._maybe_evictable(n)
        return new

    def evict_all_unpinned(self) -> int:
        """Drop every evictable block (repeatedly, so whole unpinned chains go); return how many."""
        count = 0
        while self._evict_one():
            count += 1
        return count

    # -- internals --------------------------------------------------------------------------------

    def _pin(self, node: _Node) -> None:
        node.refs += 1
        if node.refs == 1:
            self._pinned += 1

    def _unpin(self, node: _Node) -> None:
        node.refs -= 1
        if node.refs == 0:
            self._pinned -= 1

    def _touch(self, chain: Sequence[_Node]) -> None:
        self._clock += 1
        for n in chain:
            n.last_access = self._clock
            self._maybe_evictable(n)

    def _maybe_evictable(self, node: _Node) -> None:
        if node.refs == 0 and not node.children:
            heapq.heappush(self._heap, (node.last_access, node.block_id))

    def _allocate(self) -> int | None:
        if not self._free and not self._evict_one():
            return None
        return self._free.pop()

    def _evict_one(self) -> bool:
        while self._heap:
            access, block_id = heapq.heappop(self._heap)
            node = self._nodes.get(block_id)
            if node is None or node.last_access != access or node.refs > 0 or node.children:
                continue  # stale entry: touched, pinned, extended or already evicted since it was pushed
            assert node.parent is not None
            del node.parent.children[node.key]
            del self._nodes[block_id]
            self._free.append(block_id)
            self._evictions += 1
            if node.parent is not self._root:
                self._maybe_evictable(node.parent)
            return True
        return False
