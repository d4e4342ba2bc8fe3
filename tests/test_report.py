"""The report renders from fixture measurements: every plot file exists, with the right axes."""


import json

import pytest

from leanformer.cli import main
from leanformer.distill import DistillationConfig
from leanformer.errors import DataError
from leanformer.measure import BenchmarkRow, write_results
from leanformer.methods.pruning import BlockPruningConfig
from leanformer.methods.quantization import QuantizationConfig
from leanformer.methods.pruning import structure_figure
from leanformer.methods.quantization import ranges_figure
from leanformer.report import collect, curves_figure, pareto_front, tradeoff_figure, write_report
from leanformer.student import distil_student
from leanformer.data import TaskConfig
from leanformer.training import TrainConfig
from tiny_models import write_tiny_task


def _rows():
    common = dict(task="glue/sst2", metric_name="accuracy", teacher_metric=88.0, teacher_bytes=90e6, teacher_latency_b32_ms=700.0)
    return [
        BenchmarkRow(model="teacher", method="teacher", metric=88.0, bytes=90_000_000, latency_b32_ms=700.0, **common),
        BenchmarkRow(model="pruned", method="pruning", metric=87.5, bytes=40_000_000, latency_b32_ms=250.0, **common),
        BenchmarkRow(model="kron", method="kronecker", metric=80.0, bytes=11_000_000, latency_b32_ms=500.0, **common),
        BenchmarkRow(model="worse", method="pruning", metric=79.0, bytes=50_000_000, latency_b32_ms=600.0, **common),
    ]


def test_pareto_front_keeps_only_undominated_points():
    # (latency, accuracy): the 600 ms / 79 point is beaten by 250 ms / 87.5 on both
    points = [(700, 88.0), (250, 87.5), (500, 80.0), (600, 79.0), (100, 70.0)]
    assert pareto_front(points) == [4, 1, 0]


