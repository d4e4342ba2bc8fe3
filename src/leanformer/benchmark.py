"""Benchmark students against their teacher in one run: metric, size, FLOPs and CPU latency as ratios."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .api import deployed_runtime, export, load, load_tokenizer, recipe_of
from .architectures import max_sequence_length
from .errors import ConfigError
from .data import TaskData
from .evaluation import evaluate_model
from .deploy.encoder import OnnxClassifier
from .measure import (
    TEACHER_METHOD,
    BenchmarkRow,
    bytes_on_disk,
    compare_latency,
    count_parameters,
    cpu_flags,
    cpu_name,
    device_name,
    dummy_inputs,
    flops_per_token,
    forward_callable,
    int8_path,
)


@dataclass
class Candidate:
    """A saved model to benchmark; `metric` skips evaluation when it is already known.

    `runtime`: "torch" runs the PyTorch model; "onnx" exports it and runs onnxruntime; "auto" (the
    default) deploys models whose method names a `deployed_runtime` (quantization: int8 ONNX, its
    real form, as fake quantization in PyTorch is slower than float) and runs the rest in PyTorch.
    """

    label: str
    path: Path
    method: str | None = None
    metric: float | None = None
    runtime: str = "auto"


def _deploy_onnx(model: nn.Module, directory: Path, threads: int) -> tuple[Path, object]:
    path = export(model, directory / "model.onnx")
    return path, OnnxClassifier(path, threads=threads, spinning=False)  # timed interleaved with PyTorch


def _onnx_forward_callable(runner, model: nn.Module, batch_size: int, seq_len: int):
    inputs = dummy_inputs(model, batch_size, seq_len)
    return lambda: runner(**inputs)


def _method_name(model: nn.Module) -> str:
    stages = recipe_of(model)
    return "+".join(stage["method"] for stage in stages) or "dense"


def benchmark(
    teacher: Candidate,
    students: list[Candidate],
    task: TaskData,
    *,
    split: str = "test",
    seq_len: int = 128,
    batch_sizes: tuple[int, int] = (1, 32),
    threads: int = 2,
    repeats: int = 10,
    warmup: int = 3,
    eval_batch_size: int = 64,
    max_length: int = 128,
    command: str = "",
    progress: bool = True,
    device: str = "cpu",
) -> list[BenchmarkRow]:
    """One row per model (teacher first). Latencies of all models are measured interleaved.
    `device`: where the PyTorch models run ("cuda" for a GPU; ONNX models run on the CPU)."""
    candidates = [teacher, *students]
    models = {c.label: load(c.path) for c in candidates}
    deployed = {}  # label -> (onnx file, onnxruntime runner)
    workdir = tempfile.TemporaryDirectory(prefix="leanformer-bench-")
    for c in candidates:
        if c.runtime not in ("auto", "torch", "onnx"):
            raise ConfigError(f"runtime {c.runtime!r} of {c.label!r} is not one of auto, torch, onnx")
        if c.runtime == "onnx" or (c.runtime == "auto" and deployed_runtime(models[c.label])):
            deployed[c.label] = _deploy_onnx(models[c.label], Path(workdir.name) / c.label.replace("/", "_"), threads)
    on_device = {label: model.to(device) for label, model in models.items() if label not in deployed}
    for c in candidates:
        limit = max_sequence_length(models[c.label].config)
        if limit is not None and seq_len > limit:
            raise ConfigError(f"sequence length {seq_len} exceeds the maximum {limit} of {c.path}: pass --seq_len {limit} or less")
    metric_name = task.spec.primary_metric
    metrics = {}
    for c in candidates:
        if c.metric is None:
            tokenizer = load_tokenizer(c.path, models[c.label].config.vocab_size)
            runner = deployed[c.label][1] if c.label in deployed else models[c.label]
            result = evaluate_model(runner, tokenizer, task, split, batch_size=eval_batch_size, max_length=max_length, progress=progress)
            metrics[c.label] = result[metric_name]
        else:
            metrics[c.label] = c.metric

    latencies = {}
    for batch_size in batch_sizes:
        fns = {
            label: _onnx_forward_callable(deployed[label][1], model, batch_size, seq_len) if label in deployed else forward_callable(model, batch_size, seq_len)
            for label, model in models.items()
        }
        latencies[batch_size] = compare_latency(fns, warmup=warmup, repeats=repeats, threads=threads, progress=progress,
                                                devices={label: device for label in on_device})

    def measured(label: str, path: Path) -> dict:
        model = models[label]
        return dict(
            metric=metrics[label],
            params=count_parameters(model)["total"],
            bytes=deployed[label][0].stat().st_size if label in deployed else bytes_on_disk(path),
            latency_b1_ms=latencies[batch_sizes[0]][label].median_ms,
            latency_b32_ms=latencies[batch_sizes[1]][label].median_ms,
            flops_per_token=flops_per_token(model, seq_len),
        )

    t = measured(teacher.label, teacher.path)
    cpu, flags, path = cpu_name(), cpu_flags(), int8_path()
    accelerator = device_name(device)
    rows = []
    for c in candidates:
        m = measured(c.label, c.path)
        rows.append(
            BenchmarkRow(
                model=c.label,
                method=TEACHER_METHOD if c is teacher else (c.method or _method_name(models[c.label])),
                task=task.spec.name,
                metric_name=metric_name,
                metric=m["metric"],
                teacher_metric=t["metric"],
                params=m["params"],
                teacher_params=t["params"],
                bytes=m["bytes"],
                teacher_bytes=t["bytes"],
                latency_b1_ms=m["latency_b1_ms"],
                latency_b32_ms=m["latency_b32_ms"],
                teacher_latency_b1_ms=t["latency_b1_ms"],
                teacher_latency_b32_ms=t["latency_b32_ms"],
                flops_per_token=m["flops_per_token"],
                teacher_flops_per_token=t["flops_per_token"],
                command=command,
                extra={"cpu": cpu, "cpu_flags": flags, "int8_path": path, "seq_len": seq_len, "threads": threads, "repeats": repeats, "batch_sizes": list(batch_sizes), "params_by_kind": count_parameters(models[c.label]),
                       "runtime": (deployed_runtime(models[c.label]) or "onnxruntime") if c.label in deployed else "pytorch",
                       **({"device": accelerator} if accelerator and c.label in on_device else {})},
            )
        )
    workdir.cleanup()
    return rows
