"""Kronecker forward paths on this CPU: factored (A·X·Bᵀ) vs dense (materialised W, F.linear).

For every A shape of the weights of MiniLM-L6 (384×384, 1536×384, 384×1536) and BERT-base
(768×768, 3072×768), at 128 tokens (batch 1, seq 128) and 4096 tokens (batch 32, seq 128),
both paths are timed interleaved (median of repeats) and compared with their FLOP ratio. The
`auto` rule in layers.py (factored iff its FLOPs ≤ FACTORED_MAX_FLOP_RATIO × dense) is checked
against what was measured.

    .venv/bin/python benchmarks/kronecker_forward.py [--repeats 7]

Writes benchmarks/results/kronecker_forward.json and the "forward paths" table in
benchmarks/kronecker_forward.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from leanformer.methods.kronecker.layers import FACTORED_MAX_FLOP_RATIO, KroneckerLinear
from leanformer.methods.kronecker.search import divisors

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
            factored = KroneckerLinear(in_f, out_f, a_shape, forward_mode="factored")
            dense = KroneckerLinear(in_f, out_f, a_shape, forward_mode="dense")
            dense.load_state_dict(factored.state_dict())
            flop_ratio = factored.flops_per_token() / (2 * in_f * out_f)
            for tokens in (128, 4096):
                x = torch.randn(tokens, in_f)
                with torch.inference_mode():
                    for _ in range(2):
                        factored(x), dense(x)
                    t_f, t_d = [], []
                    for _ in range(args.repeats):  # interleaved
                        t_f.append(_time(lambda: factored(x), 1))
                        t_d.append(_time(lambda: dense(x), 1))
                speedup = statistics.median(t_d) / statistics.median(t_f)
                rows.append({
                    "weight": label, "a_shape": list(a_shape), "b_shape": list(factored.b_shape), "tokens": tokens,
                    "compression": round(in_f * out_f / (factored.A.numel() + factored.B.numel()), 1),
                    "flop_ratio": round(flop_ratio, 4), "factored_ms": round(statistics.median(t_f), 3),
                    "dense_ms": round(statistics.median(t_d), 3), "factored_speedup": round(speedup, 3),
                    "rule_picks": "factored" if flop_ratio <= FACTORED_MAX_FLOP_RATIO else "dense",
                })
                print(rows[-1], flush=True)
    command = "python benchmarks/kronecker_forward.py " + " ".join(sys.argv[1:])
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "kronecker_forward.json").write_text(json.dumps({"command": command, "threads": args.threads, "rows": rows}, indent=2) + "\n")
    agree = sum((r["factored_speedup"] >= 1) == (r["rule_picks"] == "factored") for r in rows)
    loss = [r for r in rows if (r["rule_picks"] == "factored") != (r["factored_speedup"] >= 1)]
    worst = max((abs(1 - r["factored_speedup"]) for r in loss), default=0)
    lines = [
        "# Kronecker forward paths: factored vs dense, per shape (CPU)", "", "```", command, "```", "",
        f"{args.threads} threads, median of {args.repeats} interleaved repeats. `speedup` = dense ms / factored ms "
        "(> 1: the factored path is faster). Dense = materialise W = A⊗B then `F.linear` (what a dense layer of "
        f"that weight costs plus the materialisation). Rule: factored iff FLOP ratio ≤ {FACTORED_MAX_FLOP_RATIO}. "
        f"The rule picks the faster path in {agree}/{len(rows)} cases; where it does not, the paths differ by at most {worst:.0%}.",
        "", "| weight | A | B | compression | tokens | FLOP ratio | factored ms | dense ms | speedup | rule picks |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['weight']} | {r['a_shape'][0]}×{r['a_shape'][1]} | {r['b_shape'][0]}×{r['b_shape'][1]} | {r['compression']}× | {r['tokens']} | "
        f"{r['flop_ratio']:.3f} | {r['factored_ms']} | {r['dense_ms']} | {r['factored_speedup']:.2f}× | {r['rule_picks']} |"
        for r in rows
    ]
    (HERE / "kronecker_forward.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
