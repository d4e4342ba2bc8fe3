"""`leanformer report RUN_DIR...`: one markdown page and PNG plots from what runs measured.

A run directory is anything leanformer wrote: a benchmark's `results.json` (rows measured against
the teacher in one run, e.g. `leanformer demo`'s output directory) and/or saved students
(`leanformer_metrics.json`, `training_log.json`, the recipe in config.json). Plots, each drawn
only when the runs hold its data:
- accuracy vs speed-up (batch 32) and vs size reduction over the teacher of the same run, one panel per
  task (and CPU), every method and composition on it, teachers starred, Pareto front drawn;
- training curves: task, distillation and regularisation losses, and any schedule a method logs
  (pruning threshold and mask density), phases one after another on one step axis;
- each method's own figures (`Method.report_figures`): heads and FFN width kept per layer of every
  pruned student, activation ranges of every quantized student.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from .api import saved_recipe  # noqa: E402
from .errors import DataError  # noqa: E402
from .measure import TEACHER_METHOD, BenchmarkRow, machine_of, markdown_table, read_results  # noqa: E402
from .registry import registered_methods  # noqa: E402
from .student import TRAINING_LOG_FILE  # noqa: E402
from .teacher import METRICS_FILE  # noqa: E402

RESULTS_FILE = "results.json"


def collect(run_dirs: list[str | os.PathLike]) -> tuple[list[BenchmarkRow], list[Path]]:
    """Benchmark rows and student directories found in the runs (a run may also be a results .json)."""
    rows, students = [], []
    for run in map(Path, run_dirs):
        if run.is_file() and run.suffix == ".json":
            rows += read_results(run)
            continue
        if not run.is_dir():
            raise DataError(f"{str(run)!r} is neither a run directory nor a results .json file")
        if (run / RESULTS_FILE).is_file():
            rows += read_results(run / RESULTS_FILE)
        for candidate in [run, *sorted(p for p in run.iterdir() if p.is_dir())]:
            if (candidate / METRICS_FILE).is_file() and (candidate / "config.json").is_file():
                students.append(candidate)
    if not rows and not students:
        raise DataError(f"no measurements in {', '.join(map(str, run_dirs))}: expected a {RESULTS_FILE} or saved students")
    return rows, students


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x, higher y), by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


# x: what a student gains over the teacher measured in the same run (ratios of different runs of
# one task share an axis; absolute times of different runs or CPUs would not)
_X_AXES = {
    "latency": (lambda r: r.teacher_latency_b32_ms / r.latency_b32_ms, "speed-up over its teacher (batch 32, seq 128; ×, log scale)"),
    "size": (lambda r: r.teacher_bytes / r.bytes, "smaller than its teacher (bytes on disk; ×, log scale)"),
}
_NEEDS = {"latency": ("latency_b32_ms", "teacher_latency_b32_ms"), "size": ("bytes", "teacher_bytes")}


def tradeoff_figure(rows: list[BenchmarkRow], x: str) -> Figure | None:
    """Metric against speed-up or size reduction over the teacher: one panel per task (and per CPU,
    when rows come from several), every method and composition on it, teachers starred at 1×, the
    Pareto front joined. Rows of several runs (e.g. benchmarks/results/*.json) share a panel."""
    ratio, label = _X_AXES[x]
    usable = [r for r in rows if r.metric is not None and all(getattr(r, f) for f in _NEEDS[x])]
    if not usable:
        return None
    cpus = {machine_of(r) for r in usable}
    panels: dict[tuple[str, str], list[BenchmarkRow]] = {}
    for row in usable:
        panels.setdefault((row.task, machine_of(row) if len(cpus) > 1 else ""), []).append(row)
    panels = {key: panel for key, panel in panels.items() if any(r.method != TEACHER_METHOD for r in panel)} or panels
    methods = sorted({r.method for r in usable if r.method != TEACHER_METHOD})
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    columns = min(3, len(panels))
    rows_of_panels = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(6.4 * columns, 4.6 * rows_of_panels), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.remove()
    for ax, ((task, cpu), panel) in zip(axes.flat, panels.items()):
        points = [(ratio(r), r.metric) for r in panel]
        for (px, py), row in zip(points, panel):
            teacher = row.method == TEACHER_METHOD
            ax.scatter(px, py, marker="*" if teacher else "o", s=160 if teacher else 40, zorder=3,
                       color="black" if teacher else colors[row.method])
            if not teacher:
                ax.annotate(row.model, (px, py), textcoords="offset points", xytext=(5, 4), fontsize=7)
        front = pareto_front([(-px, py) for px, py in points])  # more gain and more metric are better
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color="tab:orange", label="Pareto front", zorder=2)
        for method in sorted({r.method for r in panel if r.method != TEACHER_METHOD}):
            ax.scatter([], [], color=colors[method], label=method)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel(" / ".join(sorted({r.metric_name for r in panel if r.metric_name})) or "metric")
        ax.set_title(f"{task}{f' ({cpu})' if cpu else ''} (★ teacher)")
        ax.legend(loc="best", fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _loss_names(logs: list[list[dict]]) -> list[str]:
    """Every loss the logs hold ("loss" = the total, then "loss_<term>" in order of appearance)."""
    names = {k: None for log in logs for e in log for k in e if k == "loss" or k.startswith("loss_")}
    return sorted(names, key=lambda k: k != "loss")


def _schedule_names() -> list[str]:
    """The log values methods ask to plot (`Method.plotted_log_values`, e.g. pruning's threshold)."""
    return [name for method in registered_methods() for name in method.plotted_log_values]


def _log(student: Path) -> tuple[list[dict], list[tuple[float, str]]]:
    """The training log lines that carry losses, on one step axis, and where each later phase starts."""
    path = student / TRAINING_LOG_FILE
    if not path.is_file():
        return [], []
    log, phase_starts = _phases_in_sequence(json.loads(path.read_text()))
    return [e for e in log if "loss" in e], phase_starts


def _phases_in_sequence(log: list[dict]) -> tuple[list[dict], list[tuple[float, str]]]:
    """The log with each phase's steps offset by the last step of the phases before it, and
    (step, phase) where each later phase starts. A phase (e.g. distillation, then refine) is a
    Trainer of its own, so its step counter restarts at 0."""
    placed, phase_starts = [], []
    offset = last_step = 0
    for i, entry in enumerate(log):
        if placed and entry.get("phase") != placed[-1].get("phase"):
            offset = last_step
            phase_starts.append((offset, entry.get("phase")))
        last_step = offset + entry.get("step", i)
        placed.append({**entry, "step": last_step})
    return placed, phase_starts


def _mark_phase_starts(ax, phase_starts: list[tuple[float, str]]) -> None:
    for step, phase in phase_starts:
        ax.axvline(step, color="grey", linewidth=0.6)
        # x in data, y in axes coordinates: the label sits at the top whatever the y scale
        ax.text(step, 0.98, f" {phase}", transform=ax.get_xaxis_transform(), fontsize=6, color="grey", va="top")


def _curve_label(name: str) -> str:
    return "total" if name == "loss" else name.removeprefix("loss_").replace("_", " ")


def curves_figure(students: list[Path]) -> Figure | None:
    """One panel of training losses per student (a loss keeps its colour across panels), then the
    schedules methods log (pruning: threshold and mask density) of every student that has them.
    Training phases (e.g. distillation, then refine) follow one another on the step axis, a grey
    line where each starts."""
    logs = [(s, *_log(s)) for s in students]
    logs = [(s, log, starts) for s, log, starts in logs if log]
    if not logs:
        return None
    losses, schedule = _loss_names([log for _, log, _ in logs]), _schedule_names()
    scheduled = [(s, log, starts) for s, log, starts in logs if any(n in e for e in log for n in schedule)]
    panels = len(logs) + bool(scheduled)
    cols = min(3, panels)
    fig, axes = plt.subplots(-(-panels // cols), cols, figsize=(4.3 * cols, 3.3 * -(-panels // cols)), squeeze=False)
    flat = list(axes.ravel())
    colours = {name: f"C{i % 10}" for i, name in enumerate(losses)}
    for ax, (student, log, phase_starts) in zip(flat, logs):
        for name in losses:
            points = [(e["step"], e[name]) for e in log if e.get(name, 0) > 0]
            if points:
                ax.plot(*zip(*points), label=_curve_label(name), color=colours[name], linewidth=1.2)
        _mark_phase_starts(ax, phase_starts)
        ax.set_yscale("log")
        ax.set_ylabel("loss (log scale)")
        ax.set_title(student.name, fontsize=10)
    if scheduled:
        ax = flat[len(logs)]
        for student, log, phase_starts in scheduled:
            for name, style in zip(schedule, ("-", "--", ":", "-.")):
                points = [(e["step"], e[name]) for e in log if name in e]
                if points:
                    ax.plot(*zip(*points), style, label=f"{student.name}: {name}", linewidth=1.2)
            _mark_phase_starts(ax, phase_starts)
        ax.set_ylabel(" / ".join(n.replace("_", " ") for n in schedule))
        ax.set_title("schedules", fontsize=10)
    for ax in flat[:panels]:
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    for ax in flat[panels:]:
        fig.delaxes(ax)
    fig.tight_layout()
    return fig


def write_report(run_dirs: list[str | os.PathLike], output_dir: str | os.PathLike) -> Path:
    """report.md and its PNG plots in `output_dir`; returns the report's path."""
    rows, students = collect(run_dirs)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "accuracy_vs_latency.png": ("Accuracy vs latency", tradeoff_figure(rows, "latency")),
        "accuracy_vs_size.png": ("Accuracy vs size", tradeoff_figure(rows, "size")),
        "training_curves.png": ("Training curves", curves_figure(students)),
    }
    # each method draws what only it knows (pruning: what it kept; quantization: activation ranges)
    for method in registered_methods():
        figures.update({f.file: (f.title, f.figure) for f in method.report_figures(students)})
    lines = ["# leanformer report", "", f"Runs: {', '.join(f'`{r}`' for r in run_dirs)}", ""]
    if rows:
        lines += [markdown_table(rows), ""]
    for name, (title, fig) in figures.items():
        if fig is None:
            continue
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        lines += [f"## {title}", "", f"![{title}]({name})", ""]
    if students:
        lines += ["## Students", "", "| student | recipe | test metrics |", "|---|---|---|"]
        for s in students:
            metrics = json.loads((s / METRICS_FILE).read_text()).get("metrics", {}).get("test", {})
            recipe = " → ".join(stage["method"] for stage in saved_recipe(s)) or "dense"
            shown = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, (int, float)))
            lines.append(f"| `{s}` | {recipe} | {shown} |")
        lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
