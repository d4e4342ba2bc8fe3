"""The main job: fine-tune MiniLM on SST-2 into a teacher, make a student with every method, compare.

Each registered method contributes a short `demo_config`; the table gains a row per method (and
per composition under a method that `demo_stacks_on_others`) without any change here.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .config import ConfigBase


@dataclass
class DemoConfig(ConfigBase):
    model: str = field(default="minilm", metadata={"help": "Packaged encoder to fine-tune ('minilm' or 'mpnet') or a model directory."})
    task: str = field(default="glue/sst2", metadata={"help": "Task to fine-tune and evaluate on."})
    train_samples: int = field(default=4000, metadata={"help": "Training examples (seeded subsample of the train split)."})
    epochs: float = field(default=1.0, metadata={"help": "Teacher fine-tuning epochs."})
    student_epochs: float = field(default=2.0, metadata={"help": "Student distillation epochs (a method's demo settings may override)."})
    max_length: int = field(default=64, metadata={"help": "Maximum tokens per training example."})
    batch_size: int = field(default=32, metadata={"help": "Training batch size."})
    repeats: int = field(default=5, metadata={"help": "Timed repeats per model and batch size."})
    max_eval_examples: int | None = field(default=None, metadata={"help": "Evaluate on this many test examples (default: all)."})
    methods: list[str] | None = field(
        default=None, metadata={"help": "Only these methods (and the compositions of them); default: every registered method."}
    )
    output_dir: str = field(default="runs/demo", metadata={"help": "Where students, results.json and results.md go."})
    precision: Literal["fp32", "bf16", "fp16"] = field(default="fp32", metadata={"help": "Training arithmetic of teacher and students (bf16: mixed precision)."})
    device: Literal["auto", "cpu"] = field(default="auto", metadata={"help": "Training device: auto (the GPU when there is one) or cpu."})
    benchmark_device: str = field(default="cpu", metadata={"help": "Where the PyTorch models are timed: cpu (the deployment target) or cuda."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})

    def validate(self) -> None:
        from .errors import ConfigError

        if self.benchmark_device != "cpu" and self.benchmark_device.split(":")[0] != "cuda":
            raise ConfigError(f"benchmark_device must be cpu or cuda[:N], got {self.benchmark_device!r}")


def run_demo(cfg: DemoConfig) -> str:
    # here, not at the top: `DemoConfig` (and `leanformer demo --help`) stays import-light
    from transformers import AutoConfig

    from .architectures import get_architecture
    from .benchmark import Candidate, benchmark
    from .data import TaskConfig
    from .measure import markdown_table, write_results
    from .registry import registered_methods
    from .report import write_report
    from .student import distil_student
    from .teacher import FinetuneConfig, finetune, teacher_metrics
    from .training import TrainConfig

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = TrainConfig(
        epochs=cfg.epochs, batch_size=cfg.batch_size, max_length=cfg.max_length, learning_rate=5e-5,
        logging_steps=10, save_steps=200, report_to="none", progress=cfg.progress, precision=cfg.precision, device=cfg.device,
    )
    task_cfg = TaskConfig(task=cfg.task, max_train_samples=cfg.train_samples)
    print(f"[1/3] teacher: fine-tune {cfg.model} on {cfg.task} ({cfg.train_samples} examples; cached after the first run)", flush=True)
    teacher_path = finetune(FinetuneConfig(model=cfg.model), task_cfg, train)
    teacher_record = teacher_metrics(teacher_path)
    task = task_cfg.load(seed=train.seed)
    if cfg.max_eval_examples is not None:
        task.splits["test"] = task.splits["test"].select(range(min(cfg.max_eval_examples, len(task.splits["test"]))))

    spec = get_architecture(AutoConfig.from_pretrained(teacher_path))
    chosen = [m for m in registered_methods() if cfg.methods is None or m.name in cfg.methods]
    for m in chosen:
        if m.unsupported(spec):
            print(f"[2/3] {m.name}: skipped: {m.unsupported(spec)}", flush=True)
    demos = {m.name: m for m in chosen if not m.unsupported(spec) and m.demo_config(spec) is not None}
    # compositions (short versions of presets such as prune_then_int8): a method that deploys last
    # compresses every other method's student
    plan = [(name, None) for name in demos] + [
        (last, first) for last in demos if demos[last].demo_stacks_on_others for first in demos if first != last]
    students = []
    for i, (name, base) in enumerate(plan, 1):
        label = f"{base}+{name}" if base else name
        print(f"[2/3] student {i}/{len(plan)}: {label}", flush=True)
        method = demos[name]
        student_train = TrainConfig(**{**train.to_dict(), "epochs": cfg.student_epochs, "learning_rate": 1e-4, **method.demo_train})
        losses = method.default_distillation()
        path = distil_student(
            teacher_path, method.demo_config(spec), task, student_train, losses, out / label, overwrite=True,
            init_student=out / base if base else None,
        )
        students.append(Candidate(label, path, method=label))
    if not demos:
        print("[2/3] no compression method selected: the table shows the teacher only", flush=True)

    print("[3/3] benchmark: accuracy, size, FLOPs and latency (b1, b32, seq 128) in one run", flush=True)
    # the teacher's test metric is already known from fine-tuning unless the test set was cut
    known = teacher_record["metrics"]["test"][task.spec.primary_metric] if cfg.max_eval_examples is None else None
    teacher = Candidate("teacher", teacher_path, metric=known)
    command = "leanformer demo " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["demo"] else "leanformer.demo.run_demo"
    rows = benchmark(teacher, students, task, repeats=cfg.repeats, max_length=cfg.max_length, command=command, progress=cfg.progress,
                     device=cfg.benchmark_device)
    write_results(rows, out / "results.json")
    table = markdown_table(rows, title=f"leanformer demo: {cfg.model} on {cfg.task}")
    (out / "results.md").write_text(table + "\n")
    report = write_report([out], out / "report")
    print(f"teacher: {teacher_path}\nresults: {out / 'results.json'}, {out / 'results.md'}\nreport: {report}\n")
    return table  # `leanformer demo` prints it last
