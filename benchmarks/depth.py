"""Fewer layers on MiniLM-L6 (6 layers): 4, 3 and 2 kept layers, and depth under the other methods.

    .venv/bin/python benchmarks/depth.py [--tasks glue/sst2 glue/mrpc squad_v1] [--variants ...] [--repeats 10]
        [--train_samples 8000 --epochs 2] [--score_lr 0.2]   # another budget / score rate: rows tagged

Each student is distilled from the cached teacher of benchmarks/teacher.py (SQuAD's: benchmarks/
pruning.py) with the method's own losses (TinyBERT's: embeddings, hidden states and attention
scores of each kept layer against the teacher layer it came from, logits); compositions are
recipes whose every stage is distilled from the same teacher: depth → hybrid-filled pruning, and
depth → pruning → 8-bit QAT (deployed as int8 ONNX). Rows are measured against the teacher in one
interleaved run (metric, size, FLOPs, latency b1/b32 at seq 128, 2 threads) and record the CPU.
SST-2 rows also carry accuracy on rotten_tomatoes' test split (same kind of text, another source),
next to the teacher's: out-of-distribution accuracy. Students are kept under runs/bench/depth/ and
finished ones are reused; training resumes from checkpoints: re-run freely.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import leanformer
from leanformer.api import load_tokenizer
from leanformer.benchmark import Candidate
from leanformer.data import TaskConfig
from leanformer.evaluation import evaluate_model
from leanformer.distill.config import GeneralDistillationConfig
from leanformer.methods.depth import DepthConfig
from leanformer.methods.kronecker import KroneckerConfig
from leanformer.methods.pruning import BlockPruningConfig
from leanformer.methods.quantization import QuantizationConfig
from leanformer.recipe import Recipe, Stage
from leanformer.student import distil_recipe
from leanformer.training import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from baselines import write_baselines  # noqa: E402
from common import (  # noqa: E402
    add_budget_arguments, command_line, measure_students, record_rows, reuse_finished_prefix, run_dir, stage_costs, student_budget,
)
from kronecker import STAGE1_LR, STAGE2_LR  # noqa: E402
from pruning import SCHEDULE, _teacher, add_score_lr_argument, score_lr_tags  # noqa: E402  (same teachers and pruning schedule as benchmarks/pruning.md)

HERE = Path(__file__).parent
RUNS = Path("runs/bench/depth")
TITLE = ("Fewer layers on MiniLM-L6 (test split; SST-2 rows also give accuracy on rotten_tomatoes' test split: out of distribution; "
         "the SST-2 teacher was fine-tuned on 20,000 of its 65,349 training sentences, SST-2 rows without a budget tag distil on all of them)")

# Student budgets on 2 CPU cores: SST-2 on its whole train split, as the depth issue asks.
STUDENT_TRAIN = {
    "glue/sst2": dict(max_train_samples=None, epochs=2.0),
    "glue/mrpc": dict(epochs=5.0),
    "squad_v1": dict(epochs=2.0, max_length=256),
}
QAT = TrainConfig(epochs=1.0, learning_rate=2e-5)  # the int8 stage: short, small steps (as recipes/fullyqt8.yaml)


def _variants(train: TrainConfig, score_lr: float = SCHEDULE["score_learning_rate"]) -> dict[str, list[Stage]]:
    qat = TrainConfig(**{**train.to_dict(), "epochs": QAT.epochs, "learning_rate": QAT.learning_rate})
    three, four = Stage("depth", DepthConfig(num_layers=3)), Stage("depth", DepthConfig(num_layers=4))
    prune = Stage("pruning", BlockPruningConfig.hybrid_filled(final_lambda=10.0, **{**SCHEDULE, "score_learning_rate": score_lr}))
    int8 = Stage("quantization", QuantizationConfig(), train=qat)
    # 7-bit weights: exact on every x86 CPU and on the u8·s8 kernels (methods/quantization/README.md)
    int8_7w = Stage("quantization", QuantizationConfig(weight_bits=7), train=qat)
    # KroneckerBERT as benchmarks/kronecker.md's best 8× student (capacity shapes, stage 1 on general
    # text), with stage 1 cut to 16,000 passages × 1 epoch and its learning rates
    kronecker8 = Stage("kronecker", KroneckerConfig(target_compression=8.0, search_objective="capacity"),
                       train=TrainConfig(**{**train.to_dict(), "learning_rate": STAGE2_LR}),
                       general=GeneralDistillationConfig(pretrained="minilm", corpus="general_en", corpus_samples=16000),
                       general_train=TrainConfig(epochs=1.0, batch_size=32, max_length=64, learning_rate=STAGE1_LR, report_to="none", logging_steps=50))
    # SST-2 rows: a 4-layer student distilled on the whole split, then the 16000×2 rows' pruning and
    # int8 step counts (1,000 pruning steps, a 511-step refine: a quarter epoch; 500 QAT steps) where the
    # whole split would take 6,129 + 2,043 steps (with the 4-layer stage, more than a 3-hour session
    # on 2 cores). The labels give SST-2's step counts.
    def prune_steps(final_lambda: float, steps: int = 1000, refine_epochs: float = 0.25) -> Stage:
        return Stage("pruning", BlockPruningConfig.hybrid_filled(final_lambda=final_lambda, refine_epochs=refine_epochs, **{**SCHEDULE, "score_learning_rate": score_lr}),
                     train=TrainConfig(**{**train.to_dict(), "max_steps": steps}))
    # 3× the pruning steps: the density falls with λ × the steps it acts (λ3 over 3,000 steps ends at
    # λ10-over-1,000's density, 0.13; λ1.5 aims at λ5's, 0.23) and the longer schedule has more steps
    # to recover: the tries for ≤ 1 point at ≥ 10× and ≤ 2 points at ≥ 20× after int8
    def gentle(final_lambda: float) -> Stage:
        return prune_steps(final_lambda, steps=3000, refine_epochs=0.5)
    int8_7w_500 = Stage("quantization", QuantizationConfig(weight_bits=7), train=TrainConfig(**{**qat.to_dict(), "max_steps": 500}))
    return {
        "4 layers": [four],
        "3 layers": [three],
        "2 layers": [Stage("depth", DepthConfig(num_layers=2))],
        "3 layers → hybrid_filled λ10": [three, prune],
        "3 layers → hybrid_filled λ10 → int8": [three, prune, int8],
        "3 layers → hybrid_filled λ10 → int8 (7-bit weights)": [three, prune, int8_7w],
        "4 layers → hybrid_filled λ10": [four, prune],
        "4 layers → hybrid_filled λ10 → int8 (7-bit weights)": [four, prune, int8_7w],
        "4 layers → hybrid_filled λ10 (1,000 + 511 steps)": [four, prune_steps(10.0)],
        "4 layers → hybrid_filled λ10 (1,000 + 511 steps) → int8 (7-bit weights, 500 steps)": [four, prune_steps(10.0), int8_7w_500],
        "4 layers → int8 (7-bit weights, 500 steps)": [four, int8_7w_500],
        "4 layers → hybrid_filled λ3 (3,000 + 1,022 steps)": [four, gentle(3.0)],
        "4 layers → hybrid_filled λ3 (3,000 + 1,022 steps) → int8 (7-bit weights, 500 steps)": [four, gentle(3.0), int8_7w_500],
        "4 layers → hybrid_filled λ4 (3,000 + 1,022 steps)": [four, gentle(4.0)],
        "4 layers → hybrid_filled λ4 (3,000 + 1,022 steps) → int8 (7-bit weights, 500 steps)": [four, gentle(4.0), int8_7w_500],
        "4 layers → hybrid_filled λ5 (3,000 + 1,022 steps)": [four, gentle(5.0)],
        "4 layers → hybrid_filled λ5 (3,000 + 1,022 steps) → int8 (7-bit weights, 500 steps)": [four, gentle(5.0), int8_7w_500],
        "4 layers → hybrid_filled λ1.5 (3,000 + 1,022 steps)": [four, gentle(1.5)],
        "4 layers → hybrid_filled λ1.5 (3,000 + 1,022 steps) → int8 (7-bit weights, 500 steps)": [four, gentle(1.5), int8_7w_500],
        "4 layers → hybrid_filled λ5 (1,000 + 511 steps)": [four, prune_steps(5.0)],
        "4 layers → hybrid_filled λ5 (1,000 + 511 steps) → int8 (7-bit weights, 500 steps)": [four, prune_steps(5.0), int8_7w_500],
        # the comparisons the other tables owe: each method alone, same budget, same teacher, same run
        # (and, on SST-2, the same out-of-distribution evaluation)
        "hybrid_filled λ10 (6 layers)": [prune],
        "int8 (7-bit weights, 6 layers)": [int8_7w],
        "KroneckerBERT 8× (capacity; stage 1: 16,000 general_en passages)": [kronecker8],
    }


def show_out_of_distribution(rows) -> None:
    """Put each row's rotten_tomatoes accuracy in the table, beside its SST-2 test metric."""
    for row in rows:
        if row.extra.get("rotten_tomatoes_accuracy") is not None:
            row.extra["secondary_metrics"] = {**row.extra.get("secondary_metrics", {}), "rotten_tomatoes": row.extra["rotten_tomatoes_accuracy"]}


