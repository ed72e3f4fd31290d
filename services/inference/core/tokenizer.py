"""Tokenizer, chat template and streaming detokenizer of a model directory.

``ChatTokenizer`` wraps a ``tokenizers.Tokenizer`` (``tokenizer.json``) plus the bits of
``tokenizer_config.json`` / ``generation_config.json`` an inference server needs: special tokens and
the Jinja chat template, rendered with Hugging Face's semantics (sandboxed environment, ``trim_blocks``
and ``lstrip_blocks``, ``raise_exception``, ``messages``/``bos_token``/``eos_token``/
``add_generation_prompt``). No ``transformers`` dependency.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
GENERATION_CONFIG_FILE = "generation_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"


class ChatTemplateError(ValueError):
    """The chat template is missing, invalid, or rejected the messages (``raise_exception``)."""


class ChatTokenizer:
    """Encode, decode and chat-format text for one model.

    Args:
        tokenizer: the fast tokenizer.
        tokenizer_config: parsed ``tokenizer_config.json`` (may be empty).
        generation_config: parsed ``generation_config.json`` (may be empty).
        chat_template: overrides the template found in ``tokenizer_config``.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        tokenizer_config: Mapping[str, Any] | None = None,
        generation_config: Mapping[str, Any] | None = None,
        chat_template: str | None = None,
    ) -> None:
        self._tok = tokenizer
        self._config = dict(tokenizer_config or {})
        self._generation = dict(generation_config or {})
        self._template_source = chat_template if chat_template is not None else _template_from(self._config)
        self.bos_token = _token_text(self._config.get("bos_token"))
        """Text of the BOS token (``None`` if the model has none)."""
        self.eos_token = _token_text(self._config.get("eos_token"))
        """Text of the EOS token named in ``tokenizer_config.json``."""

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> ChatTokenizer:
        """Load ``tokenizer.json`` and, when present, ``tokenizer_config.json``,
        ``generation_config.json`` and ``chat_template.jinja`` from a model directory.

        Raises:
            FileNotFoundError: if ``tokenizer.json`` is missing.
        """
        root = Path(model_dir)
        tok = Tokenizer.from_file(str(root / TOKENIZER_FILE))
        config = _read_json(root / TOKENIZER_CONFIG_FILE)
        generation = _read_json(root / GENERATION_CONFIG_FILE)
        template = None
        if (root / CHAT_TEMPLATE_FILE).is_file():
            template = (root / CHAT_TEMPLATE_FILE).read_text(encoding="utf-8")
        return cls(tok, config, generation, template)

    @property
    def tokenizer(self) -> Tokenizer:
        """The wrapped ``tokenizers.Tokenizer``."""
        return self._tok

    @property
    def vocab_size(self) -> int:
        """Number of ids, added (special) tokens included."""
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    @property
    def bos_token_id(self) -> int | None:
        """Id of the BOS token, or ``None``."""
        return None if self.bos_token is None else self._tok.token_to_id(self.bos_token)

    @cached_property
    def eos_token_ids(self) -> tuple[int, ...]:
        """Ids that end a reply: ``generation_config.json``'s ``eos_token_id`` (int or list) plus the
        ``eos_token`` of ``tokenizer_config.json``, in that order, without duplicates."""
        ids: list[int] = []
        raw = self._generation.get("eos_token_id")
        if isinstance(raw, int):
            ids.append(raw)
        elif isinstance(raw, list):
            ids.extend(int(t) for t in raw)
        if self.eos_token is not None:
            eos = self._tok.token_to_id(self.eos_token)
            if eos is not None:
                ids.append(int(eos))
        return tuple(dict.fromkeys(ids))

    @property
    def has_chat_template(self) -> bool:
        """Whether :meth:`apply_chat_template` can work."""
        return self._template_source is not None

    def token_to_id(self, token: str) -> int | None:
        """Id of a token string (e.g. a special token), or ``None`` if unknown."""
        tid = self._tok.token_to_id(token)
        return None if tid is None else int(tid)

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``.

        ``add_special_tokens`` defaults to False (unlike HF) because prompts normally come from the
        chat template, which already spells out BOS; adding it again would double it.
        """
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        """Text of ``ids`` (invalid UTF-8 from a cut byte sequence becomes U+FFFD)."""
        return str(self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def apply_chat_template(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """Render a conversation with the model's chat template.

        Args:
            messages: ``[{"role": ..., "content": ...}, ...]``.
            add_generation_prompt: append the header that opens the assistant's turn.

        Returns:
            The prompt text, special tokens spelled out (encode it with ``add_special_tokens=False``).

        Raises:
            ChatTemplateError: no template, a template syntax error, or the template called
                ``raise_exception`` (e.g. for an unsupported role).
        """
        template = self._template
        try:
            return template.render(
                messages=[dict(m) for m in messages],
                bos_token=self.bos_token or "",
                eos_token=self.eos_token or "",
                add_generation_prompt=add_generation_prompt,
            )
        except jinja2.TemplateError as exc:
            raise ChatTemplateError(str(exc)) from exc

    def encode_chat(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True
    ) -> list[int]:
        """Token ids of the rendered conversation (see :meth:`apply_chat_template`)."""
        return self.encode(
            self.apply_chat_template(messages, add_generation_prompt), add_special_tokens=False
        )

    @cached_property
    def _template(self) -> jinja2.Template:
        if self._template_source is None:
            raise ChatTemplateError("this model has no chat_template")
        # The same environment HF transformers builds: sandboxed (templates ship with downloaded
        # models), trim/lstrip blocks (templates are written assuming them), loop controls.
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            return env.from_string(self._template_source)
        except jinja2.TemplateError as exc:
            raise ChatTemplateError(f"invalid chat_template: {exc}") from exc


class IncrementalDetokenizer:
    """Turn a stream of token ids into text deltas that never split a UTF-8 character.

    Byte-level BPE emits multi-byte characters (emoji, accents) across several tokens; decoding one
    token at a time would emit U+FFFD halves. Following vLLM/TGI, each step decodes a short window
    of recent ids twice (with and without the new ones) and releases the difference only once it no
    longer ends in U+FFFD. The window starts a few tokens back so tokenizers that drop a leading
    space when decoding a sequence start (SentencePiece/Metaspace) still get spaces right.

    Args:
        tokenizer: the model's tokenizer.
        context_ids: ids preceding the stream (e.g. the prompt); only the last few are used, as
            context, and never emitted.
        skip_special_tokens: leave special tokens (``<|eot_id|>``...) out of the text.
    """

    _CONTEXT = 5

    def __init__(
        self,
        tokenizer: ChatTokenizer,
        context_ids: Sequence[int] = (),
        *,
        skip_special_tokens: bool = True,
    ) -> None:
        self._tok = tokenizer
        self._skip = skip_special_tokens
        self._ids: list[int] = list(context_ids[-self._CONTEXT :]) if context_ids else []
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        self._text: list[str] = []

    @property
    def text(self) -> str:
        """All text emitted so far."""
        return "".join(self._text)

    def add(self, token_id: int) -> str:
        """Append one token; return the newly complete text (possibly empty)."""
        self._ids.append(int(token_id))
        prefix = self._tok.decode(
            self._ids[self._prefix_offset : self._read_offset], skip_special_tokens=self._skip
        )
        full = self._tok.decode(self._ids[self._prefix_offset :], skip_special_tokens=self._skip)
        if len(full) <= len(prefix) or full.endswith("\ufffd"):
            return ""
        delta = full[len(prefix) :]
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        self._text.append(delta)
        return delta

    def extend(self, token_ids: Iterable[int]) -> str:
        """Append several tokens; return the newly complete text."""
        return "".join(self.add(t) for t in token_ids)

    def flush(self) -> str:
        """Release whatever is still held back (an incomplete character decodes as U+FFFD)."""
        prefix = self._tok.decode(
            self._ids[self._prefix_offset : self._read_offset], skip_special_tokens=self._skip
        )
        full = self._tok.decode(self._ids[self._prefix_offset :], skip_special_tokens=self._skip)
        self._prefix_offset = self._read_offset = len(self._ids)
        delta = full[len(prefix) :] if len(full) > len(prefix) else ""
        if delta:
            self._text.append(delta)
        return delta


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _token_text(raw: Any) -> str | None:
    # tokenizer_config.json spells special tokens either as strings or as AddedToken dicts.
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict) and isinstance(raw.get("content"), str):
        return str(raw["content"])
    return None


def _template_from(config: Mapping[str, Any]) -> str | None:
    raw = config.get("chat_template")
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        # Older multi-template form: [{"name": "default", "template": ...}, {"name": "tool_use", ...}].
        named = {str(t.get("name")): str(t.get("template")) for t in raw if isinstance(t, dict)}
        return named.get("default")
    return None


def _raise_exception(message: str) -> NoReturn:
    raise jinja2.TemplateError(message)


def _tojson(value: Any, indent: int | None = None) -> str:
    # HF's tojson keeps non-ASCII text readable instead of \u-escaping it (jinja's default filter).
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)
