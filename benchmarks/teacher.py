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
from leanformer.measure import read_results, render_benchmark, write_results
from leanformer.teacher import FinetuneConfig, TaskConfig, finetune, teacher_metrics
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
        settings = dict(TASKS[name])
        task_cfg = TaskConfig(task=name, max_train_samples=settings.pop("max_train_samples", None))
        train = TrainConfig(max_length=128, batch_size=32, learning_rate=5e-5, report_to="none", logging_steps=50, **settings)
        print(f"== {name}: fine-tune {args.model} ({settings})", flush=True)
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
        render_benchmark(out_json, HERE / "teacher.md", title="Teachers: MiniLM-L6 fine-tuned per task (test split)", command=command)


if __name__ == "__main__":
    main()
