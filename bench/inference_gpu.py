"""The engine on a 1B-class model: bandwidth roofline at batch 1, throughput, cached vs cold TTFT.

    .venv/bin/python -m bench.inference_gpu [--shape llama-1b] [--dtype fp16] [--streams 1 16]
        [--prompt 256] [--new 128] [--persona 1024] [--fans 16]

Issue 3's GPU benchmark, written to run in one call on a lent GPU machine with onnxruntime-gpu
installed; on a machine without CUDA the same code runs on the CPU (``--shape smollm --dtype fp32``
is the size that fits two cores; that is how it was checked, the CUDA path has not run yet). The
provider is the engine's own choice (:func:`generator.default_providers`: CUDA for an fp16 serving
graph when onnxruntime has it), printed first.

1. Memory bandwidth of the device, measured now: an out-of-place ``Add`` of two large tensors
   through onnxruntime on the same provider with I/O bound on the device (3 x bytes / time).
2. Batch-1 decode: one 1-row decode step on the engine's runner at context ``prompt + new/2``
   (median of repeats), the weight bytes it must read (every parameter once, the tied embedding as
   the LM head), and the fraction of the bandwidth roofline that reaches: (weight bytes / step) /
   bandwidth. The KV bytes read at that context are printed beside it.
3. Throughput end to end: ``N`` requests submitted at once (``--prompt``-token prompts, ``--new``
   greedy tokens), per stream and aggregate new tokens/s, mean TTFT, and the kernel bound of
   :mod:`bench.inference_decode` (no schedule of these calls beats it).
4. A ``--persona``-token persona shared by ``--fans`` fans: mean TTFT with the prefix cache vs with
   it off (as :mod:`bench.inference_prefix`, part 1).

Shapes: ``llama-1b`` is Llama-3.2-1B (hidden 2048, 16 layers, 32 heads / 8 KV heads, SwiGLU 8192,
vocab 128256, tied embeddings) with random weights; ``smollm`` the CPU bench model's shapes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from bench.inference_common import SMOLLM, THREADS, bench_model, machine_note, param_count, prompts
from bench.inference_decode import run_engine, time_kernels
from bench.inference_prefix import engine_for, persona_ttft
from services.inference.core.generator import DecoderModel
from services.inference.core.gqa_graph import ATTENTION_KIND
from services.inference.core.llama_config import LlamaConfig

LLAMA_1B = replace(
    SMOLLM,
    vocab_size=128256,
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
    rope_theta=500000.0,
    max_position_embeddings=4096,
)
SHAPES: dict[str, LlamaConfig] = {"llama-1b": LLAMA_1B, "smollm": SMOLLM}
_ORT_TYPES = {"fp16": (TensorProto.FLOAT16, np.float16), "fp32": (TensorProto.FLOAT, np.float32)}


def bandwidth_gbps(provider: str, dtype: str, megabytes: int, repeats: int = 10) -> float:
    """Device memory bandwidth through onnxruntime: ``C = A + B`` over ``megabytes`` per tensor."""
    elem, np_type = _ORT_TYPES[dtype]
    n = megabytes * (1 << 20) // np.dtype(np_type).itemsize
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])],
        "bandwidth",
        [helper.make_tensor_value_info(x, elem, [n]) for x in ("a", "b")],
        [helper.make_tensor_value_info("c", elem, [n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS if provider == "CPUExecutionProvider" else 0
    session = ort.InferenceSession(model.SerializeToString(), options, providers=[provider])
    device = "cuda" if provider == "CUDAExecutionProvider" else "cpu"
    values = {
        name: ort.OrtValue.ortvalue_from_numpy(np.full(n, 1, dtype=np_type), device, 0) for name in ("a", "b")
    }
    out = ort.OrtValue.ortvalue_from_shape_and_type([n], np_type, device, 0)
    binding = session.io_binding()
    for name, value in values.items():
        binding.bind_ortvalue_input(name, value)
    binding.bind_ortvalue_output("c", out)
    session.run_with_iobinding(binding)  # warm-up (and the CUDA context)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run_with_iobinding(binding)  # Run waits for the device at its end
        times.append(time.perf_counter() - start)
    return 3 * n * np.dtype(np_type).itemsize / statistics.median(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-1b")
    parser.add_argument("--dtype", choices=sorted(_ORT_TYPES), default="fp16")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--prompt", type=int, default=256)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--persona", type=int, default=1024)
    parser.add_argument("--fans", type=int, default=16)
    parser.add_argument(
        "--bandwidth-mb", type=int, default=None, help="per tensor (default 1024 GPU, 256 CPU)"
    )
    args = parser.parse_args()

    config = SHAPES[args.shape]
    model_dir = bench_model(ATTENTION_KIND, config, dtype=args.dtype, name=f"{args.shape}-shapes")
    model = DecoderModel(model_dir, intra_op_num_threads=THREADS)
    provider = model.session.get_providers()[0]
    print(
        f"machine: {machine_note()}; onnxruntime {ort.__version__}, providers {ort.get_available_providers()}"
    )
    print(f"model: {args.shape} shapes, {args.dtype}, random weights; session runs on {provider}")

    megabytes = args.bandwidth_mb or (1024 if provider == "CUDAExecutionProvider" else 256)
    bandwidth = bandwidth_gbps(provider, args.dtype, megabytes)
    print(f"memory bandwidth ({provider}, Add over 3 x {megabytes} MB): {bandwidth:.1f} GB/s")

    itemsize = np.dtype(_ORT_TYPES[args.dtype][1]).itemsize
    weight_bytes = param_count(config) * itemsize
    kernels = time_kernels(model, 1, args.prompt, args.new)
    context = args.prompt + args.new // 2
    kv_bytes = (
        2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * itemsize * context
    )
    achieved = weight_bytes / kernels.step1 / 1e9
    print(
        f"batch 1: decode step {kernels.step1 * 1000:.2f} ms at context {context} -> "
        f"{1 / kernels.step1:.1f} tok/s; weights {weight_bytes / 1e9:.3f} GB a step -> {achieved:.1f} GB/s "
        f"= {achieved / bandwidth:.2f} of the bandwidth roofline (KV read per step {kv_bytes / 1e6:.1f} MB); "
        f"prefill of {args.prompt} tokens {kernels.prefill * 1000:.1f} ms"
    )

    for n in args.streams:
        rate, mean_ttft, _ = run_engine(model, n, args.prompt, args.new)
        bound = time_kernels(model, n, args.prompt, args.new).ceiling(n, args.new)
        print(
            f"{n:3d} streams: {rate:8.1f} new tok/s aggregate, {rate / n:7.1f} per stream, mean TTFT "
            f"{mean_ttft * 1000:.0f} ms; kernel bound {bound:.1f} tok/s (engine at {rate / bound:.0%} of it)"
        )

    [persona] = prompts(1, args.persona, seed=1)
    cold_engine, warm_engine = engine_for(model, cache=False), engine_for(model, cache=True)
    try:
        print(persona_ttft(cold_engine, warm_engine, persona, args.fans).line())
    finally:
        cold_engine.stop()
        warm_engine.stop()
    print(f"machine after: {machine_note()}")


if __name__ == "__main__":
    main()
