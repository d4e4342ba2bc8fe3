"""The baseline a user would pick instead: each pruned student beside the layer-dropped students
about as fast, each Kronecker student beside the layer-dropped ones about as small, appended to
pruning.md and kronecker.md from the rows of results/*.json (regenerated whenever one of those
benchmarks or depth.py records rows: run this file to regenerate by hand).

Speed pairs come from one CPU and one budget (speed ratios do not carry across CPUs; a budget
tag "[16000×2]" is part of the comparison); size pairs may cross CPUs and budgets (size and
FLOPs do not depend on the CPU; the budget is in each label).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from leanformer.measure import BenchmarkRow, machine_of, read_results

HERE = Path(__file__).parent
HEADING = "## The baseline: fewer layers"


def _ratio(row: BenchmarkRow, field: str) -> float | None:
    mine, teachers = getattr(row, field), getattr(row, f"teacher_{field}")
    return teachers / mine if mine and teachers else None


def budget(row: BenchmarkRow) -> str:
    """The training budget in a row's label ("3 layers [16000×2]" -> "16000×2"; "" for the default).
    Other tags are the method's settings, not the budget: "hybrid_filled λ10 [2500×1, score lr 0.2]"
    -> "2500×1", "hybrid_filled λ10 [score lr 0.2]" -> ""."""
    tag = re.search(r"\[([^\]]*)\]\s*$", row.model)
    first = tag.group(1).split(",")[0].strip() if tag else ""
    return first if "×" in first else ""


def same_budget(a: BenchmarkRow, b: BenchmarkRow) -> bool:
    """Trained at the same budget: the same budget tag, or both untagged by one benchmark script (an
    untagged row has its benchmark's default, and defaults differ: SST-2 is 8,000 × 3 in pruning.py,
    all × 2 in depth.py)."""
    if budget(a) != budget(b):
        return False
    return bool(budget(a)) or (_script(a) is not None and _script(a) == _script(b))


def _script(row: BenchmarkRow) -> str | None:
    """The benchmark that measured a row ("python benchmarks/depth.py --tasks ..." -> "depth.py")."""
    words = shlex.split(row.command or "")
    return Path(words[1]).name if len(words) > 1 else None


def _metric(row: BenchmarkRow) -> str:
    text = f"{row.metric_name} {row.metric:.2f} ({row.metric - row.teacher_metric:+.2f})"
    accuracy = (row.extra.get("metrics_test") or {}).get("accuracy")
    if row.metric_name != "accuracy" and accuracy is not None:  # MRPC: F1 alone hides the trivial predictor
        text += f", accuracy {accuracy:.2f}"
    return text


def _verdict(method: str, student: BenchmarkRow, baseline: BenchmarkRow, field: str, gain: str) -> str:
    better, larger = student.metric >= baseline.metric, _ratio(student, field) >= _ratio(baseline, field)
    if better and larger:
        return f"{method}: more accurate and {gain}"
    if not better and not larger:
        return f"fewer layers: more accurate and {gain}"
    winner, other = (method, "fewer layers") if better else ("fewer layers", method)
    return f"trade-off: {winner} {abs(student.metric - baseline.metric):.2f} pt more accurate, {other} {gain}"


def _neighbours(student: BenchmarkRow, baselines: list[BenchmarkRow], field: str) -> list[BenchmarkRow]:
    """The baselines closest below and above the student's ratio (one if all lie on one side)."""
    mine = _ratio(student, field)
    below = [b for b in baselines if _ratio(b, field) <= mine]
    above = [b for b in baselines if _ratio(b, field) > mine]
    return [*([max(below, key=lambda b: _ratio(b, field))] if below else []),
            *([min(above, key=lambda b: _ratio(b, field))] if above else [])]


def speed_pairs(students: list[BenchmarkRow], layer_dropped: list[BenchmarkRow]) -> list[tuple[BenchmarkRow, BenchmarkRow]]:
    """Each student with the layer-dropped students of its task, CPU and budget that bracket its
    batch-32 speed-up (measured on that CPU, each against the teacher of its own run)."""
    pairs = []
    for s in students:
        same = [b for b in layer_dropped if (b.task, machine_of(b)) == (s.task, machine_of(s)) and same_budget(b, s)
                and _ratio(b, "latency_b32_ms") and _ratio(s, "latency_b32_ms")]
        pairs += [(s, b) for b in _neighbours(s, same, "latency_b32_ms")]
    return pairs


