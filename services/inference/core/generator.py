"""Load a model directory into onnxruntime and generate with a plain KV-cached decode loop.

``DecoderModel.generate`` is the single-request path: prefill the prompt once, then feed one token
per step with the previous step's ``present.*`` outputs as ``past_key_values.*``. The continuous
batching engine builds on :meth:`DecoderModel.forward` and the same sampling/stop logic.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from services.inference.core.gqa_graph import ATTENTION_KIND as GQA_ATTENTION
from services.inference.core.llama_config import LlamaConfig
from services.inference.core.llama_graph import MODEL_FILE, past_input_names, present_output_names
from services.inference.core.runner import SlotRunner, prefer_gemm_attention
from services.inference.core.sampling import SamplingParams, make_rng, sample_next
from services.inference.core.tokenizer import ChatTokenizer, IncrementalDetokenizer

log = logging.getLogger(__name__)

FinishReason = Literal["stop", "length", "cancelled"]
"""Why generation ended: EOS/stop token/stop string, max_tokens or context full, or the caller gave up."""

CONFIG_FILE = "config.json"


class PromptTooLongError(ValueError):
    """The prompt leaves no room for a generated token within the model's context."""


@dataclass(frozen=True)
class GenerationEvent:
    """One step of a generation stream.

    Every generated token produces exactly one event; a cancellation produces a final event without
    a token. ``text`` is the newly released text, which may be empty (an incomplete UTF-8 character,
    a special token, or text held back because it might be the start of a stop string).
    """

    token_id: int | None
    """The sampled token, or ``None`` for a cancellation event."""
    text: str
    """Text released by this step."""
    finish_reason: FinishReason | None
    """Set on the last event only."""
    prompt_tokens: int
    """Tokens in the prompt."""
    generated_tokens: int
    """Tokens generated so far, this one included (EOS/stop tokens count)."""
    cached_tokens: int = 0
    """Prompt tokens whose KV came from the prefix cache instead of being computed."""
    admitted_at: float | None = None
    """``time.monotonic()`` when the engine gave the request a slot (end of its queue wait)."""


@dataclass(frozen=True)
class AvatarModelInfo:
    """The ``avatar`` block of ``config.json`` (see MODEL_FORMAT.md)."""

    random_weights: bool
    """The weights are random: replies are noise from a test model, not a trained model."""
    format_version: int
    """Model directory format version."""
    dtype: str
    """Graph precision, ``fp32`` or ``fp16``."""
    attention: str
    """Attention graph variant: ``standard`` (plain loop only) or ``group_query_attention`` (servable)."""

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> AvatarModelInfo:
        block = raw.get("avatar") or {}
        return cls(
            random_weights=bool(block.get("random_weights", False)),
            format_version=int(block.get("format_version", 1)),
            dtype=str(block.get("dtype", "fp32")),
            attention=str(block.get("attention", "standard")),
        )


def default_providers(
    info: AvatarModelInfo | None = None, available: Sequence[str] | None = None
) -> list[str]:
    """CUDA first when this onnxruntime build has it and the model can run there; CPU always.

    onnxruntime's CUDA GroupQueryAttention has fp16/bf16 kernels only. Offered CUDA, an fp32 serving
    graph would get its attention placed on the CPU and everything else on the GPU, with copies in
    between, so the in-place KV buffers the engine binds on the device would no longer be the ones
    the op writes: such a model runs on the CPU (build it with ``--dtype fp16`` to use the GPU).
    """
    available = ort.get_available_providers() if available is None else available
    cuda = "CUDAExecutionProvider" in available
    if cuda and info is not None and info.attention == GQA_ATTENTION and info.dtype == "fp32":
        log.warning("fp32 GroupQueryAttention graph: running on the CPU (CUDA needs an fp16 build)")
        cuda = False
    return [*(["CUDAExecutionProvider"] if cuda else []), "CPUExecutionProvider"]


