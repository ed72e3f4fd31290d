"""ChatTokenizer (special tokens, chat template) and the streaming IncrementalDetokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from services.inference.core.model_build import CORPUS_PATH, SPECIAL_TOKENS, build_tiny, train_tokenizer
from services.inference.core.tokenizer import ChatTemplateError, ChatTokenizer, IncrementalDetokenizer

pytestmark = pytest.mark.timeout(60)

UNICODE_SAMPLES = [
    "Crème brûlée, jalapeño and smørrebrød!",
    "Let's bake 🍞🥐 and run 🏃‍♀️ today 💪🏽",
    "東京で旅行 — Ελλάδα, Україна, عربى",
    "naïve café résumé \u00e9 vs e\u0301",
    "tabs\tand\nnewlines  double  spaces",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tok(model_dir: Path) -> ChatTokenizer:
    return ChatTokenizer.from_dir(model_dir)


def test_special_tokens_and_ids(tok: ChatTokenizer) -> None:
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert tok.bos_token == "<|begin_of_text|>" and tok.bos_token_id == 0
    assert tok.eos_token == "<|eot_id|>"
    assert tok.eos_token_ids == (1, 4)  # generation_config first, then tokenizer_config's eos_token
    assert tok.vocab_size == 768


def test_encode_decode_round_trip(tok: ChatTokenizer) -> None:
    for text in UNICODE_SAMPLES:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
    assert tok.encode("bread", add_special_tokens=True)[0] == 0
    assert tok.encode("bread")[0] != 0
    # Frequent corpus words become single tokens, which is what makes the tokenizer BPE at all.
    assert len(tok.encode(" bread")) == 1


def test_tokenizer_training_is_deterministic() -> None:
    corpus = CORPUS_PATH.read_text(encoding="utf-8")
    assert 4000 < len(corpus.encode()) < 20000
    assert train_tokenizer(corpus).to_str() == train_tokenizer(corpus).to_str()


def test_chat_template_renders_llama3_style(tok: ChatTokenizer) -> None:
    messages = [
        {"role": "system", "content": "You are Chef Ana's AI avatar."},
        {"role": "user", "content": "  How long do I proof sourdough?  "},
    ]
    assert tok.apply_chat_template(messages) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "You are Chef Ana's AI avatar.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHow long do I proof sourdough?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    no_prompt = tok.apply_chat_template(messages, add_generation_prompt=False)
    assert no_prompt.endswith("sourdough?<|eot_id|>")
    ids = tok.encode_chat(messages)
    assert ids[:2] == [0, 2]  # BOS, <|start_header_id|>
    assert tok.decode(ids, skip_special_tokens=False) == tok.apply_chat_template(messages)
    assert tok.decode(ids) == (
        "system\n\nYou are Chef Ana's AI avatar.user\n\nHow long do I proof sourdough?assistant\n\n"
    )
    assert ids.count(0) == 1  # BOS exactly once: the template writes it, encode must not add another


def test_chat_template_errors(tok: ChatTokenizer, tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(ChatTemplateError, match="Unsupported role: tool"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}])
    bare = ChatTokenizer(tok.tokenizer, {"bos_token": "<|begin_of_text|>"})
    assert not bare.has_chat_template
    with pytest.raises(ChatTemplateError, match="no chat_template"):
        bare.apply_chat_template([{"role": "user", "content": "hi"}])
    broken = ChatTokenizer(tok.tokenizer, {}, chat_template="{% for m in messages %}")
    with pytest.raises(ChatTemplateError, match="invalid chat_template"):
        broken.apply_chat_template([])


def test_chat_template_hf_conventions(tok: ChatTokenizer, model_dir: Path, tmp_path: Path) -> None:
    # tojson keeps non-ASCII readable, AddedToken dicts are understood, chat_template.jinja wins.
    for name in ("tokenizer.json", "generation_config.json"):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "bos_token": {"content": "<|begin_of_text|>", "special": True},
                "eos_token": {"content": "<|end_of_text|>", "special": True},
                "chat_template": [{"name": "default", "template": "ignored"}],
            }
        )
    )
    (tmp_path / "chat_template.jinja").write_text(
        "{% for m in messages %}{{ m | tojson }}\n{% endfor %}{{ eos_token }}"
    )
    loaded = ChatTokenizer.from_dir(tmp_path)
    assert loaded.bos_token_id == 0
    assert loaded.eos_token_ids == (1, 4)
    rendered = loaded.apply_chat_template([{"role": "user", "content": "crème 🍞"}])
    assert rendered == '{"role": "user", "content": "crème 🍞"}\n<|end_of_text|>'


def stream(tok: ChatTokenizer, ids: list[int], context: list[int] | None = None) -> list[str]:
    detok = IncrementalDetokenizer(tok, context or [])
    deltas = [detok.add(t) for t in ids]
    deltas.append(detok.flush())
    return deltas


@pytest.mark.parametrize("text", UNICODE_SAMPLES)
def test_incremental_detokenizer_round_trips_unicode(tok: ChatTokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert len(ids) > len(text.split())  # multi-byte characters really are split over tokens
    deltas = stream(tok, ids)
    assert "".join(deltas) == text
    assert not any("\ufffd" in d for d in deltas)


def test_incremental_detokenizer_holds_partial_characters(tok: ChatTokenizer) -> None:
    ids = tok.encode("🍞")
    assert len(ids) == 4  # one byte token per UTF-8 byte: nothing can be released before the last
    detok = IncrementalDetokenizer(tok)
    assert [detok.add(t) for t in ids] == ["", "", "", "🍞"]
    assert detok.text == "🍞"
    # A stream cut mid-character releases the bytes it has as U+FFFD on flush, not before.
    cut = IncrementalDetokenizer(tok)
    assert [cut.add(t) for t in ids[:2]] == ["", ""]
    assert cut.flush() == "\ufffd"


def test_incremental_detokenizer_skips_special_tokens_and_uses_context(tok: ChatTokenizer) -> None:
    prompt = tok.encode_chat([{"role": "user", "content": "hi"}])
    reply = [*tok.encode("Hello fans!"), 4]
    deltas = stream(tok, reply, context=prompt)
    assert "".join(deltas) == "Hello fans!"
    assert deltas[-2:] == ["", ""]  # <|eot_id|> adds no text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40))
def test_incremental_detokenizer_property(tok: ChatTokenizer, text: str) -> None:
    # Text spelling a special token encodes to that control token (tokenizers' added-token rule),
    # which decode then skips; that is the prompt-injection hazard, not a detokenizer property.
    assume(not any(t in text for t in SPECIAL_TOKENS))
    ids = tok.encode(text)
    deltas = stream(tok, ids)
    assert "".join(deltas) == tok.decode(ids) == text
    if "\ufffd" not in text:
        assert not any("\ufffd" in d for d in deltas)


def test_tokenizer_json_is_plain_tokenizers_file(model_dir: Path) -> None:
    raw = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    assert raw.get_vocab_size() == 768
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    assert config["added_tokens_decoder"]["4"]["content"] == "<|eot_id|>"
