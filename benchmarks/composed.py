"""Composed methods on MiniLM-L6 / SST-2: prune_then_int8 and kronecker_then_int8 against the teacher
and against each single method, all measured in one interleaved run.

    .venv/bin/python benchmarks/composed.py [--repeats 10] [--pruned "hybrid_filled λ10 [16000×3]"] [--kronecker LABEL]
        [--compositions prune_then_int8]   # one composition only (and the single-method rows it needs)

Reuses the students of the single-method benchmarks (run them first, from the same directory):
benchmarks/pruning.py (hybrid filled, λ = 10), benchmarks/kronecker.py (8×, stage 1 + intermediate
losses) and benchmarks/quantization.py (8-bit QAT). The int8 stage of each composition is 8-bit QAT
of that student (1 epoch, distilled from the same teacher), as in recipes/prune_then_int8.yaml and
recipes/kronecker_then_int8.yaml. `--pruned`/`--kronecker` pick another row of those benchmarks
(e.g. a longer-trained student) as the base; its rows are labelled with it. Quantized students run as int8 ONNX in onnxruntime (their
deployed form), the others in PyTorch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from leanformer.benchmark import Candidate, benchmark
from leanformer.distill import DistillationConfig
from leanformer.methods.quantization import QuantizationConfig
from leanformer.student import distil_student
from leanformer.data import TaskConfig
from leanformer.teacher import FinetuneConfig, finetune, teacher_metrics
from leanformer.training import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from common import command_line, record_rows, run_dir  # noqa: E402
from teacher import teacher_settings  # noqa: E402

HERE = Path(__file__).parent
RUNS = Path("runs/bench/composed")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--pruned", default="hybrid_filled λ10", help="row label of the pruned student in benchmarks/pruning.md")
    parser.add_argument("--kronecker", default="kron8x+stage1+intermediate", help="row label of the student in benchmarks/kronecker.md")
    parser.add_argument("--compositions", nargs="+", default=["prune_then_int8", "kronecker_then_int8"], choices=["prune_then_int8", "kronecker_then_int8"],
                        help="which compositions (and their single-method rows) to train and measure")
    parser.add_argument("--train_only", action="store_true", help="train the compositions and stop (measure later, on a quiet machine)")
    args = parser.parse_args()
    command = command_line()
    # the default students keep their historical row labels; others are named after their benchmark row
    if args.pruned == "hybrid_filled λ10":
        pruned, prune_int8 = "pruning (hybrid filled λ10)", "prune_then_int8"
    else:
        pruned, prune_int8 = f"pruning ({args.pruned})", f"prune_then_int8 ({args.pruned})"
    if args.kronecker == "kron8x+stage1+intermediate":
        kron, kron_int8 = "kronecker 8×", "kronecker_then_int8"
    else:
        kron, kron_int8 = f"kronecker ({args.kronecker})", f"kronecker_then_int8 ({args.kronecker})"
    SINGLE = {"int8 QAT": Path("runs/bench/quantization/sst2-qat8")}
    COMPOSED = {}
    if "prune_then_int8" in args.compositions:
        SINGLE[pruned] = run_dir(Path("runs/bench/pruning"), "glue/sst2", args.pruned)
        COMPOSED[prune_int8] = pruned
    if "kronecker_then_int8" in args.compositions:
        SINGLE[kron] = run_dir(Path("runs/bench/kronecker"), "glue/sst2", args.kronecker)
        COMPOSED[kron_int8] = kron
    missing = [str(p) for p in SINGLE.values() if not (p / "leanformer_metrics.json").is_file()]
    if missing:
        sys.exit(f"run the single-method benchmarks first (missing {', '.join(missing)})")
    teacher_path = finetune(FinetuneConfig(model="minilm"), *teacher_settings("glue/sst2"))
    task = TaskConfig(task="glue/sst2", max_train_samples=8000).load(seed=0)
    train = TrainConfig(epochs=1.0, learning_rate=2e-5, max_length=128, batch_size=32, report_to="none", logging_steps=50)
    students = dict(SINGLE)
    for name, base in COMPOSED.items():
        out = run_dir(RUNS, "sst2", name)
        if not (out / "leanformer_metrics.json").is_file():
            print(f"== {name}", flush=True)
            distil_student(teacher_path, QuantizationConfig(), task, train, DistillationConfig(), out, overwrite=True, resume=True, init_student=SINGLE[base])
        students[name] = out
    if args.train_only:
        return

    def metric(path: Path) -> float:
        return json.loads((path / "leanformer_metrics.json").read_text())["metrics"]["test"]["accuracy"]

    record = teacher_metrics(teacher_path)
    teacher = Candidate("teacher", teacher_path, metric=record["metrics"]["test"]["accuracy"])
    # quantized students are evaluated as deployed (int8 ONNX): metric left to the benchmark
    candidates = [Candidate(label, path, metric=None if "int8" in label else metric(path)) for label, path in students.items()]
    rows = benchmark(teacher, candidates, task, repeats=args.repeats, command=command)
    for row, (label, path) in zip(rows[1:], students.items()):
        row.extra["fake_quant_accuracy" if "int8" in label else "accuracy_pytorch"] = metric(path)
    record_rows(rows, HERE / "results" / "composed.json", HERE / "composed.md", title="Composed methods on MiniLM-L6, SST-2 (test split)", command=command)


if __name__ == "__main__":
    main()
