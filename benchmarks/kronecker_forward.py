"""Kronecker forward plans on this CPU against the dense `nn.Linear` they replace.

For A shapes of the weights of MiniLM-L6 (384×384, 1536×384, 384×1536) and BERT-base
(768×768, 3072×768), at 128 tokens (batch 1, seq 128) and 4096 tokens (batch 32, seq 128),
every forward plan of `KroneckerLinear` (layers.PLANS: four factored ones and the kept
materialised weight) and the teacher's `nn.Linear` of the same weight are timed interleaved
(median of repeats). Reported: the plan `forward_mode="auto"` picks by its own measurement, its
speed against `nn.Linear`, and what the FLOP rule (export, QAT training) would have run.

    .venv/bin/python benchmarks/kronecker_forward.py [--repeats 7] [--name kronecker_forward_xeon]

Writes benchmarks/results/NAME.json and the table in benchmarks/NAME.md (NAME: kronecker_forward;
another name keeps a second CPU's table beside the first).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from leanformer.methods.kronecker.layers import FACTORED_MAX_FLOP_RATIO, PLANS, KroneckerLinear, factored_flops
from leanformer.measure import cpu_name
from leanformer.architectures import divisors

HERE = Path(__file__).parent
WEIGHTS = {"MiniLM attention 384×384": (384, 384), "MiniLM W1 1536×384": (1536, 384), "MiniLM W2 384×1536": (384, 1536),
           "BERT attention 768×768": (768, 768), "BERT W1 3072×768": (3072, 768)}


def _searched_shapes() -> dict[str, set[tuple[int, int]]]:
    """The A shapes `target_compression` search picks (8× and 20×, both objectives) for MiniLM-L6 and
    BERT-base: the shapes that actually run, which the even spread over compression ratios can miss."""
    from transformers import BertConfig, BertForSequenceClassification

    from leanformer.methods.kronecker import KroneckerConfig, resolved_shapes

    picked: dict[str, set[tuple[int, int]]] = {label: set() for label in WEIGHTS}
    for model, (h, i, layers) in (("MiniLM", (384, 1536, 6)), ("BERT", (768, 3072, 12))):
        dense = BertForSequenceClassification(BertConfig(hidden_size=h, intermediate_size=i, num_hidden_layers=layers))
        for target in (8.0, 20.0):
            for objective in ("flops", "capacity"):
                att, ffn, _ = resolved_shapes(dense, KroneckerConfig(target_compression=target, search_objective=objective))
                picked[f"{model} attention {h}×{h}"].add(tuple(att))
                picked[f"{model} W1 {i}×{h}"].add(tuple(ffn))
                if f"{model} W2 {h}×{i}" in picked:
                    picked[f"{model} W2 {h}×{i}"].add(tuple(reversed(ffn)))
    return picked


def _time(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max_shapes", type=int, default=12, help="A shapes per weight, spread over compression ratios")
    parser.add_argument("--name", default="kronecker_forward", help="output file names (results/NAME.json, NAME.md)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    searched = _searched_shapes()
    for label, (out_f, in_f) in WEIGHTS.items():
        shapes = [(m1, n1) for m1 in divisors(out_f) for n1 in divisors(in_f) if 1 < m1 * n1 < out_f * in_f]
        # spread the sample over compression ratios, both ends included: sort by parameter count,
        # take evenly spaced ones (the low-compression end is where the dense path should win)
        shapes.sort(key=lambda s: s[0] * s[1] + (out_f // s[0]) * (in_f // s[1]))
        picks = sorted({round(k * (len(shapes) - 1) / (args.max_shapes - 1)) for k in range(args.max_shapes)})
        for a_shape in sorted({shapes[k] for k in picks} | searched[label], key=shapes.index):
            layer = KroneckerLinear(in_f, out_f, a_shape).eval()
            linear = nn.Linear(in_f, out_f).eval()
            with torch.no_grad():
                linear.weight.copy_(layer.weight)
                linear.bias.copy_(layer.bias)
            for tokens in (128, 4096):
                x = torch.randn(tokens, in_f)
                plans = layer.candidate_plans()  # plans with more FLOPs than the dense matmul are not measured
                runs = {plan: (lambda plan=plan: layer.run_plan(x, plan)) for plan in plans} | {"nn.Linear": lambda: linear(x)}
                with torch.inference_mode():
                    picked = layer.plan_for(x)  # auto's own measurement, before this table's
                    for fn in runs.values():
                        fn()
                    times = {name: [] for name in runs}
                    for _ in range(args.repeats):  # interleaved
                        for name, fn in runs.items():
                            times[name].append(_time(fn, 1))
                ms = {name: round(statistics.median(t), 3) for name, t in times.items()}
                rule = layer.rule_plan()
                rows.append({
                    "weight": label, "a_shape": list(a_shape), "b_shape": list(layer.b_shape), "tokens": tokens,
                    "compression": round(in_f * out_f / (layer.A.numel() + layer.B.numel()), 1),
                    "flop_ratio": round(factored_flops(layer.a_shape, layer.b_shape)[0] / (2 * in_f * out_f), 4),
                    "ms": ms, "auto_picks": picked, "rule_picks": rule,
                    "auto_speedup": round(ms["nn.Linear"] / ms[picked], 3), "rule_speedup": round(ms["nn.Linear"] / ms[rule], 3),
                    "best_speedup": round(ms["nn.Linear"] / min(ms[p] for p in plans), 3),
                })
                print(rows[-1], flush=True)
    command = "python benchmarks/kronecker_forward.py " + " ".join(sys.argv[1:])
    (HERE / "results").mkdir(exist_ok=True)
    cpu = cpu_name()
    (HERE / "results" / f"{args.name}.json").write_text(json.dumps({"command": command, "cpu": cpu, "threads": args.threads, "rows": rows}, indent=2) + "\n")
    n = len(rows)
    slower = [r for r in rows if r["auto_speedup"] < 1]
    rule_slower = sum(r["rule_speedup"] < 1 for r in rows)
    picked_best = sum(r["auto_speedup"] >= 0.95 * r["best_speedup"] for r in rows)
    lines = [
        "# Kronecker forward plans vs the dense nn.Linear, per shape (CPU)", "", "```", command, "```", "",
        f"CPU: {cpu}, {args.threads} threads, median of {args.repeats} interleaved repeats, ms per call. `×` = nn.Linear ms / plan ms "
        "(> 1: faster than the dense layer it replaces). `auto` is the plan `forward_mode=\"auto\"` picked by its own "
        "measurement on first use (done before this table's timings, so it can disagree with them where plans are close); "
        "— : not measured (more FLOPs than the dense matmul). "
        f"`rule` is the FLOP rule's plan (factored iff FLOP ratio ≤ {FACTORED_MAX_FLOP_RATIO}; ONNX export, FLOP counts and quantization-aware training use it).",
        "",
        f"auto is within 5% of this table's fastest plan in {picked_best}/{n} cases and slower than nn.Linear in {len(slower)}/{n}"
        + (f" (worst {min(r['auto_speedup'] for r in slower):.2f}×)" if slower else "")
        + f"; the FLOP rule's plan is slower than nn.Linear in {rule_slower}/{n}.",
        "", "| weight | A | B | compression | tokens | FLOP ratio | nn.Linear | " + " | ".join(PLANS) + " | auto picks | auto × | rule × |",
        "|---|---|---|---:|---:|---:|---:|" + "---:|" * len(PLANS) + "---|---:|---:|",
    ]
    lines += [
        f"| {r['weight']} | {r['a_shape'][0]}×{r['a_shape'][1]} | {r['b_shape'][0]}×{r['b_shape'][1]} | {r['compression']}× | {r['tokens']} | "
        f"{r['flop_ratio']:.3f} | {r['ms']['nn.Linear']} | " + " | ".join(str(r["ms"].get(p, "—")) for p in PLANS)
        + f" | {r['auto_picks']} | {r['auto_speedup']:.2f}× | {r['rule_speedup']:.2f}× |"
        for r in rows
    ]
    (HERE / f"{args.name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