class DecoderModel:
    """A Llama-family decoder loaded from a model directory (see MODEL_FORMAT.md).

    Args:
        model_dir: directory with ``model.onnx``, ``config.json`` and the tokenizer files.
        intra_op_num_threads: onnxruntime intra-op threads (``None``: onnxruntime's default, one per
            physical core).
        providers: execution providers in priority order (default: :func:`default_providers`).

    Raises:
        FileNotFoundError: a required file is missing.
        ValueError: ``config.json`` describes an unsupported model.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        intra_op_num_threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        raw = json.loads((self.model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        self.config = LlamaConfig.from_hf_dict(raw)
        """Architecture of the loaded model."""
        self.info = AvatarModelInfo.from_config(raw)
        """Provenance of the model directory (random weights or converted checkpoint)."""
        self.tokenizer = ChatTokenizer.from_dir(self.model_dir)
        """The model's tokenizer and chat template."""
        options = ort.SessionOptions()
        if intra_op_num_threads is not None:
            options.intra_op_num_threads = intra_op_num_threads
        if self.info.attention == GQA_ATTENTION:
            prefer_gemm_attention()
        self.session = ort.InferenceSession(
            str(self.model_dir / MODEL_FILE),
            sess_options=options,
            providers=list(providers) if providers is not None else default_providers(self.info),
        )
        """The onnxruntime session."""
        self._past_names = past_input_names(self.config)
        self._present_names = present_output_names(self.config)
        past_type = {i.name: i.type for i in self.session.get_inputs()}[self._past_names[0]]
        self.kv_dtype: type[np.floating[Any]] = np.float16 if past_type == "tensor(float16)" else np.float32
        """numpy dtype of the KV cache tensors."""
        self.supports_batching = self.info.attention == GQA_ATTENTION
        """The graph is the GroupQueryAttention serving graph (the engine needs it)."""
        # EOS ids from config.json and from the tokenizer files (Llama 3 instruct lists several).
        self.eos_token_ids: tuple[int, ...] = tuple(
            dict.fromkeys((*self.config.eos_token_ids, *self.tokenizer.eos_token_ids))
        )
        """Token ids that always end generation."""

    def empty_past(self, batch_size: int) -> list[np.ndarray]:
        """A zero-length KV cache for ``batch_size`` rows (key and value per layer)."""
        shape = (batch_size, self.config.num_key_value_heads, 0, self.config.head_dim)
        return [np.zeros(shape, dtype=self.kv_dtype) for _ in self._past_names]

    def forward(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        position_ids: np.ndarray,
        past: Sequence[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run the graph once.

        Args:
            input_ids: [B, S] int64 new tokens.
            attention_mask: [B, P+S] int64 over past and new tokens (0 = padding).
            position_ids: [B, S] int64 positions of the new tokens.
            past: key/value per layer ([B, n_kv, P, D] each), as returned by a previous call;
                ``None`` for an empty cache.

        Returns:
            ``(logits [B, S, V] float32, present)`` where ``present`` is the updated cache.

        Raises:
            ValueError: the model has the GroupQueryAttention graph, whose I/O differs (use
                :class:`~services.inference.core.runner.SlotRunner`).
        """
        if self.supports_batching:
            raise ValueError("forward() needs the standard graph; this model has group_query_attention")
        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        if past is None:
            past = self.empty_past(ids.shape[0])
        feeds: dict[str, np.ndarray] = {
            "input_ids": ids,
            "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64),
            "position_ids": np.ascontiguousarray(position_ids, dtype=np.int64),
        }
        feeds.update(zip(self._past_names, past, strict=True))
        outputs = self.session.run(["logits", *self._present_names], feeds)
        return outputs[0], list(outputs[1:])

    def generate(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        cancelled: Callable[[], bool] | None = None,
    ) -> Iterator[GenerationEvent]:
        """Generate a reply to ``prompt_ids``, one event per token.

        Finishes with ``stop`` on an EOS id, one of ``params.stop_token_ids`` or a stop string (whose
        text is not emitted), ``length`` on ``params.max_tokens`` or a full context, and
        ``cancelled`` when ``cancelled()`` returns True (checked before every model step).

        Raises:
            ValueError: empty prompt or an id outside the vocabulary.
            PromptTooLongError: the prompt fills the context.
        """
        prompt = [int(t) for t in prompt_ids]
        if not prompt:
            raise ValueError("prompt_ids must not be empty")
        if min(prompt) < 0 or max(prompt) >= self.config.vocab_size:
            raise ValueError(f"prompt token ids must be in [0, {self.config.vocab_size})")
        max_context = self.config.max_context
        if len(prompt) >= max_context:
            raise PromptTooLongError(
                f"prompt has {len(prompt)} tokens; the model's context is {max_context} tokens"
            )
        stop_ids = set(self.eos_token_ids) | set(params.stop_token_ids)
        rng = make_rng(params)
        detok = IncrementalDetokenizer(self.tokenizer, prompt)
        stops = StopStringMatcher(params.stop)
        history = list(prompt)
        n_prompt, generated = len(prompt), 0

        def event(token: int | None, text: str, reason: FinishReason | None) -> GenerationEvent:
            return GenerationEvent(token, text, reason, n_prompt, generated)

        step_fn = (
            self._gqa_stepper(len(prompt) + params.max_tokens) if self.supports_batching else self._stepper()
        )
        next_input = prompt
        while True:
            if cancelled is not None and cancelled():
                yield event(None, stops.release(detok.flush(), final=True), "cancelled")
                return
            token = sample_next(step_fn(next_input, len(history)), history, params, rng)
            history.append(token)
            generated += 1
            next_input = [token]

            if token in stop_ids:
                yield event(token, stops.release(detok.flush(), final=True), "stop")
                return
            text = stops.release(detok.add(token), final=False)
            if stops.matched:
                yield event(token, text, "stop")
                return
            if generated >= params.max_tokens or len(history) >= max_context:
                text += stops.release(detok.flush(), final=True)
                # The flushed tail can still complete a stop string; that outranks the length limit.
                yield event(token, text, "stop" if stops.matched else "length")
                return
            yield event(token, text, None)

    def _stepper(self) -> Callable[[list[int], int], np.ndarray]:
        """Plain loop on the standard graph: feed ``present.*`` back as ``past_key_values.*``."""
        past: list[np.ndarray] | None = None

        def step(new: list[int], total: int) -> np.ndarray:
            nonlocal past
            n = len(new)
            logits, past = self.forward(
                np.array([new], dtype=np.int64),
                np.ones((1, total), dtype=np.int64),
                np.arange(total - n, total, dtype=np.int64)[None, :],
                past,
            )
            last: np.ndarray = logits[0, -1]
            return last

        return step

    def _gqa_stepper(self, max_len: int) -> Callable[[list[int], int], np.ndarray]:
        """Plain loop on the GroupQueryAttention graph: one KV slot, written in place."""
        runner = SlotRunner(
            self.session, self.config, self.kv_dtype, 1, min(max_len, self.config.max_context)
        )

        def step(new: list[int], total: int) -> np.ndarray:
            logits = runner.run(0, np.array([new], dtype=np.int64), [total - 1])
            row: np.ndarray = logits[0]
            return row

        return step


class StopStringMatcher:
    """Release detokenized text while holding back anything that could start a stop string.

    Only the longest tail that is a prefix of some stop string is held, so text streams with no
    delay unless it really might be the start of a stop string.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._pending = ""
        self.matched = False

    def release(self, delta: str, *, final: bool) -> str:
        """Add ``delta``; return the text that is now safe to emit (all of it when ``final``)."""
        if self.matched:
            return ""
        text = self._pending + delta
        if not self._stops:
            self._pending = ""
            return text
        hits = [i for i in (text.find(s) for s in self._stops) if i >= 0]
        if hits:
            self.matched = True
            self._pending = ""
            return text[: min(hits)]
        if final:
            self._pending = ""
            return text
        hold = 0
        for k in range(min(len(text), max(len(s) for s in self._stops) - 1), 0, -1):
            tail = text[-k:]
            if any(s.startswith(tail) for s in self._stops):
                hold = k
                break
        self._pending = text[len(text) - hold :]
        return text[: len(text) - hold]
