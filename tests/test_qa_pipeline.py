"""Extractive QA (SQuAD-style) through the pipeline: a pruned student of a QA teacher trains,
finalizes, saves, reloads and is measured like a classifier (the pruning benchmark's SQuAD rows)."""

import json

import torch
import transformers

import leanformer
from leanformer.benchmark import Candidate, benchmark
from leanformer.distill import DistillationConfig
from leanformer.methods.pruning import BlockPruningConfig, pruning_report
from leanformer.student import distil_student
from leanformer.data import TaskConfig
from leanformer.teacher import teacher_metrics
from leanformer.training import TrainConfig
from tiny_models import WORDS, tiny_config, tiny_tokenizer


def _qa_teacher_and_data(tmp_path, rows: int = 40):
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    assert tokenizer.is_fast  # QA needs offset mappings
    teacher = transformers.BertForQuestionAnswering(tiny_config("bert"))
    teacher.save_pretrained(tmp_path / "teacher")
    tokenizer.save_pretrained(tmp_path / "teacher")
    lines = []
    for i in range(rows):
        words = [WORDS[(i * 7 + j) % len(WORDS)] for j in range(12)]
        answer = words[5]
        context = " ".join(words)
        lines.append(json.dumps({"question": f"{words[0]} {words[1]}", "context": context,
                                 "answers": {"text": [answer], "answer_start": [context.index(" " + answer + " ") + 1]}}))
    (tmp_path / "qa.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "teacher", TaskConfig(task=str(tmp_path / "qa.jsonl"), kind="qa").load()


def test_pruned_qa_student_trains_finalizes_reloads_and_is_measured(tmp_path):
    teacher, task = _qa_teacher_and_data(tmp_path)
    config = BlockPruningConfig.hybrid_filled(block_shape=[8, 8], mask_method="topk", final_sparsity=0.7)
    train = TrainConfig(epochs=2, batch_size=8, max_length=48, learning_rate=1e-3, report_to="none", progress=False, save_steps=100)
    out = distil_student(teacher, config, task, train, DistillationConfig(), tmp_path / "student")

    student = leanformer.load(out)
    assert isinstance(student, transformers.BertForQuestionAnswering)
    report = pruning_report(student, seq_len=48)
    assert report["ffn_dims_kept"] < report["ffn_dims_total"] or report["heads_kept"] < report["heads_total"]
    metrics = teacher_metrics(out)["metrics"]["test"]
    assert set(metrics) >= {"f1", "exact_match"} and 0 <= metrics["f1"] <= 100

    inputs = {"input_ids": torch.randint(5, 50, (2, 20)), "attention_mask": torch.ones(2, 20, dtype=torch.long)}
    with torch.no_grad():
        start = student(**inputs).start_logits
        again = leanformer.load(out)(**inputs).start_logits
    assert torch.equal(start, again)

    rows = benchmark(Candidate("teacher", teacher), [Candidate("pruned", out)], task, seq_len=48, batch_sizes=(1, 2),
                     repeats=1, warmup=1, max_length=48, progress=False)
    assert rows[1].metric_name == "f1" and rows[1].params < rows[0].params


def test_depth_then_pruning_then_int8_qa_student_trains_and_is_measured_as_int8_onnx(tmp_path):
    """FastFormers' stack on a QA head (benchmarks/depth.py's SQuAD rows): every stage distils, the
    last is deployed as int8 ONNX and measured against the teacher with its F1."""
    from leanformer.methods.depth import DepthConfig
    from leanformer.methods.quantization import QuantizationConfig
    from leanformer.recipe import Recipe, Stage
    from leanformer.student import distil_recipe

    teacher, task = _qa_teacher_and_data(tmp_path)
    recipe = Recipe([Stage("depth", DepthConfig(num_layers=1)),
                     Stage("pruning", BlockPruningConfig.hybrid_filled(block_shape=[8, 8], mask_method="topk", final_sparsity=0.5)),
                     Stage("quantization", QuantizationConfig(weight_bits=7))])
    train = TrainConfig(epochs=1, batch_size=8, max_length=48, learning_rate=1e-3, report_to="none", progress=False, save_steps=100)
    out = distil_recipe(teacher, recipe, task, tmp_path / "student", train=train)

    assert [s["method"] for s in leanformer.recipe_of(leanformer.load(out))] == ["depth", "pruning", "quantization"]
    assert 0 <= teacher_metrics(out)["metrics"]["test"]["f1"] <= 100
    rows = benchmark(Candidate("teacher", teacher), [Candidate("stacked", out)], task, seq_len=48, batch_sizes=(1, 2),
                     repeats=1, warmup=1, max_length=48, progress=False)
    assert rows[1].metric_name == "f1" and rows[1].extra["runtime"] == "onnxruntime int8"
    assert rows[1].bytes < rows[0].bytes / 3  # one of two layers, int8 weights
