"""Cost of one distillation step vs one plain fine-tuning step of the same student: time and peak memory.

A distillation step = teacher forward (no grad) + student forward/backward + hooks + losses.
Both steps run the Trainer's `compute_loss` then backward (the optimizer
update, identical for both, is left out, so the ratio is an upper bound), interleaved round by
round so machine noise hits both alike. Peak memory: each kind of step runs alone in a child
process (its models loaded, then a few steps); the row gives that process's peak resident memory
and how much of it the steps added to the loaded models.

    .venv/bin/python benchmarks/distillation_cost.py [--model minilm|mpnet|DIR] [--steps 10] [--batch 32] [--seq 64]

Writes benchmarks/results/distillation_cost.json (one run per model and machine; a new run of the
same model on the same machine replaces it) and benchmarks/distillation_cost.md.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

from leanformer.distill import DistillationConfig, DistillationTrainer
from leanformer.measure import cpu_flags, cpu_name, dummy_inputs
from leanformer.pretrained import resolve_model

HERE = Path(__file__).parent

FINETUNING = "fine-tuning (student only)"
SETTINGS = {
    "logits only (0.9·KL + 0.1·CE)": DistillationConfig(),
    "logits + embeddings + hidden + attention (KroneckerBERT)": DistillationConfig(
        logit_weight=1, task_weight=1, embedding_weight=1, hidden_weight=1, attention_weight=1
    ),
}


def _trainers(model_path: Path, only: str | None = None) -> dict[str, Trainer]:
    teacher = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), report_to=[], use_cpu=True, disable_tqdm=True)
    trainers = {}
    if only in (None, FINETUNING):
        trainers[FINETUNING] = Trainer(model=copy.deepcopy(teacher), args=args)
    for name, cfg in SETTINGS.items():
        if only in (None, f"distillation: {name}"):
            trainers[f"distillation: {name}"] = DistillationTrainer(model=copy.deepcopy(teacher), args=args, teacher=teacher, distillation=cfg)
    return trainers


def _step(trainer: Trainer, inputs: dict) -> None:
    trainer.model.train()
    trainer.compute_loss(trainer.model, dict(inputs)).backward()
    trainer.model.zero_grad(set_to_none=True)


def _inputs(model, batch: int, seq: int) -> dict:
    inputs = dummy_inputs(model, batch, seq)
    inputs["labels"] = torch.randint(0, 2, (batch,))
    return inputs


def _memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB, from /proc/self/status."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def _peak_child(args) -> None:
    """Child process: load the models of one kind of step, reset the peak, run a few steps, print
    resident memory (MB) after loading and at the steps' peak."""
    (trainer,) = _trainers(resolve_model(args.model), args.peak_of).values()
    inputs = _inputs(trainer.model, args.batch, args.seq)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:  # Linux: "5" resets the peak (VmHWM) to the current RSS
        f.write("5")
    loaded = _memory_mb("VmRSS")
    for _ in range(3):
        _step(trainer, inputs)
    print(json.dumps({"loaded_mb": round(loaded), "peak_mb": round(_memory_mb("VmHWM"))}))


def _peak_memory(args, name: str) -> dict:
    argv = [sys.executable, __file__, "--model", args.model, "--batch", str(args.batch), "--seq", str(args.seq),
            "--threads", str(args.threads), "--peak_of", name]
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="minilm", help="packaged encoder (minilm, mpnet) or a model directory")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak_of", default=None, help=argparse.SUPPRESS)  # child process: one kind of step's memory
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.peak_of:
        return _peak_child(args)

    steps = _trainers(resolve_model(args.model))
    inputs = _inputs(steps[FINETUNING].model, args.batch, args.seq)
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(args.warmup + args.steps):
        for name, trainer in steps.items():
            start = time.perf_counter()
            _step(trainer, inputs)
            elapsed = (time.perf_counter() - start) * 1000
            if round_ >= args.warmup:
                samples[name].append(elapsed)
    params = sum(p.numel() for p in steps[FINETUNING].model.parameters())
    del steps  # the children measure memory on a quiet machine
    base = statistics.median(samples[FINETUNING])
    rows = [
        {"step": name, "median_ms": round(statistics.median(s), 1), "ratio_vs_finetuning": round(statistics.median(s) / base, 3),
         **_peak_memory(args, name)}
        for name, s in samples.items()
    ]
    command = "python benchmarks/distillation_cost.py " + " ".join(sys.argv[1:])
    run = {"model": args.model, "parameters": params, "cpu": cpu_name(), "cpu_flags": cpu_flags(), "batch": args.batch, "seq": args.seq,
           "threads": args.threads, "steps": args.steps, "command": command, "rows": rows}
    out = HERE / "results" / "distillation_cost.json"
    runs = json.loads(out.read_text()).get("runs", []) if out.exists() else []
    runs = [r for r in runs if (r["model"], r.get("cpu"), r.get("cpu_flags")) != (run["model"], run["cpu"], run["cpu_flags"])] + [run]
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    render(runs)


def render(runs: list[dict]) -> None:
    lines = ["# Distillation step cost vs plain fine-tuning (CPU): time and peak memory", "",
             "Forward + backward through each Trainer's `compute_loss`, median of interleaved steps; teacher = a copy of the "
             "student, so the teacher forward costs as much as the student's. Target: time ratio ≤ 1.5. Memory: peak resident "
             "memory of a process that loads that step's models and runs 3 steps (\"added\": above the loaded models). "
             "Generated from `results/distillation_cost.json`.", ""]
    for run in runs:
        where = f"{run.get('cpu', 'CPU not recorded')}" + (f" ({', '.join(run['cpu_flags'])})" if run.get("cpu_flags") else "")
        size = f", {run['parameters'] / 1e6:.1f}M parameters" if run.get("parameters") else ""
        lines += [f"## {run['model']}{size}: batch {run['batch']}, sequence {run['seq']}, {run['threads']} threads, {where}", "",
                  "```", run["command"], "```", "",
                  "| step | median ms | ratio vs fine-tuning | peak memory MB | added by the steps MB |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {r['step']} | {r['median_ms']} | {r['ratio_vs_finetuning']:.2f}× | {r.get('peak_mb', '—')} | "
                  f"{r['peak_mb'] - r['loaded_mb'] if 'peak_mb' in r else '—'} |" for r in run["rows"]]
        lines.append("")
    (HERE / "distillation_cost.md").write_text("\n".join(lines))
    print("\n".join(lines))

if __name__ == "__main__":
    main()
