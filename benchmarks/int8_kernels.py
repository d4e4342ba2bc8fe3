"""onnxruntime's x86 integer matmuls on this CPU: which operand types are exact, and how fast.

An int8 ONNX file decides, by the 8-bit type of each stored tensor, which kernel onnxruntime runs
(`MatMulIntegerToFloat`, what its optimizer fuses a quantized linear into). Without VNNI (AVX2;
AVX-512 without VNNI) u8×s8 adds pairs of products in 16 bits and saturates; this measures it:

- exactness: max |error| against an int64 reference, on a constructed worst case (activations 255,
  weights at the top of their grid with one sign per column: every pair at its largest) and on
  uniform random operands;
- speed: median ms of the integer matmul and of the fp32 MatMul of the same shape (2 threads,
  interleaved), for MiniLM-L6's linear shapes at batch 32 × seq 128 (4096 tokens) and 128 tokens.

    .venv/bin/python benchmarks/int8_kernels.py [--repeats 20]

Rows are kept per CPU in benchmarks/results/int8_kernels.json (a run replaces its own CPU's rows);
benchmarks/int8_kernels.md is generated from all of them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from leanformer.measure import cpu_flags, cpu_name, int8_path

HERE = Path(__file__).parent
SHAPES = {"Q/K/V/out 384→384": (384, 384), "FFN in 384→1536": (384, 1536), "FFN out 1536→384": (1536, 384)}
TOKENS = (4096, 128)
# (label, activation type, weight type, largest weight): what each export stores
STORAGES = [
    ("u8×s8, 8-bit weights (--int8_kernels vnni)", np.uint8, np.int8, 127),
    ("u8×s8, 7-bit weights (weight_bits=7)", np.uint8, np.int8, 63),
    ("u8×u8, 8-bit weights as uint8 (default)", np.uint8, np.uint8, 127),
    ("s8×s8, 8-bit weights, int8 activations", np.int8, np.int8, 127),
]
_ONNX_TYPE = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8}


def _session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def integer_matmul(a_type, weight: np.ndarray, threads: int) -> ort.InferenceSession:
    """Y = (A − za)·(W − zw) in float, as the int8 exports compute a linear (scales 1)."""
    k, n = weight.shape
    zero_w = 128 if weight.dtype == np.uint8 else 0
    inits = [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(np.array(1.0, np.float32), "sa"),
             numpy_helper.from_array(np.ones(n, np.float32), "sw"), numpy_helper.from_array(np.array(0, a_type), "za"),
             numpy_helper.from_array(np.full(n, zero_w, weight.dtype), "zw")]
    node = helper.make_node("MatMulIntegerToFloat", ["A", "W", "sa", "sw", "za", "zw"], ["Y"], domain="com.microsoft")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("A", _ONNX_TYPE[a_type], [None, k])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return _session(model, threads)


def float_matmul(weight: np.ndarray, threads: int) -> ort.InferenceSession:
    k, n = weight.shape
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "W"], ["Y"])], "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [None, k])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n])], [numpy_helper.from_array(weight, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _session(model, threads)


def _operands(a_type, w_type, top: int, k: int, n: int, worst: bool, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Activations, stored weights and the weights' centred values (stored − zero point)."""
    if worst:
        a = np.full((8, k), 255 if a_type == np.uint8 else -128, a_type)
        centred = np.tile(np.where(np.arange(n) % 2 == 0, top, -top), (k, 1))
    else:
        a = rng.integers(np.iinfo(a_type).min, np.iinfo(a_type).max + 1, (8, k)).astype(a_type)
        centred = rng.integers(-top, top + 1, (k, n))
    stored = (centred + (128 if w_type == np.uint8 else 0)).astype(w_type)
    return a, stored, centred


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cpu, flags, path = cpu_name(), cpu_flags(), int8_path()
    rows = []
    for label, a_type, w_type, top in STORAGES:
        errors = {}
        for case in ("worst", "random"):
            a, stored, centred = _operands(a_type, w_type, top, 384, 64, case == "worst", rng)
            got = integer_matmul(a_type, stored, args.threads).run(None, {"A": a})[0]
            errors[case] = float(np.abs(got - a.astype(np.int64) @ centred).max())
        for shape, (k, n) in SHAPES.items():
            _, stored, centred = _operands(a_type, w_type, top, k, n, False, rng)
            sessions = {"int": integer_matmul(a_type, stored, args.threads), "fp32": float_matmul(centred.astype(np.float32), args.threads)}
            for tokens in TOKENS:
                feeds = {"int": {"A": rng.integers(0, 128, (tokens, k)).astype(a_type)}, "fp32": {"A": rng.standard_normal((tokens, k)).astype(np.float32)}}
                times = {name: [] for name in sessions}
                for _ in range(3):  # warm-up
                    for name, session in sessions.items():
                        session.run(None, feeds[name])
                for _ in range(args.repeats):
                    for name, session in sessions.items():
                        start = time.perf_counter()
                        session.run(None, feeds[name])
                        times[name].append((time.perf_counter() - start) * 1e3)
                ms = {name: statistics.median(t) for name, t in times.items()}
                rows.append({"cpu": cpu, "cpu_flags": flags, "int8_path": path, "storage": label, "shape": shape, "tokens": tokens,
                             "max_error_worst": errors["worst"], "max_error_random": errors["random"],
                             "int_ms": round(ms["int"], 3), "fp32_ms": round(ms["fp32"], 3), "speedup_vs_fp32": round(ms["fp32"] / ms["int"], 2)})
                print(rows[-1], flush=True)
    command = "python benchmarks/int8_kernels.py " + " ".join(sys.argv[1:])
    out = HERE / "results" / "int8_kernels.json"
    # one section per machine: the model name alone ("AMD EPYC" in a VM) covers AVX2-only and VNNI parts
    kept = [r for r in json.loads(out.read_text())["rows"] if (r["cpu"], r["int8_path"]) != (cpu, path)] if out.exists() else []
    out.write_text(json.dumps({"command": command, "threads": args.threads, "repeats": args.repeats, "rows": kept + rows}, indent=2) + "\n")
    render(out)


