"""End to end on a tiny teacher: distil with block pruning (hybrid filled: prune, remove, refill, refine), save, load."""

import json

import pytest
import torch

import leanformer
from leanformer.cli import main
from leanformer.distill import DistillationConfig
from leanformer.measure import flops_per_token, linear_parameters
from leanformer.methods.pruning import BlockPruningConfig, MaskedLinear
from leanformer.student import distil_student
from leanformer.data import TaskConfig
from leanformer.training import TrainConfig
from tiny_models import tiny_inputs, write_tiny_task

@pytest.fixture
def teacher_and_data(tmp_path):
    return write_tiny_task(tmp_path, rows=24)


def test_hybrid_filled_student_is_pruned_refined_saved_and_loads(teacher_and_data):
    d = teacher_and_data
    task = TaskConfig(task=str(d / "data.csv"), text_columns=["text"], label_column="label").load()
    train = TrainConfig(max_steps=4, batch_size=8, max_length=16, warmup_ratio=0.0, report_to="none", progress=False, logging_steps=2)
    # no warm-ups, fast scores and a strong regulariser: scores fall below τ_f within the 4 steps
    config = BlockPruningConfig.hybrid_filled(
        block_shape=[8, 8], initial_warmup=0.0, final_warmup=0.25, final_lambda=50.0, score_learning_rate=5.0, refine_epochs=1.0
    )
    out = distil_student(d / "teacher", config, task, train, DistillationConfig(), d / "student")

    assert (d / "student.refine.checkpoints").is_dir()  # the refine pass ran on the finalized model
    student = leanformer.load(out)
    teacher = leanformer.load(d / "teacher")
    assert not any(isinstance(m, MaskedLinear) for m in student.modules())
    assert type(student) is type(teacher)
    assert student.config.use_cache is teacher.config.use_cache is True  # the Trainer's training-time False is not saved
    assert linear_parameters(student) < linear_parameters(teacher)
    assert flops_per_token(student) < flops_per_token(teacher)
    structure = leanformer.recipe_of(student)[-1]["structure"]
    assert all(1 <= h <= 4 for h in structure["heads"]) and all(1 <= n < 64 for n in structure["ffn_dims"])
    with torch.no_grad():
        assert torch.isfinite(student(**tiny_inputs(student)).logits).all()
    metrics = json.loads((out / "leanformer_metrics.json").read_text())
    assert metrics["settings"]["method"] == "pruning" and metrics["settings"]["config"]["refine_epochs"] == 1.0


def test_pruning_flags_from_the_command_line(teacher_and_data, capsys):
    d = teacher_and_data
    code = main(
        ["compress", "--teacher", str(d / "teacher"), "--method", "pruning", "--attention_structure", "head",
         "--block_shape", "8", "8", "--mask_method", "topk", "--final_sparsity", "0.5", "--initial_warmup", "0",
         "--task", str(d / "data.csv"), "--text_columns", "text", "--label_column", "label",
         "--max_steps", "2", "--batch_size", "8", "--report_to", "none", "--progress", "false", "--max_length", "16",
         "--output_dir", str(d / "cli_student")]
    )
    assert code == 0, capsys.readouterr().err
    student = leanformer.load(d / "cli_student")
    stage = leanformer.recipe_of(student)[-1]
    assert stage["config"]["mask_method"] == "topk" and stage["config"]["block_shape"] == [8, 8]
    # whole heads, half of them pruned by top-k at the end of the schedule
    assert stage["structure"]["heads"] == [2, 2] and stage["structure"]["ffn_dims"] == [32, 32]
    metrics = json.loads((d / "cli_student" / "leanformer_metrics.json").read_text())
    assert metrics["settings"]["distillation"]["temperature"] == 2.0 and metrics["settings"]["distillation"]["logit_weight"] == 0.9
