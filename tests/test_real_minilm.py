"""End to end on the real packaged MiniLM-L6: fine-tune a teacher briefly, cache it, evaluate, benchmark."""

import json

import pytest

import leanformer
from leanformer.demo import DemoConfig, run_demo
from leanformer.measure import read_results

pytestmark = pytest.mark.slow  # the real packaged model: fine-tuned, compressed and benchmarked


def test_demo_end_to_end_on_real_minilm(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LEANFORMER_CACHE", str(tmp_path / "cache"))
    cfg = DemoConfig(
        task="glue/sst2", train_samples=96, epochs=1.0, max_length=32, batch_size=16, repeats=1,
        max_eval_examples=64, output_dir=str(tmp_path / "demo"), progress=False,
    )
    table = run_demo(cfg)
    rows = read_results(tmp_path / "demo" / "results.json")
    teacher = rows[0]
    assert teacher.method == "teacher" and teacher.task == "glue/sst2" and teacher.metric_name == "accuracy"
    assert 0 <= teacher.metric <= 100
    assert 22_000_000 < teacher.params < 23_500_000  # all-MiniLM-L6-v2 + a 2-way head
    assert teacher.latency_b1_ms > 0 and teacher.latency_b32_ms > teacher.latency_b1_ms
    assert teacher.bytes > 80_000_000
    assert "teacher" in table and "1.00×" in table
    by_name = {r.model: r for r in rows}
    assert {"kronecker", "pruning", "quantization", "pruning+quantization", "kronecker+quantization"} <= set(by_name)
    assert by_name["quantization"].extra["runtime"] == "onnxruntime int8"
    assert by_name["quantization"].bytes < teacher.bytes / 3  # int8 weights
    assert [s["method"] for s in leanformer.recipe_of(leanformer.load(tmp_path / "demo" / "pruning+quantization"))] == ["pruning", "quantization"]
    assert (tmp_path / "demo" / "report" / "accuracy_vs_latency.png").stat().st_size > 0

    # the teacher is cached: a second run does not train again
    teachers = list((tmp_path / "cache" / "teachers").iterdir())
    assert len(teachers) == 1
    record = json.loads((teachers[0] / "leanformer_metrics.json").read_text())
    assert record["train_examples"] == 96
    mtime = (teachers[0] / "model.safetensors").stat().st_mtime
    run_demo(DemoConfig(**{**cfg.to_dict(), "methods": []}))  # the teacher only, this time
    assert (teachers[0] / "model.safetensors").stat().st_mtime == mtime

    model = leanformer.load(teachers[0])
    assert model.config.model_type == "bert" and model.config.num_labels == 2