def render(out: Path) -> None:
    data = json.loads(out.read_text())
    lines = ["# onnxruntime's x86 integer matmuls: exactness and speed per stored type", "", "```", data["command"], "```", "",
             f"MatMulIntegerToFloat (what onnxruntime fuses an int8 linear into) vs the fp32 MatMul of the same shape, {data['threads']} "
             f"threads, median of {data['repeats']} interleaved repeats. Error: max |ORT − int64 reference| of a 8×384 · 384×64 product, "
             "on the worst case (activations at 255, weights at ± their top, one sign per column) and on uniform random operands; "
             f"0 = exact. onnxruntime {ort.__version__}.", ""]
    for cpu, path in dict.fromkeys((r["cpu"], r["int8_path"]) for r in data["rows"]):
        rows = [r for r in data["rows"] if (r["cpu"], r["int8_path"]) == (cpu, path)]
        lines += [f"## {cpu} (flags: {' '.join(rows[0]['cpu_flags'])}; u8·s8 path: {rows[0]['int8_path']})", "",
                  "| stored as | error, worst case | error, random | " + " | ".join(f"{s} × {t}" for s in SHAPES for t in TOKENS) + " |",
                  "|---|---:|---:|" + "---:|" * (len(SHAPES) * len(TOKENS))]
        for storage in dict.fromkeys(r["storage"] for r in rows):
            cells = {(r["shape"], r["tokens"]): r for r in rows if r["storage"] == storage}
            first = next(iter(cells.values()))
            lines.append(f"| {storage} | {first['max_error_worst']:g} | {first['max_error_random']:g} | "
                         + " | ".join(f"{cells[s, t]['int_ms']:.2f} ms ({cells[s, t]['speedup_vs_fp32']:.2f}×)" for s in SHAPES for t in TOKENS) + " |")
        lines.append("")
    lines.append("Cells: integer matmul ms (fp32 ms ÷ integer ms). Generated from `results/int8_kernels.json`.")
    (out.parent.parent / "int8_kernels.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
