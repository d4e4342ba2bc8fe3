"""KroneckerBERT on MiniLM-L6: teacher vs Kronecker students, with and without stage 1 and intermediate losses.

    .venv/bin/python benchmarks/kronecker.py [--tasks glue/sst2 glue/mrpc glue/cola] [--compressions 8 20]
        [--corpus general_en --corpus_samples 0 --stage1_epochs 3] [--train_samples 32000 --epochs 2]   # longer budgets: rows tagged
        [--objective capacity]   # shapes with the most attention + FFN parameters (KroneckerConfig.search_objective)
        [--lr 1e-4] [--stage1_lr 5e-4]   # stage-2 / stage-1 learning rates (rows tagged when not 5e-4)

Runs in order of importance (the full method first, then the ablations), saves every student
under runs/bench/kronecker/ and every row to benchmarks/results/kronecker.json as soon as it is
measured, and skips what is already done: interrupt and re-run freely. Teachers are the cached
ones of benchmarks/teacher.py (same settings). Stage 1 (general distillation on the `vitaminc_wiki`
corpus) is shared by all tasks of a compression level.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from leanformer.benchmark import Candidate
from leanformer.distill import DistillationConfig
from leanformer.distill.general import GeneralDistillationConfig, general_distillation
from leanformer.methods.kronecker import KroneckerConfig, kronecker_distillation
from leanformer.student import distil_student
from leanformer.data import TaskConfig
from leanformer.teacher import FinetuneConfig, finetune
from leanformer.training import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from baselines import write_baselines  # noqa: E402
from common import command_line, measure_students, record_rows, run_dir, student_budget  # noqa: E402
from teacher import teacher_settings  # noqa: E402  (same teachers as benchmarks/teacher.md)

HERE = Path(__file__).parent
RUNS = Path("runs/bench/kronecker")

# Student budgets on 2 CPU cores (teacher + student forward, student backward per step).
STUDENT_TRAIN = {
    "glue/sst2": dict(max_train_samples=8000, epochs=2.0),
    "glue/mrpc": dict(epochs=4.0),
    "glue/cola": dict(epochs=3.0),
}
# Learning rates; another value is part of the run's name and row label, so it never reuses a run at the default.
STAGE1_LR = STAGE2_LR = 5e-4
# (stage 1, intermediate losses): the full method first, ablations after.
VARIANTS = [(True, True), (False, True), (True, False), (False, False)]


def _teacher(name: str) -> Path:
    return finetune(FinetuneConfig(model="minilm"), *teacher_settings(name))


def _config(compression: float, args) -> KroneckerConfig:
    return KroneckerConfig(target_compression=compression, search_objective=args.objective)


def _general(compression: float, args) -> Path:
    # the corpus budget is part of the name: a longer stage 1 never silently reuses a shorter one
    corpus = "" if args.corpus == "vitaminc_wiki" else f"-{Path(args.corpus).name}"
    objective = "" if args.objective == "flops" else f"-{args.objective}"
    lr = "" if args.stage1_lr == STAGE1_LR else f"-lr{args.stage1_lr:g}"
    out = RUNS / f"general-c{compression:g}{objective}{corpus}-n{args.corpus_samples or 'all'}-e{args.stage1_epochs:g}{lr}"
    if not (out / "config.json").is_file():
        train = TrainConfig(epochs=args.stage1_epochs, batch_size=32, max_length=64, learning_rate=args.stage1_lr, report_to="none", logging_steps=50)
        general = GeneralDistillationConfig(pretrained="minilm", corpus=args.corpus, corpus_samples=args.corpus_samples)
        general_distillation(general, _config(compression, args), train, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=list(STUDENT_TRAIN))
    parser.add_argument("--compressions", nargs="+", type=float, default=[8.0, 20.0])
    parser.add_argument("--variants", type=int, default=len(VARIANTS), help="run the first N variants")
    parser.add_argument("--lr", type=float, default=STAGE2_LR, help="stage-2 learning rate (rows get a tag when not the default)")
    parser.add_argument("--stage1_lr", type=float, default=STAGE1_LR)
    parser.add_argument("--objective", default="flops", choices=["flops", "capacity"], help="shape search objective (rows get a tag)")
    parser.add_argument("--corpus", default="vitaminc_wiki", help="stage-1 text: vitaminc_wiki, general_en or a text file")
    parser.add_argument("--corpus_samples", type=int, default=8000, help="stage-1 passages (0: all)")
    parser.add_argument("--stage1_epochs", type=float, default=1.0)
    parser.add_argument("--train_samples", type=int, default=None, help="override the task's student training examples (0: the whole train split; rows get a budget tag)")
    parser.add_argument("--epochs", type=float, default=None, help="override the task's student epochs (rows get a budget tag)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--train_only", action="store_true", help="train the students and stop (measure later, on a quiet machine)")
    args = parser.parse_args()
    args.corpus_samples = args.corpus_samples or None
    command = command_line()

    for name in args.tasks:
        teacher_path = _teacher(name)
        settings, stage2_budget = student_budget(STUDENT_TRAIN[name], args.train_samples, args.epochs)
        # a non-default budget is its own row: "kron8x+stage1+intermediate [stage1 all×3, 32000×2]"
        default_stage1 = (args.corpus, args.corpus_samples, args.stage1_epochs) == ("vitaminc_wiki", 8000, 1.0)
        corpus = "" if args.corpus == "vitaminc_wiki" else f"{Path(args.corpus).name} "
        stage1_budget = "" if default_stage1 else f"stage1 {corpus}{args.corpus_samples or 'all'}×{args.stage1_epochs:g}"
        if args.stage1_lr != STAGE1_LR:
            stage1_budget = f"{stage1_budget or 'stage1'} lr {args.stage1_lr:g}"
        if args.lr != STAGE2_LR:
            stage2_budget = f"{stage2_budget} lr {args.lr:g}".strip()  # "all×8 lr 0.0001"
        task_cfg = TaskConfig(task=name, max_train_samples=settings.pop("max_train_samples", None))
        task = task_cfg.load(seed=0)
        train = TrainConfig(max_length=128, batch_size=32, learning_rate=args.lr, report_to="none", logging_steps=50, **settings)
        students = []
        for compression in args.compressions:
            for stage1, intermediate in VARIANTS[: args.variants]:
                label = f"kron{compression:g}x{'' if args.objective == 'flops' else '-' + args.objective}"
                label += f"{'+stage1' if stage1 else ''}{'+intermediate' if intermediate else '-logits-only'}"
                budget = [b for b in (stage1_budget if stage1 else "", stage2_budget) if b]
                label += f" [{', '.join(budget)}]" if budget else ""
                out = run_dir(RUNS, name, label)
                if not (out / "leanformer_metrics.json").is_file():
                    print(f"== {name}: {label}", flush=True)
                    losses = kronecker_distillation() if intermediate else DistillationConfig(temperature=1.0, logit_weight=1.0, task_weight=1.0)
                    distil_student(
                        teacher_path, _config(compression, args), task, train, losses, out,
                        overwrite=True, resume=True, init_encoder=_general(compression, args) if stage1 else None,
                    )
                metrics = json.loads((out / "leanformer_metrics.json").read_text())
                students.append((Candidate(label, out, method="kronecker", metric=metrics["metrics"]["test"][task.spec.primary_metric]),
                                 dict(compression=compression, objective=args.objective, stage1=stage1, intermediate=intermediate, train_seconds=metrics["train_seconds"],
                                      metrics_test=metrics["metrics"]["test"], epochs=train.epochs)))
        if args.train_only:
            continue
        measured = measure_students(teacher_path, students, task, repeats=args.repeats, command=command)
        record_rows(measured, HERE / "results" / "kronecker.json", HERE / "kronecker.md", title="KroneckerBERT on MiniLM-L6 (test split)", command=command)
        write_baselines()  # the fewer-layers baseline under pruning.md's and kronecker.md's tables


if __name__ == "__main__":
    main()
