"""Run the GroupQueryAttention graph over a fixed set of KV slots, in place, with I/O binding.

The KV cache of running sequences lives in one buffer per layer and per key/value,
``[max_batch, n_kv_heads, max_seq_len, head_dim]``: row ``r`` is slot ``r``. Every model call binds
a contiguous range of rows (a raw pointer into the buffer plus a shape) as both ``past_*`` and
``present_*``, so GroupQueryAttention appends the new keys/values in place and no cache tensor is
ever copied or concatenated. A prefill binds the one row being filled; a decode step binds rows
``0 .. hi`` and feeds every row its own position and length.

The same code serves CPU and CUDA: the buffers are host numpy arrays on the CPU provider and device
allocations (``OrtValue`` on ``cuda``) on the CUDA provider; only the small inputs (token ids and
lengths) travel per step.
Cached prefix blocks (:class:`BlockPool`) live in host memory and are copied into / out of slot rows
(numpy slicing on CPU, ``cudaMemcpy`` on CUDA). The CUDA branch is written but has not been run on a
GPU yet.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from services.inference.core.llama_config import LlamaConfig
from services.inference.core.llama_graph import past_input_names, present_output_names

GQA_FLASH_ENV = "ORT_GQA_DISABLE_FLASH_ATTENTION"
"""onnxruntime's switch between the two float kernels of its CPU GroupQueryAttention (read when a
session is created)."""


def prefer_gemm_attention() -> None:
    """Make CPU GroupQueryAttention kernels created from now on use onnxruntime's GEMM path.

    onnxruntime 1.31's CPU GroupQueryAttention has a tiled "flash" kernel (the default) and a GEMM
    kernel that materialises the scores. With the softmax scale folded into the q projection (the op
    runs with ``scale=1``, see :mod:`gqa_graph`), the GEMM kernel's single-query products go through
    MLAS's vectorised M=1 routines; on 2 cores it measured ~2x faster than the flash kernel for a
    16-row decode step and ~2x for a 256-token prefill, same results within float rounding. The
    switch is an environment variable the kernel reads at session creation, so this sets it for the
    process unless the operator already set it (which wins: ``ORT_GQA_DISABLE_FLASH_ATTENTION=0``
    restores the flash kernel). CUDA kernels do not read it. The GEMM kernel's score buffer is
    ``heads x S x max_seq_len`` floats per call (37 MB for a 512-token chunk of the bench model at
    2,048 tokens), transient.
    """
    os.environ.setdefault(GQA_FLASH_ENV, "1")


class BlockPool:
    """Host memory for cached prefix blocks: ``[2 * layers, num_blocks, n_kv, block_size, head_dim]``.

    Args:
        config: the model architecture.
        num_blocks: blocks in the pool.
        block_size: tokens per block.
        dtype: KV dtype of the model.
    """

    def __init__(
        self, config: LlamaConfig, num_blocks: int, block_size: int, dtype: type[np.floating[Any]]
    ) -> None:
        self.block_size = block_size
        # Written now (np.full), not mapped lazily: the budget is reserved at start rather than page by
        # page on the engine thread when blocks are first stored (see SlotRunner).
        self.data = np.full(
            (
                2 * config.num_hidden_layers,
                num_blocks,
                config.num_key_value_heads,
                block_size,
                config.head_dim,
            ),
            0,
            dtype=dtype,
        )
        """The blocks (index ``[:, block_id]``)."""

    @staticmethod
    def bytes_per_block(config: LlamaConfig, block_size: int, dtype: type[np.floating[Any]]) -> int:
        """Memory one block takes (keys and values of every layer)."""
        itemsize = np.dtype(dtype).itemsize
        return (
            2
            * config.num_hidden_layers
            * config.num_key_value_heads
            * block_size
            * config.head_dim
            * itemsize
        )


class SlotRunner:
    """Owns the slot KV buffers of one session and runs prefill / decode steps over them.

    Args:
        session: a session over a :mod:`gqa_graph` model.
        config: its architecture.
        kv_dtype: numpy dtype of its KV inputs.
        max_batch: slots (rows) in the buffers.
        max_seq_len: tokens per slot (prompt plus generated).
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        config: LlamaConfig,
        kv_dtype: type[np.floating[Any]],
        max_batch: int,
        max_seq_len: int,
    ) -> None:
        self.session = session
        self.config = config
        self.kv_dtype = kv_dtype
        self.max_batch = max_batch
        self.max_seq_len = max_seq_len
        self._past = past_input_names(config)
        self._present = present_output_names(config)
        # Graphs built before positions were derived from seqlens_k take them as an input.
        self._position_input = "position_ids" in {i.name for i in session.get_inputs()}
        kv, d = config.num_key_value_heads, config.head_dim
        shape = (max_batch, kv, max_seq_len, d)
        self._row_elems = kv * max_seq_len * d
        self._itemsize = np.dtype(kv_dtype).itemsize
        self.device = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        """Where the slot buffers live (``cpu`` or ``cuda``)."""
        self._host: list[np.ndarray] = []
        self._device: list[ort.OrtValue] = []
        if self.device == "cpu":
            # np.full writes every page now; np.zeros would map them lazily, and the first prefill or
            # cached-block copy into a fresh row would then pay the page faults on a fan's time to
            # first token (a 1,024-token prefix copy measured 115-437 ms instead of 13 ms, a
            # 256-token prefill ~10% slower). Serving engines reserve their KV memory up front too.
            self._host = [np.full(shape, 0, dtype=kv_dtype) for _ in self._past]
            self._ptrs = [int(a.ctypes.data) for a in self._host]
        else:
            self._device = [
                ort.OrtValue.ortvalue_from_shape_and_type(shape, kv_dtype, "cuda", 0) for _ in self._past
            ]
            self._ptrs = [int(v.data_ptr()) for v in self._device]
        self.bytes = len(self._past) * max_batch * self._row_elems * self._itemsize
        """Memory held by the slot buffers."""

    def run(
        self,
        first_row: int,
        input_ids: np.ndarray,
        seqlens_k: Sequence[int] | np.ndarray,
    ) -> np.ndarray:
        """One model call over rows ``first_row .. first_row + len(input_ids) - 1``.

        Args:
            first_row: first slot of the contiguous range.
            input_ids: [n, S] new tokens per row (S > 1 only for a single row).
            seqlens_k: per row, tokens in the cache after this call minus one; the new tokens are
                written at, and rotated by, positions ``seqlens_k - S + 1 .. seqlens_k``.

        Returns:
            [n, vocab] float32 logits of each row's last new token.
        """
        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        n, s = ids.shape
        seqlens = np.asarray(seqlens_k, dtype=np.int32)
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", ids)
        if self._position_input:
            positions = seqlens.astype(np.int64)[:, None] + np.arange(1 - s, 1, dtype=np.int64)[None, :]
            binding.bind_cpu_input("position_ids", positions)
        binding.bind_cpu_input("seqlens_k", seqlens)
        binding.bind_cpu_input("total_sequence_length", np.array(int(seqlens.max()) + 1, dtype=np.int32))
        # Logits are bound first: IOBinding returns outputs in binding order.
        binding.bind_output("logits", "cpu")
        shape = [n, self.config.num_key_value_heads, self.max_seq_len, self.config.head_dim]
        offset = first_row * self._row_elems * self._itemsize
        for past, present, ptr in zip(self._past, self._present, self._ptrs, strict=True):
            binding.bind_input(past, self.device, 0, self.kv_dtype, shape, ptr + offset)
            binding.bind_output(present, self.device, 0, self.kv_dtype, shape, ptr + offset)
        self.session.run_with_iobinding(binding)
        logits: np.ndarray = binding.get_outputs()[0].numpy()
        return logits.reshape(n, -1)

    def load_blocks(self, slot: int, pool: BlockPool, block_ids: Sequence[int]) -> None:
        """Copy cached blocks into ``slot``, at positions ``0 .. len(block_ids) * block_size``."""
        if not block_ids:
            return
        bs = pool.block_size
        ids = np.asarray(block_ids, dtype=np.int64)
        kv, d, n = self.config.num_key_value_heads, self.config.head_dim, len(block_ids)
        if self.device == "cpu":
            # One layer tensor at a time: its gathered blocks (~1/60 of the prefix) stay in cache on the
            # way into the row, where gathering every layer first made two extra passes through memory
            # (a 1,024-token prefix of the bench model is 47 MB: 31 -> 13 ms). The destination is a
            # [kv, n, bs, D] view of the row (the seq axis splits without a copy), so the copy is
            # numpy's strided copyto rather than the slow path of assigning a transposed reshape.
            for row, layer in zip(self._host, pool.data, strict=True):
                dst = row[slot, :, : n * bs].reshape(kv, n, bs, d)
                assert np.may_share_memory(dst, row)
                np.copyto(dst, layer[ids].transpose(1, 0, 2, 3))
            return
        # [L2, n, kv, bs, D] -> [L2, kv, n * bs, D]: one gather, then one copy per layer tensor and head.
        blocks = pool.data[:, ids].transpose(0, 2, 1, 3, 4).reshape(pool.data.shape[0], kv, n * bs, d)
        self._write(slot, 0, blocks)

    def store_blocks(self, slot: int, pool: BlockPool, blocks: Sequence[tuple[int, int]]) -> None:
        """Copy ``slot``'s KV of sequence block ``index`` into pool block ``block_id``, for each pair."""
        if not blocks:
            return
        bs = pool.block_size
        if self.device == "cpu":  # per layer tensor, all blocks at once (was one np.stack per block)
            index = np.array([i for i, _ in blocks], dtype=np.int64)
            target = np.array([b for _, b in blocks], dtype=np.int64)
            kv, d, span = self.config.num_key_value_heads, self.config.head_dim, int(index.max()) + 1
            for row, layer in zip(self._host, pool.data, strict=True):
                layer[target] = (
                    row[slot, :, : span * bs].reshape(kv, span, bs, d)[:, index].transpose(1, 0, 2, 3)
                )
            return
        for index_, block_id in blocks:
            pool.data[:, block_id] = self._read(slot, index_ * bs, (index_ + 1) * bs)  # [L2, kv, bs, D]

    def read(self, slot: int, start: int, end: int) -> np.ndarray:
        """A copy of ``slot``'s KV for positions ``start .. end``: [2 * layers, n_kv, end - start, D]."""
        return self._read(slot, start, end)

    # -- copies -----------------------------------------------------------------------------------

    def _read(self, slot: int, start: int, end: int) -> np.ndarray:
        if self.device == "cpu":
            return np.stack([a[slot, :, start:end] for a in self._host])
        kv, d = self.config.num_key_value_heads, self.config.head_dim
        out = np.empty((len(self._ptrs), kv, end - start, d), dtype=self.kv_dtype)
        for i, ptr in enumerate(self._ptrs):
            for h in range(kv):
                src = ptr + ((slot * kv + h) * self.max_seq_len + start) * d * self._itemsize
                _cuda_memcpy(out[i, h].ctypes.data, src, out[i, h].nbytes, _D2H)
        return out

    def _write(self, slot: int, start: int, data: np.ndarray) -> None:
        end = start + data.shape[2]
        if self.device == "cpu":
            for a, src in zip(self._host, data, strict=True):
                a[slot, :, start:end] = src
            return
        kv, d = self.config.num_key_value_heads, self.config.head_dim
        host = np.ascontiguousarray(data, dtype=self.kv_dtype)
        for i, ptr in enumerate(self._ptrs):
            for h in range(kv):
                dst = ptr + ((slot * kv + h) * self.max_seq_len + start) * d * self._itemsize
                _cuda_memcpy(dst, host[i, h].ctypes.data, host[i, h].nbytes, _H2D)