def size_pairs(students: list[BenchmarkRow], layer_dropped: list[BenchmarkRow]) -> list[tuple[BenchmarkRow, BenchmarkRow]]:
    """Each student with the layer-dropped student of its task closest in size, alone and composed
    (depth → pruning → int8 is the smallest model a layer-dropped start leads to), of its budget
    where one was trained at it."""
    pairs = []
    for s in students:
        mine = [b for b in layer_dropped if b.task == s.task]
        for same in ([b for b in mine if b.method == "depth"], [b for b in mine if b.method.startswith("depth+")]):
            same = [b for b in same if same_budget(b, s)] or same
            if same:
                pairs.append((s, min(same, key=lambda b: abs(_ratio(b, "bytes") / _ratio(s, "bytes") - 1))))
    return pairs


def speed_section(method: str, pairs) -> str:
    lines = [f"| Task | {method} student | Metric (Δ) | Speedup b32 / b1 | Fewer layers | Metric (Δ) | Speedup b32 / b1 | CPU | Which wins |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s, b in pairs:
        speeds = [f"{_ratio(r, 'latency_b32_ms'):.2f}× / {_ratio(r, 'latency_b1_ms'):.2f}×" for r in (s, b)]
        lines.append(f"| {s.task} | {s.model} | {_metric(s)} | {speeds[0]} | {b.model} | {_metric(b)} | {speeds[1]} | {machine_of(s)} | "
                     f"{_verdict(method, s, b, 'latency_b32_ms', 'faster')} |")
    return "\n".join(lines) + "\n"


def size_section(method: str, pairs) -> str:
    lines = [f"| Task | {method} student | Metric (Δ) | Size ratio | FLOP reduction | Fewer layers | Metric (Δ) | Size ratio | FLOP reduction | Which wins |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s, b in pairs:
        cells = [f"{_ratio(r, 'bytes'):.2f}× | {_ratio(r, 'flops_per_token'):.2f}×" for r in (s, b)]
        lines.append(f"| {s.task} | {s.model} | {_metric(s)} | {cells[0]} | {b.model} | {_metric(b)} | {cells[1]} | {_verdict(method, s, b, 'bytes', 'smaller')} |")
    return "\n".join(lines) + "\n"


def _best_per_task_and_size(rows: list[BenchmarkRow]) -> list[BenchmarkRow]:
    """The most accurate student of each task and size: one Kronecker row stands for its variants."""
    best: dict[tuple, BenchmarkRow] = {}
    for r in rows:
        key = (r.task, round(_ratio(r, "bytes"), 1))
        if key not in best or r.metric > best[key].metric:
            best[key] = r
    return list(best.values())


def pruning_baseline(results: Path = HERE / "results") -> str:
    rows = [*read_results(results / "pruning.json"), *read_results(results / "depth.json")]
    pairs = speed_pairs([r for r in rows if r.method == "pruning"], [r for r in rows if r.method == "depth"])
    return (f"{HEADING}\n\nEach pruned student beside the layer-dropped students (benchmarks/depth.md: the teacher's layers "
            "kept, distilled with TinyBERT's losses) whose batch-32 speed-up brackets its own, on the same CPU, with the same "
            "budget and teacher. A pruned student without such a pair was measured on a CPU or at a budget no layer-dropped "
            "student was.\n\n" + speed_section("pruning", pairs))


def kronecker_baseline(results: Path = HERE / "results") -> str:
    depth = read_results(results / "depth.json")
    students = _best_per_task_and_size([r for r in read_results(results / "kronecker.json") if r.method == "kronecker"])
    # and every Kronecker student depth.py trained at its layer-dropped students' budget: the same-budget pair
    students += [r for r in depth if r.method == "kronecker"]
    pairs = size_pairs(students, [r for r in depth if r.method.startswith("depth")])
    return (f"{HEADING}\n\nThe most accurate Kronecker student of each task and size beside the layer-dropped student of "
            "benchmarks/depth.md closest in size, alone and under pruning → int8 (no layer-dropped student comes near a "
            "Kronecker student's size without them: dropping layers leaves the embeddings, half of MiniLM's weights). Size "
            "and FLOPs do not depend on the CPU; budgets differ and are in the labels (Kronecker's stage 1 reads general "
            "text first), except for the Kronecker students benchmarks/depth.md trained at its own budget. Tasks without "
            "layer-dropped students (CoLA) are left out.\n\n" + size_section("Kronecker", pairs))


def write_baselines(results: Path = HERE / "results", out: Path = HERE) -> None:
    """Replace the baseline section at the end of pruning.md and kronecker.md (the table above it
    stays as its benchmark rendered it)."""
    for name, section in (("pruning", pruning_baseline), ("kronecker", kronecker_baseline)):
        markdown = out / f"{name}.md"
        table = markdown.read_text().split(f"\n{HEADING}\n")[0]
        markdown.write_text(table.rstrip("\n") + "\n\n" + section(results))


if __name__ == "__main__":
    write_baselines()
