"""Cost of one distillation step vs one plain fine-tuning step of the same student (MiniLM).

A distillation step = teacher forward (no grad) + student forward/backward + hooks + losses.
Both steps run the Trainer's `compute_loss` then backward (the optimizer
update, identical for both, is left out, so the ratio is an upper bound), interleaved round by
round so machine noise hits both alike.

    .venv/bin/python benchmarks/distillation_cost.py [--steps 10] [--batch 32] [--seq 64]

Writes benchmarks/results/distillation_cost.json and benchmarks/distillation_cost.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

from leanformer.distill import DistillationConfig, DistillationTrainer
from leanformer.measure import dummy_inputs
from leanformer.pretrained import resolve_model

HERE = Path(__file__).parent

SETTINGS = {
    "logits only (0.9·KL + 0.1·CE)": DistillationConfig(),
    "logits + embeddings + hidden + attention (KroneckerBERT)": DistillationConfig(
        logit_weight=1, task_weight=1, embedding_weight=1, hidden_weight=1, attention_weight=1
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    path = resolve_model("minilm")
    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    inputs = dummy_inputs(teacher, args.batch, args.seq)
    inputs["labels"] = torch.randint(0, 2, (args.batch,))
    tmp = tempfile.mkdtemp()
    targs = TrainingArguments(output_dir=tmp, report_to=[], use_cpu=True, disable_tqdm=True)

    steps = {"fine-tuning (student only)": Trainer(model=copy.deepcopy(teacher), args=targs)}
    for name, cfg in SETTINGS.items():
        steps[f"distillation: {name}"] = DistillationTrainer(model=copy.deepcopy(teacher), args=targs, teacher=teacher, distillation=cfg)

    samples: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(args.warmup + args.steps):
        for name, trainer in steps.items():
            trainer.model.train()
            start = time.perf_counter()
            trainer.compute_loss(trainer.model, dict(inputs)).backward()
            elapsed = (time.perf_counter() - start) * 1000
            trainer.model.zero_grad(set_to_none=True)
            if round_ >= args.warmup:
                samples[name].append(elapsed)

    base = statistics.median(samples["fine-tuning (student only)"])
    rows = [
        {"step": name, "median_ms": round(statistics.median(s), 1), "ratio_vs_finetuning": round(statistics.median(s) / base, 3)}
        for name, s in samples.items()
    ]
    command = "python benchmarks/distillation_cost.py " + " ".join(sys.argv[1:])
    result = {"model": "all-MiniLM-L6-v2", "batch": args.batch, "seq": args.seq, "threads": args.threads, "steps": args.steps, "command": command, "rows": rows}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "distillation_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Distillation step cost vs plain fine-tuning (MiniLM-L6, CPU)",
        "",
        "```",
        command,
        "```",
        "",
        f"Batch {args.batch}, sequence {args.seq}, {args.threads} threads, median of {args.steps} interleaved steps "
        "(forward + backward through each Trainer's `compute_loss`; teacher = a copy of the student, so the teacher forward "
        "costs as much as the student's). Target: ratio ≤ 1.5.",
        "",
        "| step | median ms | ratio vs fine-tuning |",
        "|---|---:|---:|",
    ]
    lines += [f"| {r['step']} | {r['median_ms']} | {r['ratio_vs_finetuning']:.2f}× |" for r in rows]
    (HERE / "distillation_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
