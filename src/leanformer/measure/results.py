"""Benchmark results: one JSON file per benchmark, markdown tables generated from it.

Rules:
- A `BenchmarkRow` is one compressed model (or the teacher) on one task, with the teacher's
  numbers alongside, so every ratio in a table comes from numbers measured in the same run.
  Numbers not measured are None and show as "—".
- `write_results` writes a JSON list of row objects atomically (temporary file in the same
  directory, then `os.replace`), so an interrupted benchmark never leaves a half-written file.
- Tables are generated from the JSON (`render_benchmark`), never edited by hand. A markdown file
  begins with its title and the command that produced the numbers, in a code block.
- Derived columns: Δ = metric − teacher metric; compression = teacher params / params; size ratio
  = teacher bytes / bytes; speedup = teacher latency / latency (batch 1 and 32); FLOP reduction =
  teacher FLOPs / FLOPs. Larger ratios are better. A row whose `method` is "teacher" fills any
  missing teacher numbers from its own, so it shows 1.00×. Sizes are in MB (10^6 bytes).
- Rows record the CPU they were measured on (`extra["cpu"]`, by `benchmark`) and the GPU when the
  model ran on one (`extra["device"]`, which then names the row's machine); the legend names it,
  and when a file holds rows of several machines a last column marks each row's (A, B, ...).
- A run (one command on one machine) measures its teacher beside its students; the file keeps one
  teacher row per run (`merge_results`) and the table shows it above that run's rows, so the
  absolute times of every row can be read against the teacher they were divided by.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import DataError

TEACHER_METHOD = "teacher"


@dataclass
class BenchmarkRow:
    model: str
    method: str
    task: str
    metric_name: str | None = None
    metric: float | None = None
    teacher_metric: float | None = None
    params: int | None = None
    teacher_params: int | None = None
    bytes: int | None = None
    teacher_bytes: int | None = None
    latency_b1_ms: float | None = None
    latency_b32_ms: float | None = None
    teacher_latency_b1_ms: float | None = None
    teacher_latency_b32_ms: float | None = None
    flops_per_token: int | None = None
    teacher_flops_per_token: int | None = None
    command: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # free-form, e.g. heads kept per layer

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # `extra` stays a nested dict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BenchmarkRow":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"unknown benchmark row fields {unknown}; known: {sorted(known)}")
        missing = [name for name in ("model", "method", "task") if name not in data]
        if missing:
            raise DataError(f"benchmark row lacks required fields {missing}: {data}")
        return cls(**data)


def write_results(rows: Iterable[BenchmarkRow], path: str | Path) -> None:
    """Write rows as a JSON list, atomically (temp file + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_text_atomically(path, json.dumps([row.to_dict() for row in rows], indent=2) + "\n")


def read_results(path: str | Path) -> list[BenchmarkRow]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of benchmark rows, got {type(data).__name__}")
    return [BenchmarkRow.from_dict(item) for item in data]


def run_of(row: BenchmarkRow) -> tuple[str | None, str]:
    """The run that measured a row: its command on its machine."""
    return row.command, machine_of(row)


def merge_results(recorded: Iterable[BenchmarkRow], measured: Iterable[BenchmarkRow]) -> list[BenchmarkRow]:
    """`recorded` rows updated by one run's `measured` rows. A model's row on a (task, machine) is
    replaced by its newer measurement; a row of another machine stays beside it. Teacher rows are
    kept one per run, because each student's ratios are against the teacher timed in its own run;
    an older run's teacher row goes once none of that run's rows is left."""
    def key(r: BenchmarkRow) -> tuple:
        return r.model, r.task, machine_of(r), run_of(r) if r.method == TEACHER_METHOD else None

    measured = list(measured)
    rows = {key(r): r for r in recorded}
    rows.update({key(r): r for r in measured})
    runs_with_rows = {(r.task, run_of(r)) for r in rows.values() if r.method != TEACHER_METHOD} | {(r.task, run_of(r)) for r in measured}
    return [r for r in rows.values() if (r.task, run_of(r)) in runs_with_rows]


def _write_text_atomically(path: Path, text: str) -> None:
    # same directory as the target: os.replace is atomic only within one file system
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- markdown ----

_MISSING = "—"


def _ratio(teacher: float | None, value: float | None) -> str:
    if teacher is None or value is None or value == 0:
        return _MISSING
    return f"{teacher / value:.2f}×"


def _metric_decimals(value: float) -> int:
    # fractions (accuracy 0.912) need more digits than percentages or BLEU (88.72, 26.4)
    return 4 if abs(value) < 1 else 2


def _fmt_metric(value: float | None) -> str:
    return _MISSING if value is None else f"{value:.{_metric_decimals(value)}f}"


def _fmt_delta(value: float | None, teacher: float | None) -> str:
    if value is None or teacher is None:
        return _MISSING
    return f"{value - teacher:+.{_metric_decimals(teacher)}f}"


def _fmt_count(value: float | None) -> str:
    if value is None:
        return _MISSING
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{suffix}"
    return f"{value:g}"


def _fmt_mb(value: int | None) -> str:
    return _MISSING if value is None else f"{value / 1e6:.2f}"


def _fmt_ms(value: float | None) -> str:
    return _MISSING if value is None else f"{value:.1f}"


def _with_own_teacher_numbers(row: BenchmarkRow) -> BenchmarkRow:
    """The teacher row compares with itself: fill missing teacher_* numbers from its own."""
    if row.method != TEACHER_METHOD:
        return row
    own = {
        "teacher_metric": row.metric,
        "teacher_params": row.params,
        "teacher_bytes": row.bytes,
        "teacher_latency_b1_ms": row.latency_b1_ms,
        "teacher_latency_b32_ms": row.latency_b32_ms,
        "teacher_flops_per_token": row.flops_per_token,
    }
    return dataclasses.replace(row, **{k: v for k, v in own.items() if getattr(row, k) is None})


_HEADER = (
    "Model", "Method", "Task", "Metric", "Δ vs teacher", "Params", "Compression", "Size MB", "Size ratio",
    "b1 ms", "Speedup b1", "b32 ms", "Speedup b32", "FLOPs/token", "FLOP reduction",
)


def markdown_table(rows: Iterable[BenchmarkRow], *, title: str | None = None, cpu_marks: dict[str, str] | None = None) -> str:
    """A markdown table of rows with derived ratio columns (rules: module docstring); `cpu_marks`
    (CPU name -> mark) adds a last column with the mark of the CPU each row was measured on."""
    header = [*_HEADER, "CPU"] if cpu_marks else _HEADER
    lines = []
    if title:
        lines += [f"## {title}", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in map(_with_own_teacher_numbers, rows):
        metric = _fmt_metric(row.metric)
        if row.metric_name and row.metric is not None:
            metric = f"{row.metric_name} {metric}"
        # other evaluations of the same model, e.g. {"beam 4": 30.3} next to greedy BLEU
        secondary = row.extra.get("secondary_metrics") or {}
        if secondary:
            metric += " (" + ", ".join(f"{k}: {_fmt_metric(v)}" for k, v in secondary.items()) + ")"
        cells = (
            row.model, row.method, row.task, metric, _fmt_delta(row.metric, row.teacher_metric),
            _fmt_count(row.params), _ratio(row.teacher_params, row.params),
            _fmt_mb(row.bytes), _ratio(row.teacher_bytes, row.bytes),
            _fmt_ms(row.latency_b1_ms), _ratio(row.teacher_latency_b1_ms, row.latency_b1_ms),
            _fmt_ms(row.latency_b32_ms), _ratio(row.teacher_latency_b32_ms, row.latency_b32_ms),
            _fmt_count(row.flops_per_token), _ratio(row.teacher_flops_per_token, row.flops_per_token),
        )
        if cpu_marks:
            cells += (cpu_marks[machine_of(row)],)
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def machine_of(row: BenchmarkRow) -> str:
    """The machine a row's latency was measured on: its accelerator when it ran on one, else its CPU
    with its integer path (one model name covers AVX2-only and VNNI parts, e.g. "AMD EPYC" in a VM,
    and their int8 ratios differ)."""
    if row.extra.get("device"):
        return row.extra["device"]
    cpu = row.extra.get("cpu", "not recorded")
    flags = row.extra.get("cpu_flags")
    return f"{cpu} ({', '.join(flags)})" if flags else cpu


def render_benchmark(results_json_path: str | Path, markdown_path: str | Path, *, title: str, command: str) -> None:
    """Regenerate a benchmark's markdown file from its JSON results: title, commands, table, legend.

    Rows measured by different runs keep their own command: every distinct one is listed (first
    seen first), so the header never claims one command produced rows that another run measured.
    Rows are grouped by task, then by the run that measured them (first seen first), the run's teacher
    first, the others in the order they were recorded.
    """
    rows = read_results(results_json_path)
    tasks = list(dict.fromkeys(r.task for r in rows))  # a task's rows stay together, also those a later run added
    runs = list(dict.fromkeys((r.task, run_of(r)) for r in rows))
    rows = sorted(rows, key=lambda r: (tasks.index(r.task), runs.index((r.task, run_of(r))), r.method != TEACHER_METHOD))
    commands = list(dict.fromkeys(r.command for r in rows if r.command)) or [command]
    cpus = list(dict.fromkeys(map(machine_of, rows)))  # first seen first
    # one CPU: named in the legend; several: a column marks each row's CPU (ratios do not carry over)
    marks = {name: chr(ord("A") + i) for i, name in enumerate(cpus)} if len(cpus) > 1 else None
    cpu_legend = "; ".join(f"{marks[name]}: {name}" if marks else name for name in cpus)
    teachers = [r.task for r in rows if r.method == TEACHER_METHOD]
    several_runs = (" A task measured by several runs shows each run's teacher row above that run's rows: the times they were divided by."
                    if len(teachers) > len(set(teachers)) else "")
    text = "\n".join(
        [
            f"# {title}",
            "",
            "```",
            *commands,
            "```",
            "",
            markdown_table(rows, cpu_marks=marks),
            "Generated from `" + Path(results_json_path).name + "`; do not edit by hand. "
            "Ratios are teacher ÷ model, measured in the same run (larger is better); "
            "Δ is metric − teacher metric; MB = 10^6 bytes." + several_runs,
            f"CPU (a row's ratios hold for its CPU only): {cpu_legend}.",
            "",
        ]
    )
    path = Path(markdown_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_text_atomically(path, text)
