"""Teachers: MiniLM-L6 fine-tuned on every built-in classification task, measured.

    .venv/bin/python benchmarks/teacher.py [--tasks glue/sst2 glue/mrpc ...] [--model minilm]

Teachers are cached (`~/.cache/leanformer/teachers/`), so re-running only re-measures. Writes
benchmarks/results/teacher.json (rows) and benchmarks/teacher.md (generated from the rows).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leanformer.benchmark import Candidate, benchmark
from leanformer.measure import read_results, write_results
from leanformer.data import TaskConfig
from leanformer.teacher import FinetuneConfig, finetune, teacher_metrics
from leanformer.training import TrainConfig

HERE = Path(__file__).parent

# Per-task budget on 2 CPU cores: small tasks get 3 epochs, large ones a seeded subsample.
TASKS = {
    "glue/sst2": dict(max_train_samples=20000, epochs=2.0),
    "glue/mrpc": dict(epochs=3.0),
    "glue/rte": dict(epochs=3.0),
    "glue/cola": dict(epochs=3.0),
    "glue/stsb": dict(epochs=3.0),
    "glue/wnli": dict(epochs=3.0),
    "rotten_tomatoes": dict(epochs=2.0),
    "vitaminc": dict(max_train_samples=20000, epochs=1.0),
}


def teacher_settings(name: str) -> tuple[TaskConfig, TrainConfig]:
    """The task and training settings of the benchmark teacher for `name` (also used by the method benchmarks)."""
    settings = dict(TASKS[name])
    task_cfg = TaskConfig(task=name, max_train_samples=settings.pop("max_train_samples", None))
    return task_cfg, TrainConfig(max_length=128, batch_size=32, learning_rate=5e-5, report_to="none", logging_steps=50, **settings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    command = "python benchmarks/teacher.py " + " ".join(sys.argv[1:])
    out_json = HERE / "results" / "teacher.json"
    rows = {(r.model, r.task): r for r in read_results(out_json)} if out_json.exists() else {}

    for name in args.tasks:
        task_cfg, train = teacher_settings(name)
        print(f"== {name}: fine-tune {args.model} ({TASKS[name]})", flush=True)
        path = finetune(FinetuneConfig(model=args.model), task_cfg, train)
        record = teacher_metrics(path)
        task = task_cfg.load(seed=train.seed)
        metric = record["metrics"]["test"][record["metric_name"]]
        (row,) = benchmark(Candidate(args.model, path, metric=metric), [], task, repeats=args.repeats, command=command)
        row.extra.update(
            {
                "metrics_test": record["metrics"]["test"],
                "metrics_validation": record["metrics"]["validation"],
                "train_examples": record["train_examples"],
                "train_seconds": record["train_seconds"],
                "epochs": train.epochs,
            }
        )
        rows[(row.model, row.task)] = row
        write_results(list(rows.values()), out_json)  # after every task: nothing lost if interrupted
        render(out_json, command)


def _metrics(values: dict, primary: str) -> str:
    order = [primary] + [name for name in values if name != primary]  # the task's main metric first
    return ", ".join(f"{name} {values[name]:.2f}" for name in order)


def render(out_json: Path, command: str) -> None:
    """benchmarks/teacher.md from the rows (ratio columns would all read 1.00x here, so a table of its own)."""
    rows = read_results(out_json)
    lines = [
        "# Teachers: MiniLM-L6 (all-MiniLM-L6-v2) fine-tuned per task",
        "",
        "```",
        command.strip(),
        "```",
        "",
        "Test = the official dev file for GLUE, the held-out split otherwise (splits: data/README.md). "
        "Validation = the seeded held-out part of train. Latency: batch 1 and 32, sequence 128, 2 threads, "
        "median of repeats. Generated from `results/teacher.json`.",
        "",
        "| task | test | validation | train examples | epochs | train time | params | size MB | b1 ms | b32 ms |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        e = r.extra
        lines.append(
            f"| {r.task} | {_metrics(e['metrics_test'], r.metric_name)} | {_metrics(e['metrics_validation'], r.metric_name)} | {e['train_examples']:,} | {e['epochs']:g} | "
            f"{e['train_seconds'] / 60:.1f} min | {r.params / 1e6:.1f}M | {r.bytes / 1e6:.1f} | {r.latency_b1_ms:.1f} | {r.latency_b32_ms:.0f} |"
        )
    (HERE / "teacher.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
