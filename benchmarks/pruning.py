"""Block movement pruning on MiniLM-L6: hybrid filled at three regularisation strengths, and struct.

    .venv/bin/python benchmarks/pruning.py [--tasks glue/sst2 glue/mrpc squad_v1] [--repeats 10]
        [--train_samples 2500 --epochs 2] [--score_lr 0.2]   # other budgets / score rates: rows tagged

Sparsity is set by λ (the paper's knob): hybrid filled at λ = 5, 10, 20, struct at λ = 10 (and, on
request, "struct λ10 refine": struct plus hybrid filled's refine epoch after removal). Every student
is distilled from the cached teacher of benchmarks/teacher.py (same settings; SQuAD's is defined
below), finalized (empty heads and FFN dims physically removed), and measured against the teacher
in one interleaved run: metric, linear parameters, heads and FFN dims kept, FLOP
reduction and CPU latency at batch 1 and 32 (seq 128, 2 threads). Students are kept under
runs/bench/pruning/; rows go to benchmarks/results/pruning.json as soon as a task is done.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import leanformer
from leanformer.benchmark import Candidate
from leanformer.distill import DistillationConfig
from leanformer.methods.pruning import BlockPruningConfig, pruning_report
from leanformer.student import distil_student
from leanformer.data import TaskConfig
from leanformer.teacher import FinetuneConfig, finetune
from leanformer.training import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from common import add_budget_arguments, command_line, measure_students, record_rows, run_dir, student_budget  # noqa: E402
from teacher import teacher_settings  # noqa: E402  (same teachers as benchmarks/teacher.md)

HERE = Path(__file__).parent
RUNS = Path("runs/bench/pruning")

# SQuAD v1 teacher (not in teacher.md, which covers classification): the train split by article.
SQUAD_TEACHER = dict(epochs=2.0, max_length=256, batch_size=32, learning_rate=1e-4)

# Student budgets on 2 CPU cores: short schedules, so scores learn faster than the paper's 1e-2.
STUDENT_TRAIN = {
    "glue/sst2": dict(max_train_samples=8000, epochs=3.0),
    "glue/mrpc": dict(epochs=5.0),
    "squad_v1": dict(epochs=2.0, max_length=256),
}
SCHEDULE = dict(score_learning_rate=0.05, initial_warmup=0.05, final_warmup=0.2)
VARIANTS = {
    "hybrid_filled λ5": BlockPruningConfig.hybrid_filled(final_lambda=5.0, **SCHEDULE),
    "hybrid_filled λ10": BlockPruningConfig.hybrid_filled(final_lambda=10.0, **SCHEDULE),
    "hybrid_filled λ20": BlockPruningConfig.hybrid_filled(final_lambda=20.0, **SCHEDULE),
    "struct λ10": BlockPruningConfig.struct(final_lambda=10.0, **SCHEDULE),
    # Not in the paper (its struct has no refine phase): does hybrid filled's refine epoch rescue struct?
    "struct λ10 refine": BlockPruningConfig.struct(final_lambda=10.0, refine_epochs=1.0, **SCHEDULE),
}
DEFAULT_VARIANTS = ["hybrid_filled λ5", "hybrid_filled λ10", "hybrid_filled λ20", "struct λ10"]


def _teacher(name: str) -> Path:
    if name == "squad_v1":
        return finetune(FinetuneConfig(model="minilm"), TaskConfig(task=name), TrainConfig(report_to="none", logging_steps=50, **SQUAD_TEACHER))
    return finetune(FinetuneConfig(model="minilm"), *teacher_settings(name))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=list(STUDENT_TRAIN))
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    add_budget_arguments(parser)
    parser.add_argument("--score_lr", type=float, default=SCHEDULE["score_learning_rate"],
                        help="learning rate of the mask scores (a non-default rate is part of the row label): shorter schedules need a larger one to prune as far")
    args = parser.parse_args()
    command = command_line()

    for name in args.tasks:
        teacher_path = _teacher(name)
        settings, budget = student_budget(STUDENT_TRAIN[name], args.train_samples, args.epochs)
        tags = [budget] if budget else []
        if args.score_lr != SCHEDULE["score_learning_rate"]:
            tags.append(f"score lr {args.score_lr:g}")
        tag = f" [{', '.join(tags)}]" if tags else ""  # "hybrid_filled λ10 [24000×1, score lr 0.2]"
        task = TaskConfig(task=name, max_train_samples=settings.pop("max_train_samples", None)).load(seed=0)
        train = TrainConfig(**{"max_length": 128, "batch_size": 32, "learning_rate": args.lr, "report_to": "none", "logging_steps": 50, **settings})
        students = []
        for variant in args.variants:
            label = variant + tag
            out = run_dir(RUNS, name, label)
            config = dataclasses.replace(VARIANTS[variant], score_learning_rate=args.score_lr)
            if not (out / "leanformer_metrics.json").is_file():
                print(f"== {name}: {label}", flush=True)
                distil_student(teacher_path, config, task, train, DistillationConfig(), out, overwrite=True, resume=True)
            metrics = json.loads((out / "leanformer_metrics.json").read_text())
            report = pruning_report(leanformer.load(out), seq_len=128)
            students.append((Candidate(label, out, method="pruning", metric=metrics["metrics"]["test"][task.spec.primary_metric]),
                             dict(config=config.to_dict(), train_seconds=metrics["train_seconds"], metrics_test=metrics["metrics"]["test"],
                                  epochs=train.epochs, heads_kept=report["heads_kept"], heads_total=report["heads_total"],
                                  ffn_dims_kept=report["ffn_dims_kept"], ffn_dims_total=report["ffn_dims_total"],
                                  linear_parameters=report["linear_parameters"], density=report["density"],
                                  per_layer=[(r["heads"], r["ffn_dims"]) for r in report["layers"]])))
        if args.train_only:
            continue
        measured = measure_students(teacher_path, students, task, repeats=args.repeats, command=command, max_length=train.max_length)
        record_rows(measured, HERE / "results" / "pruning.json", HERE / "pruning.md", title="Block movement pruning on MiniLM-L6 (test split)", command=command)


if __name__ == "__main__":
    main()
