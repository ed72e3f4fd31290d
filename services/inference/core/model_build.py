"""Produce model directories the engine loads (format: services/inference/MODEL_FORMAT.md).

Two sources:

* :func:`build_tiny` — a tiny random-weight Llama with a byte-level BPE tokenizer trained here on
  ``services/inference/assets/tokenizer_corpus.txt``. Deterministic given the seed, built in well
  under a second, so every test suite can make its own. Its ``config.json`` says
  ``"random_weights": true`` so the product can state plainly that replies are noise.
* :func:`build_from_hf` — convert a local Hugging Face checkpoint directory (``config.json`` +
  ``*.safetensors``, sharded or not) of a Llama, Qwen2 or Mistral model.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from services.inference.core.gqa_graph import ATTENTION_KIND as GQA_ATTENTION
from services.inference.core.gqa_graph import build_gqa_graph
from services.inference.core.llama_config import LlamaConfig, weight_shapes
from services.inference.core.llama_graph import AttentionKind, Dtype, build_llama_graph, save_model

FORMAT_VERSION = 1
"""Version of the model directory format written here."""
CORPUS_PATH = Path(__file__).resolve().parent.parent / "assets" / "tokenizer_corpus.txt"
"""Text the tiny model's tokenizer is trained on."""

BEGIN_OF_TEXT = "<|begin_of_text|>"
END_OF_TEXT = "<|end_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
END_OF_TURN = "<|eot_id|>"
SPECIAL_TOKENS = (BEGIN_OF_TEXT, END_OF_TEXT, START_HEADER, END_HEADER, END_OF_TURN)
"""Special tokens of the tiny tokenizer; they get ids 0..4 in this order."""

CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{- raise_exception('Unsupported role: ' + message['role']) }}"
    "{%- endif %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)
"""Llama-3-style chat template of the tiny model."""

TINY_VOCAB_TARGET = 768
"""Vocabulary size asked of the BPE trainer (the corpus may support slightly fewer)."""

_HF_SIDE_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


def train_tokenizer(corpus: str, vocab_size: int = TINY_VOCAB_TARGET) -> Tokenizer:
    """Train a GPT-2/Llama-3-style byte-level BPE tokenizer on ``corpus``.

    Byte-level means any UTF-8 text (emoji, accents) round-trips even though the corpus is English:
    all 256 bytes are in the initial alphabet. Encoding with special tokens prepends BOS, as Llama 3's
    tokenizer does.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(corpus.splitlines(keepends=True), trainer=trainer)
    bos_id = tok.token_to_id(BEGIN_OF_TEXT)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BEGIN_OF_TEXT} $A",
        pair=f"{BEGIN_OF_TEXT} $A {BEGIN_OF_TEXT} $B",
        special_tokens=[(BEGIN_OF_TEXT, bos_id)],
    )
    return tok


def tiny_config(
    vocab_size: int, *, bos_token_id: int = 0, eos_token_ids: tuple[int, ...] = (1, 4)
) -> LlamaConfig:
    """The tiny test architecture: 2 layers, hidden 64, 4 query / 2 KV heads (GQA), SwiGLU 128."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=bos_token_id,
        eos_token_ids=eos_token_ids,
        architecture="LlamaForCausalLM",
    )


def random_weights(config: LlamaConfig, seed: int) -> dict[str, np.ndarray]:
    """Deterministic random float32 weights for ``config``, by HF name.

    Scales keep activations O(1) through the layers and give logits a spread of a few units, so
    greedy decoding is not decided by rounding noise (ties between near-equal logits would make
    graph-vs-reference comparisons flaky).
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in weight_shapes(config).items():
        if name.endswith("norm.weight"):
            arr = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            arr = 0.1 * rng.standard_normal(shape)
        elif name == "model.embed_tokens.weight":
            arr = rng.standard_normal(shape)
        elif name == "lm_head.weight":
            arr = 2.0 / np.sqrt(shape[1]) * rng.standard_normal(shape)
        else:
            arr = rng.standard_normal(shape) / np.sqrt(shape[1])
        out[name] = arr.astype(np.float32)
    return out


def build_tiny(
    out_dir: str | Path, *, seed: int = 0, dtype: Dtype = "fp32", attention: AttentionKind = "standard"
) -> Path:
    """Build the tiny random-weight model directory.

    Args:
        out_dir: target directory (created; existing model files are overwritten).
        seed: weight seed; same seed, same bytes.
        dtype: graph precision.
        attention: ``standard`` (the plain-loop graph) or ``group_query_attention`` (the serving
            graph the engine needs; :mod:`gqa_graph`).

    Returns:
        ``out_dir`` as a ``Path``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(CORPUS_PATH.read_text(encoding="utf-8"))
    ids: dict[str, int] = {}
    for t in SPECIAL_TOKENS:
        tid = tok.token_to_id(t)
        assert tid is not None, "the trainer always adds its special tokens"
        ids[t] = int(tid)
    eos_ids = (ids[END_OF_TEXT], ids[END_OF_TURN])
    config = tiny_config(
        tok.get_vocab_size(with_added_tokens=True), bos_token_id=ids[BEGIN_OF_TEXT], eos_token_ids=eos_ids
    )
    weights = random_weights(config, seed)
    save_model(_graph(config, weights, dtype, attention), out)
    _write_config(out, config, random=True, dtype=dtype, attention=attention, extra={"seed": seed})

    tok.save(str(out / "tokenizer.json"))
    _write_json(
        out / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": BEGIN_OF_TEXT,
            "eos_token": END_OF_TURN,
            "clean_up_tokenization_spaces": False,
            "model_max_length": config.max_position_embeddings,
            "chat_template": CHAT_TEMPLATE,
            "added_tokens_decoder": {
                str(tid): {
                    "content": t,
                    "special": True,
                    "lstrip": False,
                    "rstrip": False,
                    "normalized": False,
                    "single_word": False,
                }
                for t, tid in ids.items()
            },
        },
    )
    _write_json(
        out / "generation_config.json", {"bos_token_id": ids[BEGIN_OF_TEXT], "eos_token_id": list(eos_ids)}
    )
    return out