def test_runs_of_one_task_share_a_panel_in_ratios_to_their_own_teacher():
    """Two benchmark runs (each with its own teacher timing) of one task, and a second task: one
    panel per task; every point sits at its gain over the teacher of its own run."""
    first = _rows()
    second = [BenchmarkRow(model="teacher", method="teacher", task="glue/sst2", metric_name="accuracy", metric=88.0, bytes=90_000_000,
                           latency_b32_ms=1400.0, teacher_bytes=90e6, teacher_latency_b32_ms=1400.0),  # a slower run of the same teacher
              BenchmarkRow(model="3 layers", method="depth", task="glue/sst2", metric_name="accuracy", metric=86.0, bytes=45_000_000,
                           latency_b32_ms=700.0, teacher_bytes=90e6, teacher_latency_b32_ms=1400.0)]
    other = [BenchmarkRow(model=name, method=name, task="glue/mrpc", metric_name="f1", metric=85.0, bytes=90_000_000,
                          latency_b32_ms=latency, teacher_bytes=90e6, teacher_latency_b32_ms=700.0) for name, latency in (("teacher", 700.0), ("depth", 350.0))]
    alone = [BenchmarkRow(model="teacher", method="teacher", task="glue/rte", metric_name="accuracy", metric=70.0, bytes=90_000_000,
                          latency_b32_ms=700.0, teacher_bytes=90e6, teacher_latency_b32_ms=700.0)]  # no student: no panel
    figure = tradeoff_figure(first + second + other + alone, "latency")
    sst2, mrpc = figure.axes
    assert sst2.get_title().startswith("glue/sst2") and mrpc.get_title().startswith("glue/mrpc") and mrpc.get_ylabel() == "f1"
    placed = sorted(tuple(round(float(v), 3) for v in offsets) for c in sst2.collections for offsets in c.get_offsets())
    assert placed == [(1.0, 88.0), (1.0, 88.0), (1.167, 79.0), (1.4, 80.0), (2.0, 86.0), (2.8, 87.5)]
    front = sst2.lines[0].get_xydata().round(3).tolist()
    assert front == [[2.8, 87.5], [1.0, 88.0]]  # most speed first; 3 layers (2.0x, 86.0) is beaten by pruned
    assert {t.get_text() for t in sst2.get_legend().get_texts()} == {"Pareto front", "pruning", "kronecker", "depth"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    write_tiny_task(root, rows=24)
    write_results(_rows(), root / "results.json")
    task = TaskConfig(task=str(root / "data.csv")).load()
    train = TrainConfig(epochs=1.0, batch_size=8, max_length=16, report_to="none", progress=False, logging_steps=1, save_steps=100)
    pruning = BlockPruningConfig.struct(final_lambda=5.0, initial_warmup=0.0, final_warmup=0.0)
    distil_student(root / "teacher", pruning, task, train, DistillationConfig(), root / "pruned")
    distil_student(root / "teacher", QuantizationConfig(calibration_batches=2), task, train, DistillationConfig(), root / "int8")
    return root


def test_report_renders_every_plot_with_its_axes(run_dir, tmp_path):
    rows, students = collect([run_dir])
    assert len(rows) == 4 and {s.name for s in students} == {"pruned", "int8"}

    latency = tradeoff_figure(rows, "latency")
    assert latency.axes[0].get_xlabel().startswith("speed-up over its teacher (batch 32") and latency.axes[0].get_ylabel() == "accuracy"
    size = tradeoff_figure(rows, "size")
    assert size.axes[0].get_xlabel().startswith("smaller than its teacher (bytes on disk")
    assert [line.get_label() for line in latency.axes[0].lines] == ["Pareto front"]
    structure = structure_figure(students)
    assert [ax.get_title() for ax in structure.axes[:2]] == ["attention heads kept", "FFN dimensions kept"]
    assert [ax.get_xlabel() for ax in structure.axes[:2]] == ["attention", "layer"]  # heads per attention, FFN dims per layer
    panels = {ax.get_title(): ax for ax in curves_figure(students).axes}  # one per student, then the schedule
    assert set(panels) == {"pruned", "int8", "schedules"}
    labels = {title: [line.get_label() for line in ax.lines] for title, ax in panels.items()}
    assert "pruning regularization" in labels["pruned"] and "task" in labels["int8"] and "total" in labels["int8"]
    assert panels["pruned"].get_yscale() == "log" and panels["pruned"].get_xlabel() == "optimizer step"
    assert {"pruned: threshold", "pruned: mask_density"} <= set(labels["schedules"])
    ranges = ranges_figure(students)
    assert ranges.axes[0].get_ylabel() == "range [min, max]" and len(ranges.axes[0].patches) > 10

    assert main(["report", "--runs", str(run_dir), "--output_dir", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    for name in ("accuracy_vs_latency.png", "accuracy_vs_size.png", "structure.png", "training_curves.png", "activation_ranges.png"):
        assert (tmp_path / "report" / name).stat().st_size > 5000
        assert f"]({name})" in report
    assert "pruning" in report and "quantization" in report


def test_training_phases_follow_one_another_on_the_step_axis(tmp_path):
    # what distil_student logs for a refined student: a second Trainer whose step counter restarts at 0
    distillation = [{"step": s, "loss": 1.0 / s, "threshold": 0.1 * s, "mask_density": 1 - 0.05 * s, "phase": "distillation"} for s in range(1, 11)]
    summary = {"step": 10, "train_loss": 0.3, "phase": "distillation"}  # the Trainer's closing line: no "loss"
    refine = [{"step": s, "loss": 0.1 / s, "phase": "refine"} for s in range(1, 5)]
    student = tmp_path / "refined"
    student.mkdir()
    (student / "training_log.json").write_text(json.dumps([*distillation, summary, *refine]))

    panels = {ax.get_title(): ax for ax in curves_figure([student]).axes}
    curves = {line.get_label(): line for line in panels["refined"].lines if not line.get_label().startswith("_")}
    steps = list(curves["total"].get_xdata())
    assert steps == sorted(set(steps))  # increasing: no line drawn back to step 0
    assert steps == [*range(1, 11), *range(11, 15)]  # refine's steps 1..4 come after distillation's last step, 10
    for ax in panels.values():  # the loss panel and the pruning schedule both mark where refine starts
        boundaries = [list(line.get_xdata()) for line in ax.lines if line.get_label().startswith("_")]
        assert boundaries == [[10, 10]]
        assert [text.get_text().strip() for text in ax.texts] == ["refine"]
    assert list(panels["schedules"].lines[0].get_xdata()) == list(range(1, 11))


def test_every_student_has_a_model_card(run_dir):
    card = (run_dir / "int8" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers")
    assert "quantization" in card and "| test |" in card and "leanformer export --model" in card and "int8" in card
    assert "leanformer.load(" in (run_dir / "pruned" / "README.md").read_text()


def test_report_on_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no measurements"):
        write_report([tmp_path], tmp_path / "out")
    assert main(["report", "--runs", str(tmp_path / "missing")]) == 2
