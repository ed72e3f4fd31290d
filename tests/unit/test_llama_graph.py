"""The ONNX decoder graph against the numpy reference: prefill, KV-cached decode, padded batches,
fp16, external data, and conversion of HF-style safetensors checkpoints."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from services.inference.core.llama_config import LlamaConfig, RopeScaling, rope_inv_freq, weight_shapes
from services.inference.core.llama_graph import (
    EXTERNAL_DATA_FILE,
    MODEL_FILE,
    build_llama_graph,
    past_input_names,
    present_output_names,
    save_model,
)
from services.inference.core.llama_reference import reference_forward
from services.inference.core.model_build import build_from_hf, build_tiny, random_weights

pytestmark = pytest.mark.timeout(60)

ATOL_FP32 = 1e-4


def make_config(**overrides: Any) -> LlamaConfig:
    base = LlamaConfig(
        vocab_size=101,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        max_position_embeddings=256,
    )
    return replace(base, **overrides)


VARIANTS = {
    "llama-gqa": make_config(),
    "llama-mha-tied": make_config(num_key_value_heads=4, tie_word_embeddings=True),
    "llama-bias": make_config(attention_bias=True, o_proj_bias=True),
    "qwen2-bias-tied": make_config(
        architecture="Qwen2ForCausalLM", attention_bias=True, tie_word_embeddings=True
    ),
    "mistral-mqa": make_config(architecture="MistralForCausalLM", num_key_value_heads=1),
    "llama3-rope": make_config(
        rope_theta=500000.0,
        rope_scaling=RopeScaling("llama3", 8.0, 1.0, 4.0, 64),
    ),
}


class Runner:
    """A session over a freshly built graph plus the weights it was built from."""

    def __init__(self, config: LlamaConfig, weights: Mapping[str, np.ndarray], dtype: str = "fp32") -> None:
        self.config, self.weights = config, weights
        model = build_llama_graph(config, weights, dtype=dtype)  # type: ignore[arg-type]
        onnx.checker.check_model(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.kv_dtype = np.float16 if dtype == "fp16" else np.float32

    def empty_past(self, batch: int) -> list[np.ndarray]:
        shape = (batch, self.config.num_key_value_heads, 0, self.config.head_dim)
        return [np.zeros(shape, self.kv_dtype) for _ in past_input_names(self.config)]

    def run(
        self,
        ids: np.ndarray,
        mask: np.ndarray,
        pos: np.ndarray,
        past: list[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        feeds = {
            "input_ids": ids.astype(np.int64),
            "attention_mask": mask.astype(np.int64),
            "position_ids": pos.astype(np.int64),
        }
        feeds.update(zip(past_input_names(self.config), past or self.empty_past(ids.shape[0]), strict=True))
        out = self.session.run(None, feeds)
        return out[0], list(out[1:])


def arange_pos(batch: int, start: int, stop: int) -> np.ndarray:
    return np.broadcast_to(np.arange(start, stop), (batch, stop - start)).copy()


def token_ids(config: LlamaConfig, shape: tuple[int, int], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, config.vocab_size, shape)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_prefill_matches_reference(variant: str) -> None:
    config = VARIANTS[variant]
    runner = Runner(config, random_weights(config, seed=7))
    ids = token_ids(config, (2, 9))
    logits, present = runner.run(ids, np.ones((2, 9)), arange_pos(2, 0, 9))
    ref = reference_forward(config, runner.weights, ids)
    assert logits.dtype == np.float32 and logits.shape == (2, 9, config.vocab_size)
    np.testing.assert_allclose(logits, ref, atol=ATOL_FP32, rtol=0)
    assert [p.shape for p in present] == [(2, config.num_key_value_heads, 9, config.head_dim)] * (
        2 * config.num_hidden_layers
    )
    assert [o.name for o in runner.session.get_outputs()] == ["logits", *present_output_names(config)]


@pytest.mark.parametrize("variant", ["llama-gqa", "qwen2-bias-tied", "mistral-mqa"])
def test_decode_with_past_matches_reference(variant: str) -> None:
    config = VARIANTS[variant]
    runner = Runner(config, random_weights(config, seed=3))
    ids = token_ids(config, (2, 10), seed=5)
    ref = reference_forward(config, runner.weights, ids)

    _, past = runner.run(ids[:, :5], np.ones((2, 5)), arange_pos(2, 0, 5))
    # Two-token chunk with past, then single-token steps: both shapes the engine uses.
    logits, past = runner.run(ids[:, 5:7], np.ones((2, 7)), arange_pos(2, 5, 7), past)
    np.testing.assert_allclose(logits, ref[:, 5:7], atol=ATOL_FP32, rtol=0)
    for t in range(7, 10):
        logits, past = runner.run(ids[:, t : t + 1], np.ones((2, t + 1)), arange_pos(2, t, t + 1), past)
        np.testing.assert_allclose(logits[:, 0], ref[:, t], atol=ATOL_FP32, rtol=0)
    assert past[0].shape == (2, config.num_key_value_heads, 10, config.head_dim)


def test_kv_cache_decode_equals_full_recompute_in_onnx() -> None:
    config = VARIANTS["llama-gqa"]
    runner = Runner(config, random_weights(config, seed=11))
    ids = token_ids(config, (1, 12), seed=2)
    full_logits, full_present = runner.run(ids, np.ones((1, 12)), arange_pos(1, 0, 12))

    _, past = runner.run(ids[:, :8], np.ones((1, 8)), arange_pos(1, 0, 8))
    for t in range(8, 12):
        logits, past = runner.run(ids[:, t : t + 1], np.ones((1, t + 1)), arange_pos(1, t, t + 1), past)
        np.testing.assert_allclose(logits[0, 0], full_logits[0, t], atol=1e-5, rtol=0)
    for cached, full in zip(past, full_present, strict=True):
        np.testing.assert_allclose(cached, full, atol=1e-5, rtol=0)


def test_left_padded_batch_matches_each_row_alone() -> None:
    config = VARIANTS["qwen2-bias-tied"]
    runner = Runner(config, random_weights(config, seed=4))
    long_ids, short_ids = token_ids(config, (1, 7), seed=8)[0], token_ids(config, (1, 3), seed=9)[0]
    pad = 7 - 3
    ids = np.stack([long_ids, np.concatenate([np.zeros(pad, np.int64), short_ids])])
    mask = np.array([[1] * 7, [0] * pad + [1] * 3])
    # HF's convention for left padding: positions count real tokens only; pad slots get a dummy 1.
    pos = np.where(mask == 1, np.cumsum(mask, axis=1) - 1, 1)
    logits, past = runner.run(ids, mask, pos)
    assert np.all(np.isfinite(logits)) and all(np.all(np.isfinite(p)) for p in past)

    alone_long, past_long = runner.run(long_ids[None], np.ones((1, 7)), arange_pos(1, 0, 7))
    alone_short, past_short = runner.run(short_ids[None], np.ones((1, 3)), arange_pos(1, 0, 3))
    np.testing.assert_allclose(logits[0], alone_long[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits[1, pad:], alone_short[0], atol=1e-5, rtol=0)
    ref_short = reference_forward(config, runner.weights, ids[1:], mask[1:], pos[1:])
    np.testing.assert_allclose(logits[1, pad:], ref_short[0, pad:], atol=ATOL_FP32, rtol=0)

    # One decode step for the padded batch with its cache, against each row's own cache.
    nxt = np.array([[5], [6]])
    step_mask = np.concatenate([mask, np.ones((2, 1), np.int64)], axis=1)
    step_pos = np.array([[7], [3]])
    step_logits, _ = runner.run(nxt, step_mask, step_pos, past)
    alone_long_step, _ = runner.run(nxt[:1], np.ones((1, 8)), step_pos[:1], past_long)
    alone_short_step, _ = runner.run(nxt[1:], np.ones((1, 4)), step_pos[1:], past_short)
    np.testing.assert_allclose(step_logits[0], alone_long_step[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(step_logits[1], alone_short_step[0], atol=1e-5, rtol=0)


def test_fp16_graph_computes_in_fp16_and_returns_fp32_logits() -> None:
    config = VARIANTS["qwen2-bias-tied"]
    weights = random_weights(config, seed=6)
    runner = Runner(config, weights, dtype="fp16")
    ids = token_ids(config, (2, 6))
    logits, present = runner.run(ids, np.ones((2, 6)), arange_pos(2, 0, 6))
    assert logits.dtype == np.float32
    assert all(p.dtype == np.float16 for p in present)
    fp16_weights = {k: v.astype(np.float16) for k, v in weights.items()}
    ref = reference_forward(config, fp16_weights, ids)
    # fp16 has ~3 decimal digits; logits here span several units.
    np.testing.assert_allclose(logits, ref, atol=5e-2, rtol=0)
    step, _ = runner.run(ids[:, :1], np.ones((2, 7)), arange_pos(2, 6, 7), present)
    assert step.shape == (2, 1, config.vocab_size) and np.all(np.isfinite(step))


def test_external_data_round_trip(tmp_path: Path) -> None:
    config = VARIANTS["llama-gqa"]
    weights = random_weights(config, seed=1)
    path = save_model(build_llama_graph(config, weights), tmp_path, external_data=True)
    assert path == tmp_path / MODEL_FILE
    assert (tmp_path / EXTERNAL_DATA_FILE).stat().st_size > (tmp_path / MODEL_FILE).stat().st_size
    # Rebuilding into the same directory must not append to the old data file.
    size = (tmp_path / EXTERNAL_DATA_FILE).stat().st_size
    save_model(build_llama_graph(config, weights), tmp_path, external_data=True)
    assert (tmp_path / EXTERNAL_DATA_FILE).stat().st_size == size
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = token_ids(config, (1, 4))
    feeds = {
        "input_ids": ids,
        "attention_mask": np.ones((1, 4), np.int64),
        "position_ids": arange_pos(1, 0, 4),
    }
    feeds.update({n: np.zeros((1, 2, 0, 8), np.float32) for n in past_input_names(config)})
    np.testing.assert_allclose(
        session.run(["logits"], feeds)[0], reference_forward(config, weights, ids), atol=ATOL_FP32, rtol=0
    )


def test_builder_rejects_bad_weights_and_unimplemented_attention() -> None:
    config = VARIANTS["llama-gqa"]
    weights = random_weights(config, seed=0)
    missing = {k: v for k, v in weights.items() if k != "model.layers.1.mlp.up_proj.weight"}
    with pytest.raises(ValueError, match=r"missing weight 'model\.layers\.1\.mlp\.up_proj\.weight'"):
        build_llama_graph(config, missing)
    wrong = dict(weights, **{"model.norm.weight": np.ones(31, np.float32)})
    with pytest.raises(ValueError, match=r"shape \(31,\), expected \(32,\)"):
        build_llama_graph(config, wrong)
    huge = dict(weights, **{"model.norm.weight": np.full(32, 1e6, np.float32)})
    with pytest.raises(ValueError, match="not finite in fp16"):
        build_llama_graph(config, huge, dtype="fp16")
    with pytest.raises(NotImplementedError):
        build_llama_graph(config, weights, attention="group_query_attention")


def test_rope_inverse_frequencies() -> None:
    config = make_config(head_dim=8, rope_theta=10000.0)
    np.testing.assert_allclose(rope_inv_freq(config), [1.0, 10000**-0.25, 10000**-0.5, 10000**-0.75])
    linear = replace(config, rope_scaling=RopeScaling("linear", factor=4.0))
    np.testing.assert_allclose(rope_inv_freq(linear), np.array(rope_inv_freq(config)) / 4)
    llama3 = replace(config, rope_scaling=RopeScaling("llama3", 8.0, 1.0, 4.0, 64))
    # Short wavelengths (< 64 / 4) untouched, long ones (> 64) divided by the factor.
    freqs = rope_inv_freq(llama3)
    assert freqs[0] == 1.0 and freqs[3] == pytest.approx(10000**-0.75 / 8)


HF_BASE = {
    "vocab_size": 101,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "max_position_embeddings": 128,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


def test_config_from_hf_dict_variants() -> None:
    llama = LlamaConfig.from_hf_dict(
        {
            **HF_BASE,
            "architectures": ["LlamaForCausalLM"],
            "eos_token_id": [2, 3],
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 32.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
        }
    )
    assert (llama.head_dim, llama.eos_token_ids, llama.rope_scaling.rope_type) == (8, (2, 3), "llama3")
    assert not llama.attention_bias and not llama.o_proj_bias
    qwen = LlamaConfig.from_hf_dict(
        {
            **HF_BASE,
            "architectures": ["Qwen2ForCausalLM"],
            "sliding_window": 64,
            "use_sliding_window": False,
            "tie_word_embeddings": True,
        }
    )
    assert (qwen.attention_bias, qwen.o_proj_bias, qwen.sliding_window, qwen.tie_word_embeddings) == (
        True,
        False,
        None,
        True,
    )
    mistral = LlamaConfig.from_hf_dict(
        {**HF_BASE, "model_type": "mistral", "sliding_window": 64, "head_dim": 16}
    )
    assert (mistral.architecture, mistral.head_dim, mistral.max_context) == ("MistralForCausalLM", 16, 64)
    for cfg in (llama, qwen, mistral):
        assert LlamaConfig.from_hf_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unsupported architecture"):
        LlamaConfig.from_hf_dict({**HF_BASE, "architectures": ["GPT2LMHeadModel"]})
    with pytest.raises(ValueError, match="rope_scaling"):
        LlamaConfig.from_hf_dict(
            {
                **HF_BASE,
                "architectures": ["LlamaForCausalLM"],
                "rope_scaling": {"rope_type": "yarn", "factor": 4.0},
            }
        )
    with pytest.raises(ValueError, match="multiple"):
        LlamaConfig.from_hf_dict({**HF_BASE, "architectures": ["LlamaForCausalLM"], "num_key_value_heads": 3})
    with pytest.raises(ValueError, match="missing required field 'hidden_size'"):
        LlamaConfig.from_hf_dict(
            {k: v for k, v in HF_BASE.items() if k != "hidden_size"} | {"model_type": "llama"}
        )


def _bf16_round(x: np.ndarray) -> np.ndarray:
    bits = x.astype(np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).view(np.float32)


def _save_bf16_safetensors(tensors: Mapping[str, np.ndarray], path: Path) -> None:
    header: dict[str, Any] = {}
    blobs, offset = [], 0
    for name, arr in tensors.items():
        raw = (_bf16_round(arr).view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {
            "dtype": "BF16",
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tok")) / "tokenizer.json"


HF_VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "llama-untied": ({"architectures": ["LlamaForCausalLM"]}, "single"),
    "llama-tied": ({"architectures": ["LlamaForCausalLM"], "tie_word_embeddings": True}, "single"),
    "qwen2-bias-tied": ({"architectures": ["Qwen2ForCausalLM"], "tie_word_embeddings": True}, "sharded"),
    "qwen2-bias-untied-bf16": ({"architectures": ["Qwen2ForCausalLM"]}, "bf16"),
    "mistral": ({"architectures": ["MistralForCausalLM"], "sliding_window": 4096}, "single"),
}


@pytest.mark.parametrize("variant", list(HF_VARIANTS))
def test_hf_checkpoint_builds_and_matches_reference(
    variant: str, tmp_path: Path, tokenizer_json: Path
) -> None:
    extra, layout = HF_VARIANTS[variant]
    raw = {**HF_BASE, **extra}
    config = LlamaConfig.from_hf_dict(raw)
    weights = random_weights(config, seed=21)
    if config.tie_word_embeddings:
        # Some tied checkpoints also store lm_head; the converter must use the embedding anyway.
        weights["lm_head.weight"] = np.zeros((101, 32), np.float32)
    weights["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.ones(4, np.float32)  # stale extra tensor

    src = tmp_path / "hf"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(raw))
    (src / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())
    (src / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|eot_id|>"}))
    if layout == "single":
        save_file(weights, str(src / "model.safetensors"))
    elif layout == "bf16":
        _save_bf16_safetensors(weights, src / "model.safetensors")
        weights = {k: _bf16_round(v) for k, v in weights.items()}
    else:
        names = sorted(weights)
        shards = {
            "model-00001-of-00002.safetensors": names[::2],
            "model-00002-of-00002.safetensors": names[1::2],
        }
        for fname, part in shards.items():
            save_file({n: weights[n] for n in part}, str(src / fname))
        index = {"metadata": {}, "weight_map": {n: f for f, part in shards.items() for n in part}}
        (src / "model.safetensors.index.json").write_text(json.dumps(index))

    out = build_from_hf(src, tmp_path / "out", dtype="fp32")
    written = json.loads((out / "config.json").read_text())
    assert written["avatar"]["random_weights"] is False and written["avatar"]["dtype"] == "fp32"
    assert LlamaConfig.from_hf_dict(written) == config
    assert (out / "tokenizer.json").read_bytes() == tokenizer_json.read_bytes()
    assert (out / "tokenizer_config.json").is_file()

    session = ort.InferenceSession(str(out / MODEL_FILE), providers=["CPUExecutionProvider"])
    ids = token_ids(config, (1, 6), seed=3)
    feeds = {
        "input_ids": ids,
        "attention_mask": np.ones((1, 6), np.int64),
        "position_ids": arange_pos(1, 0, 6),
    }
    feeds.update({n: np.zeros((1, 2, 0, 8), np.float32) for n in past_input_names(config)})
    np.testing.assert_allclose(
        session.run(["logits"], feeds)[0], reference_forward(config, weights, ids), atol=ATOL_FP32, rtol=0
    )


def test_hf_checkpoint_missing_tensor_is_reported(tmp_path: Path, tokenizer_json: Path) -> None:
    raw = {**HF_BASE, "architectures": ["LlamaForCausalLM"]}
    weights = random_weights(LlamaConfig.from_hf_dict(raw), seed=0)
    del weights["lm_head.weight"]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    (tmp_path / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing weight 'lm_head\.weight'"):
        build_from_hf(tmp_path, tmp_path / "out")


def test_weight_shapes_cover_hf_names() -> None:
    shapes = weight_shapes(VARIANTS["qwen2-bias-tied"])
    assert shapes["model.layers.0.self_attn.q_proj.bias"] == (32,)
    assert shapes["model.layers.1.self_attn.k_proj.weight"] == (16, 32)
    assert "model.layers.0.self_attn.o_proj.bias" not in shapes and "lm_head.weight" not in shapes