def build_from_hf(
    src_dir: str | Path,
    out_dir: str | Path,
    *,
    dtype: Dtype = "fp32",
    attention: AttentionKind = "standard",
) -> Path:
    """Convert a local Hugging Face Llama/Qwen2/Mistral checkpoint into a model directory.

    Args:
        src_dir: directory with ``config.json``, ``*.safetensors`` (or a sharded
            ``model.safetensors.index.json``) and ``tokenizer.json``.
        out_dir: target directory.
        dtype: graph precision; weights are converted from whatever the checkpoint stores
            (fp32/fp16/bf16).
        attention: graph variant: ``group_query_attention`` is what the engine serves (the CLI's
            default); ``standard`` (this function's default) is the plain-loop reference graph.

    Returns:
        ``out_dir`` as a ``Path``.

    Raises:
        FileNotFoundError: no config, no safetensors or no ``tokenizer.json`` in ``src_dir``.
        ValueError: unsupported architecture, or missing / mis-shaped tensors.
    """
    src, out = Path(src_dir), Path(out_dir)
    config_path = src / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found")
    if not (src / "tokenizer.json").is_file():
        # Converting a SentencePiece tokenizer.model needs transformers; require the fast tokenizer.
        raise FileNotFoundError(f"{src / 'tokenizer.json'} not found (only fast tokenizers are supported)")
    config = LlamaConfig.from_hf_dict(json.loads(config_path.read_text(encoding="utf-8")))
    needed = set(weight_shapes(config))
    weights = load_safetensors_weights(src, needed)
    out.mkdir(parents=True, exist_ok=True)
    save_model(_graph(config, weights, dtype, attention), out)
    del weights
    _write_config(
        out, config, random=False, dtype=dtype, attention=attention, extra={"source": src.resolve().name}
    )
    for name in _HF_SIDE_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    return out


def load_safetensors_weights(
    src_dir: str | Path, names: Iterable[str] | None = None
) -> dict[str, np.ndarray]:
    """Read tensors from a checkpoint directory's safetensors files as numpy arrays.

    Args:
        src_dir: directory with ``model.safetensors.index.json`` (sharded) or ``*.safetensors``.
        names: tensors to load (default: all). Names not present are simply absent from the result;
            the graph builder reports what is missing.

    Returns:
        Tensors by name. BF16 tensors, which numpy cannot represent, are widened to float32.

    Raises:
        FileNotFoundError: no safetensors files.
    """
    src = Path(src_dir)
    index = src / "model.safetensors.index.json"
    if index.is_file():
        weight_map: dict[str, str] = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        files = sorted({src / f for f in weight_map.values()})
    else:
        files = sorted(src.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {src}")
    wanted = None if names is None else set(names)
    out: dict[str, np.ndarray] = {}
    for path in files:
        header = _safetensors_header(path)
        with safe_open(str(path), framework="np") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open handles are not iterable
                if wanted is not None and name not in wanted:
                    continue
                if header[name]["dtype"] == "BF16":
                    out[name] = _read_bf16(path, header, name)
                else:
                    out[name] = f.get_tensor(name)
    return out


def _safetensors_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header: dict[str, Any] = json.loads(fh.read(length))
    header["__data_start__"] = 8 + length
    return header


def _read_bf16(path: Path, header: Mapping[str, Any], name: str) -> np.ndarray:
    # bfloat16 is the top half of a float32: shift the 16 stored bits up and reinterpret.
    entry = header[name]
    begin, end = entry["data_offsets"]
    raw = np.fromfile(path, dtype="<u2", count=(end - begin) // 2, offset=header["__data_start__"] + begin)
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def _graph(
    config: LlamaConfig, weights: Mapping[str, np.ndarray], dtype: Dtype, attention: AttentionKind
) -> Any:
    if attention == GQA_ATTENTION:
        return build_gqa_graph(config, weights, dtype=dtype)
    return build_llama_graph(config, weights, dtype=dtype, attention=attention)


def _write_config(
    out: Path,
    config: LlamaConfig,
    *,
    random: bool,
    dtype: Dtype,
    attention: AttentionKind,
    extra: dict[str, Any],
) -> None:
    body = config.to_dict()
    body["torch_dtype"] = {"fp32": "float32", "fp16": "float16"}[dtype]
    body["avatar"] = {
        "random_weights": random,
        "format_version": FORMAT_VERSION,
        "dtype": dtype,
        "attention": attention,
        **extra,
    }
    _write_json(out / "config.json", body)


def _write_json(path: Path, body: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