_H2D, _D2H = 1, 2  # cudaMemcpyKind values
_cudart: Any = None


def _cuda_memcpy(dst: int, src: int, nbytes: int, kind: int) -> None:
    """``cudaMemcpy`` through ctypes (onnxruntime's Python API has no sub-buffer copy)."""
    global _cudart
    if _cudart is None:
        _cudart = _load_cudart()
    status = _cudart.cudaMemcpy(ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes), kind)
    if status != 0:
        raise RuntimeError(f"cudaMemcpy failed with CUDA error {status}")


def _load_cudart() -> Any:
    """The CUDA runtime onnxruntime's CUDA provider uses.

    With CUDA from pip (``nvidia-cuda-runtime``) the library is not on the loader's path and has no
    unversioned name, but the provider has loaded it by the time a session exists, and ``dlopen`` of
    its soname returns that copy; a system CUDA is found by ``find_library``.
    """
    names = [ctypes.util.find_library("cudart"), "libcudart.so", "libcudart.so.13", "libcudart.so.12"]
    errors = []
    for attempt in range(2):
        for name in dict.fromkeys(n for n in names if n):
            try:
                return ctypes.CDLL(name)
            except OSError as exc:
                errors.append(f"{name}: {exc}")
        if attempt == 0 and "CUDAExecutionProvider" in ort.get_available_providers():
            # No session yet: load the pip CUDA libraries the way onnxruntime itself would.
            with contextlib.suppress(Exception):
                ort.preload_dlls(cudnn=False, msvc=False)
        else:
            break
    raise RuntimeError("no CUDA runtime library could be loaded (" + "; ".join(errors) + ")")
