"""The fewer-layers baseline sections of pruning.md and kronecker.md: which layer-dropped students
stand beside a pruned (same CPU, same budget, bracketing speed) or Kronecker (closest size)
student, who wins, and that the committed sections are what the committed results generate."""

import importlib.util
import shutil
from pathlib import Path

from leanformer.measure import BenchmarkRow

ROOT = Path(__file__).parent.parent
spec = importlib.util.spec_from_file_location("baselines", ROOT / "benchmarks" / "baselines.py")
baselines = importlib.util.module_from_spec(spec)
spec.loader.exec_module(baselines)

EPYC = dict(cpu="AMD EPYC", cpu_flags=["avx2", "avx512_vnni"])


def student(model, method, metric, *, b32_ms, size=100, task="glue/sst2", cpu=EPYC, command="python benchmarks/depth.py"):
    """A row against a teacher of metric 88, 100 ms at b32 (and b1), 100 bytes, 100 FLOPs."""
    return BenchmarkRow(model=model, method=method, task=task, metric_name="accuracy", metric=metric, teacher_metric=88.0, command=command,
                        bytes=size, teacher_bytes=100, latency_b1_ms=b32_ms, teacher_latency_b1_ms=100.0,
                        latency_b32_ms=b32_ms, teacher_latency_b32_ms=100.0, flops_per_token=50, teacher_flops_per_token=100,
                        extra=dict(cpu)),


def test_a_pruned_student_meets_the_layer_dropped_students_that_bracket_its_speed_on_its_cpu_and_budget():
    (pruned,) = student("hybrid [16000×2]", "pruning", 86.0, b32_ms=40)  # 2.5×
    (slower,) = student("3 layers [16000×2]", "depth", 86.5, b32_ms=50)  # 2.0×: more accurate, slower
    (faster,) = student("2 layers [16000×2]", "depth", 84.0, b32_ms=25)  # 4.0×: less accurate, faster
    (far,) = student("4 layers [16000×2]", "depth", 88.0, b32_ms=70)  # further below than `slower`
    (other_budget,) = student("2 layers", "depth", 84.0, b32_ms=38)
    (other_cpu,) = student("2 layers [16000×2]", "depth", 84.0, b32_ms=39, cpu=dict(cpu="Intel Xeon"))
    pairs = baselines.speed_pairs([pruned], [far, slower, faster, other_budget, other_cpu])
    assert [b.model for _, b in pairs] == ["3 layers [16000×2]", "2 layers [16000×2]"]
    table = baselines.speed_section("pruning", pairs)
    assert "trade-off: fewer layers 0.50 pt more accurate, pruning faster" in table
    assert "trade-off: pruning 2.00 pt more accurate, fewer layers faster" in table
    assert "| 2.50× / 2.50× |" in table and "| 4.00× / 4.00× |" in table


def test_a_method_setting_in_a_label_is_not_a_budget_so_pruning_with_its_score_rate_still_meets_its_depth_rows():
    (pruned,) = student("hybrid_filled λ10 (6 layers) [2500×1, score lr 0.2]", "pruning", 86.0, b32_ms=40)
    (dropped,) = student("3 layers [2500×1]", "depth", 86.5, b32_ms=50)
    (other_budget,) = student("3 layers [2500×2]", "depth", 86.5, b32_ms=45)
    assert [b.model for _, b in baselines.speed_pairs([pruned], [dropped, other_budget])] == ["3 layers [2500×1]"]
    assert [baselines.budget(r) for r in student("p [score lr 0.2]", "pruning", 1, b32_ms=1) + student("p", "pruning", 1, b32_ms=1)] == ["", ""]


