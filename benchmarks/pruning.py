"""Block movement pruning on MiniLM-L6: hybrid filled at three regularisation strengths, and struct;
and on the Bible EN→FR Marian teacher: hybrid filled, and pruning → 8-bit QAT deployed as int8 ONNX.

    .venv/bin/python benchmarks/pruning.py [--tasks glue/sst2 glue/mrpc squad_v1 bible_en_fr] [--repeats 10]
        [--train_samples 2500 --epochs 2] [--score_lr 0.2]   # other budgets / score rates: rows tagged

Sparsity is set by λ (the paper's knob): hybrid filled at λ = 5, 10, 20, struct at λ = 10 (and, on
request, "struct λ10 refine": struct plus hybrid filled's refine epoch after removal). Every student
is distilled from the cached teacher of benchmarks/teacher.py (same settings; SQuAD's is defined
below), finalized (empty heads and FFN dims physically removed), and measured against the teacher
in one interleaved run: metric, linear parameters, heads and FFN dims kept, FLOP
reduction and CPU latency at batch 1 and 32 (seq 128, 2 threads). Students are kept under
runs/bench/pruning/; rows go to benchmarks/results/pruning.json as soon as a task is done.

Translation (`--tasks bible_en_fr`; the teacher of benchmarks/quantization.py): every attention
(encoder self; decoder self and cross) and FFN is pruned; rows give greedy BLEU on the test verses
and generation latency (32 new tokens, b1/b32, 2 threads) of the teacher and the pruned student,
each in PyTorch and as ONNX fp32 (encoder + cached decoder in onnxruntime), and of the pruned → int8
student (int8 ONNX), timed interleaved in one run: the ONNX fp32 rows separate the runtime's gain
from pruning's and int8's.
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
from baselines import write_baselines  # noqa: E402
from common import add_budget_arguments, command_line, measure_students, record_rows, run_dir, student_budget  # noqa: E402
from teacher import teacher_settings  # noqa: E402  (same teachers as benchmarks/teacher.md)

HERE = Path(__file__).parent
RUNS = Path("runs/bench/pruning")
TITLE = "Block movement pruning (test split): MiniLM-L6 on GLUE and SQuAD v1, a from-scratch Marian on Bible EN→FR"

# SQuAD v1 teacher (not in teacher.md, which covers classification): the train split by article.
SQUAD_TEACHER = dict(epochs=2.0, max_length=256, batch_size=32, learning_rate=1e-4)

# Student budgets on 2 CPU cores: short schedules, so scores learn faster than the paper's 1e-2.
STUDENT_TRAIN = {
    "glue/sst2": dict(max_train_samples=8000, epochs=3.0),
    "glue/mrpc": dict(epochs=5.0),
    "squad_v1": dict(epochs=2.0, max_length=256),
    "bible_en_fr": dict(epochs=2.0, max_length=128, batch_size=64),
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


def add_score_lr_argument(parser) -> None:
    parser.add_argument("--score_lr", type=float, default=SCHEDULE["score_learning_rate"],
                        help="learning rate of the mask scores (a non-default rate is part of the row label): shorter schedules need a larger one to prune as far")


def score_lr_tags(score_lr: float) -> list[str]:
    """The label tag of a non-default score rate (["score lr 0.2"]; [] for the default)."""
    return [f"score lr {score_lr:g}"] if score_lr != SCHEDULE["score_learning_rate"] else []


def _teacher(name: str) -> Path:
    if name == "squad_v1":
        return finetune(FinetuneConfig(model="minilm"), TaskConfig(task=name), TrainConfig(report_to="none", logging_steps=50, **SQUAD_TEACHER))
    return finetune(FinetuneConfig(model="minilm"), *teacher_settings(name))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=list(STUDENT_TRAIN))
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    add_budget_arguments(parser)
    add_score_lr_argument(parser)
    args = parser.parse_args()
    command = command_line()

    for name in args.tasks:
        if name == "bible_en_fr":
            translation(args, command)
            continue
        teacher_path = _teacher(name)
        settings, budget = student_budget(STUDENT_TRAIN[name], args.train_samples, args.epochs)
        tags = [budget] if budget else []
        tags += score_lr_tags(args.score_lr)
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
        record_rows(measured, HERE / "results" / "pruning.json", HERE / "pruning.md", title=TITLE, command=command)
        write_baselines()  # the fewer-layers baseline under pruning.md's and kronecker.md's tables


def translation(args, command: str) -> None:
    """Pruned and pruned → int8 Marian students vs their teacher: greedy BLEU, size, generation latency."""
    from transformers import AutoTokenizer

    from common import generation_latency
    from leanformer.deploy.seq2seq import OnnxSeq2Seq, export_seq2seq_onnx
    from leanformer.evaluation import evaluate_model
    from leanformer.measure import count_parameters
    from leanformer.methods.quantization import QuantizationConfig, export_int8_seq2seq
    from quantization import _row, translation_teacher

    name = "bible_en_fr"
    teacher_path = translation_teacher()
    settings, budget = student_budget(STUDENT_TRAIN[name], args.train_samples, args.epochs)
    tag = f" [{budget}]" if budget else ""
    task = TaskConfig(task=name, max_train_samples=settings.pop("max_train_samples", None)).load(seed=0)
    train = TrainConfig(**{"learning_rate": args.lr, "eval_batch_size": 128, "report_to": "none", "logging_steps": 50, **settings})
    config = BlockPruningConfig.hybrid_filled(final_lambda=10.0, **{**SCHEDULE, "score_learning_rate": args.score_lr})
    pruned_label, int8_label = "hybrid_filled λ10" + tag, "hybrid_filled λ10 → 8-bit QAT" + tag
    pruned, int8 = run_dir(RUNS, name, pruned_label), run_dir(RUNS, name, int8_label)
    if not (pruned / "leanformer_metrics.json").is_file():
        print(f"== {name}: {pruned_label}", flush=True)
        distil_student(teacher_path, config, task, train, DistillationConfig(), pruned, overwrite=True, resume=True)
    if not (int8 / "leanformer_metrics.json").is_file():
        print(f"== {name}: {int8_label}", flush=True)
        qat = TrainConfig(**{**train.to_dict(), "epochs": 1.0})
        distil_student(teacher_path, QuantizationConfig.fullyqt(8), task, qat, DistillationConfig(), int8, overwrite=True, resume=True,
                       init_student=pruned)
    if args.train_only:
        return
    teacher, student = leanformer.load(teacher_path), leanformer.load(pruned)
    onnx_dir = RUNS / f"{name}-onnx"
    # ONNX fp32 rows beside the int8 one: how much of the int8 student's speed is the runtime, how much pruning
    teacher_onnx, pruned_onnx = "teacher, ONNX fp32", pruned_label + ", ONNX fp32"
    graphs = {teacher_onnx: export_seq2seq_onnx(teacher, onnx_dir / "teacher"), pruned_onnx: export_seq2seq_onnx(student, onnx_dir / "pruned"),
              int8_label: export_int8_seq2seq(leanformer.load(int8), onnx_dir / "int8")}
    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    runners = {"teacher": teacher, pruned_label: student,
               **{label: OnnxSeq2Seq(graph, threads=2, spinning=False) for label, graph in graphs.items()}}
    bleu = {label: evaluate_model(runner, tokenizer, task, "test", batch_size=128, max_length=128, progress=False)["bleu"]
            for label, runner in runners.items()}
    latency = generation_latency(runners, tokenizer, task.splits["test"]["source"][:32], repeats=args.repeats)
    lat = {k: (latency[1][k].median_ms, latency[32][k].median_ms) for k in runners}
    size = {"teacher": (teacher_path / "model.safetensors").stat().st_size, pruned_label: (pruned / "model.safetensors").stat().st_size,
            **{label: sum(f.stat().st_size for f in graph.iterdir()) for label, graph in graphs.items()}}
    teacher_params, pruned_params = count_parameters(teacher)["total"], count_parameters(student)["total"]
    report = pruning_report(student, seq_len=128)
    rows = []
    for label, method, runtime, params in (
            ("teacher", "teacher", "pytorch fp32", teacher_params),
            (teacher_onnx, "onnxruntime fp32", "onnx fp32 (greedy loop with cache)", teacher_params),
            (pruned_label, "pruning", "pytorch fp32", pruned_params),
            (pruned_onnx, "pruning", "onnx fp32 (greedy loop with cache)", pruned_params),
            (int8_label, "pruning+quantization", "onnx int8 (greedy loop with cache)", pruned_params)):
        extra = {} if label in ("teacher", teacher_onnx) else dict(heads_kept=report["heads_kept"], heads_total=report["heads_total"],
                                                                   ffn_dims_kept=report["ffn_dims_kept"], ffn_dims_total=report["ffn_dims_total"],
                                                                   flop_reduction=report["flop_reduction"], epochs=train.epochs)
        rows.append(_row(label, method, name, "bleu", bleu[label], bleu["teacher"], params, teacher_params, size[label], size["teacher"],
                         lat[label], lat["teacher"], command, runtime=runtime, generation="greedy, 32 new tokens timed", **extra))
    record_rows(rows, HERE / "results" / "pruning.json", HERE / "pruning.md", title=TITLE, command=command)
    write_baselines()  # the fewer-layers baseline under pruning.md's and kronecker.md's tables


if __name__ == "__main__":
    main()