def _out_of_distribution(path: Path, max_length: int) -> float:
    """Accuracy on rotten_tomatoes' test split of an SST-2 model (same labels: negative, positive)."""
    task = TaskConfig(task="rotten_tomatoes").load(seed=0)
    model = leanformer.load(path)
    tokenizer = load_tokenizer(path, model.config.vocab_size)
    return evaluate_model(model, tokenizer, task, "test", batch_size=128, max_length=max_length, progress=False)["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=list(STUDENT_TRAIN))
    parser.add_argument("--variants", nargs="+", default=None, help="row labels to run (default: all)")
    add_budget_arguments(parser)
    add_score_lr_argument(parser)  # tags only the rows that prune
    args = parser.parse_args()
    command = command_line()

    for name in args.tasks:
        teacher_path = _teacher(name)
        settings, budget = student_budget(STUDENT_TRAIN[name], args.train_samples, args.epochs)
        task = TaskConfig(task=name, max_train_samples=settings.pop("max_train_samples", None)).load(seed=0)
        train = TrainConfig(**{"max_length": 128, "batch_size": 32, "learning_rate": args.lr, "report_to": "none", "logging_steps": 50, **settings})
        variants = _variants(train, args.score_lr)
        students, finished = [], {}
        for label in args.variants or list(variants):
            # as pruning.py tags its rows: "4 layers → hybrid_filled λ10 [2500×2, score lr 0.2]"
            tags = [budget] if budget else []
            if any(stage.method == "pruning" for stage in variants[label]):
                tags += score_lr_tags(args.score_lr)
            tag = f" [{', '.join(tags)}]" if tags else ""
            out = run_dir(RUNS, name, label + tag)
            if not (out / "leanformer_metrics.json").is_file():
                print(f"== {name}: {label}{tag}", flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                reuse_finished_prefix(out, variants[label], finished)
                distil_recipe(teacher_path, Recipe(variants[label]), task, out, train=train, overwrite=True, resume=True)
            finished[label] = (variants[label], out)
            record = json.loads((out / "leanformer_metrics.json").read_text())
            per_step, seconds = stage_costs(out, variants[label])  # every stage's, also one reused from another row
            extra = dict(recipe=[s.to_dict() for s in variants[label]], train_seconds=seconds, seconds_per_step=per_step,
                         metrics_test=record["metrics"]["test"], epochs=train.epochs)
            if name == "glue/sst2" and not args.train_only:
                extra["rotten_tomatoes_accuracy"] = _out_of_distribution(out, train.max_length)
            students.append((Candidate(label + tag, out, method="+".join(s.method for s in variants[label]),
                                       metric=record["metrics"]["test"][task.spec.primary_metric]), extra))
        if args.train_only:
            continue
        measured = measure_students(teacher_path, students, task, repeats=args.repeats, command=command, max_length=train.max_length)
        if name == "glue/sst2":
            measured[0].extra["rotten_tomatoes_accuracy"] = _out_of_distribution(teacher_path, train.max_length)
        show_out_of_distribution(measured)
        record_rows(measured, HERE / "results" / "depth.json", HERE / "depth.md", title=TITLE, command=command)
        write_baselines()  # the fewer-layers baseline under pruning.md's and kronecker.md's tables


if __name__ == "__main__":
    main()