def test_untagged_rows_of_two_benchmarks_are_not_one_budget():
    # pruning.py's SST-2 default is 8,000 sentences × 3 epochs, depth.py's all of them × 2: no pair
    (pruned,) = student("hybrid_filled λ10", "pruning", 86.0, b32_ms=40, command="python benchmarks/pruning.py --tasks glue/sst2")
    (dropped,) = student("3 layers", "depth", 86.5, b32_ms=50, command="python benchmarks/depth.py --tasks glue/sst2")
    (same_run,) = student("hybrid_filled λ10 (6 layers)", "pruning", 86.0, b32_ms=40, command="python benchmarks/depth.py --tasks glue/sst2")
    assert baselines.speed_pairs([pruned], [dropped]) == []
    assert [b.model for _, b in baselines.speed_pairs([same_run], [dropped])] == ["3 layers"]
    assert baselines.same_budget(*student("a [16000×2]", "pruning", 1, b32_ms=1, command="python benchmarks/pruning.py"),
                                 *student("b [16000×2]", "depth", 1, b32_ms=1))


def test_the_verdict_names_a_winner_only_when_it_is_both_more_accurate_and_faster():
    (pruned,) = student("p", "pruning", 86.0, b32_ms=25)  # 4×
    (dropped,) = student("2 layers", "depth", 80.0, b32_ms=35)
    assert "pruning: more accurate and faster" in baselines.speed_section("pruning", baselines.speed_pairs([pruned], [dropped]))
    (dominant,) = student("2 layers", "depth", 87.0, b32_ms=20)
    assert "fewer layers: more accurate and faster" in baselines.speed_section("pruning", baselines.speed_pairs([pruned], [dominant]))
    assert baselines.speed_pairs([pruned], []) == []  # no layer-dropped student on its CPU: no row, no guess


def test_a_kronecker_student_meets_the_closest_layer_dropped_students_in_size_alone_and_composed_across_cpus():
    (kron,) = student("kron8x", "kronecker", 86.0, b32_ms=80, size=12.5, cpu=dict(cpu="Intel Xeon"))  # 8× smaller
    rows = [student(*args, b32_ms=50, size=size)[0] for *args, size in (
        ("2 layers", "depth", 84.0, 69), ("3 layers", "depth", 86.5, 76),
        ("3 layers → prune → int8", "depth+pruning+quantization", 84.2, 14.5), ("3 layers → prune", "depth+pruning", 84.3, 57))]
    pairs = baselines.size_pairs([kron], rows)
    assert [b.model for _, b in pairs] == ["2 layers", "3 layers → prune → int8"]
    table = baselines.size_section("Kronecker", pairs)
    assert "| 8.00× | 2.00× |" in table and "Kronecker: more accurate and smaller" in table


def test_a_kronecker_student_trained_at_a_layer_dropped_budget_meets_the_students_of_that_budget():
    (kron,) = student("kron8x [16000×2]", "kronecker", 86.0, b32_ms=80, size=12.5)
    rows = [student(*args, b32_ms=50, size=size)[0] for *args, size in (
        ("2 layers", "depth", 84.0, 60), ("2 layers [16000×2]", "depth", 83.0, 69),
        ("4 layers → prune → int8", "depth+pruning+quantization", 85.0, 12.5))]
    # the same budget wins over a closer size; a group without that budget keeps the closest of any
    assert [b.model for _, b in baselines.size_pairs([kron], rows)] == ["2 layers [16000×2]", "4 layers → prune → int8"]


def test_the_committed_sections_are_what_the_committed_results_generate(tmp_path):
    for name in ("pruning", "kronecker"):
        shutil.copy(ROOT / "benchmarks" / f"{name}.md", tmp_path / f"{name}.md")
    baselines.write_baselines(ROOT / "benchmarks" / "results", tmp_path)
    baselines.write_baselines(ROOT / "benchmarks" / "results", tmp_path)  # idempotent: the section is replaced, not repeated
    for name in ("pruning", "kronecker"):
        text = (tmp_path / f"{name}.md").read_text()
        assert text == (ROOT / "benchmarks" / f"{name}.md").read_text()
        assert text.count(baselines.HEADING) == 1 and "| glue/mrpc |" in text.split(baselines.HEADING)[1]
