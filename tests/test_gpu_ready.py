"""Nothing assumes the CPU: training precision and device are settings the Trainer receives, the
timer uses CUDA events on a GPU, and the GPU suite's dry mode runs the whole pipeline here."""

import importlib.util
import json
import time
from pathlib import Path

import pytest

from leanformer.data import TaskConfig
from leanformer.measure import device_name, read_results, time_call_ms
from leanformer.teacher import teacher_key
from leanformer.teacher_config import FinetuneConfig
from leanformer.training import TrainConfig

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("precision, bf16, fp16", [("fp32", False, False), ("bf16", True, False)])
def test_precision_and_device_reach_the_trainer(tmp_path, precision, bf16, fp16):
    args = TrainConfig(precision=precision, device="cpu").training_arguments(str(tmp_path))
    assert (args.bf16, args.fp16, args.use_cpu, args.device.type) == (bf16, fp16, True, "cpu")
    assert TrainConfig().training_arguments(str(tmp_path)).use_cpu is False  # auto: the Trainer picks the GPU if there is one


def test_cached_teachers_keep_their_keys_and_mixed_precision_gets_its_own():
    finetune, task = FinetuneConfig(model="minilm"), TaskConfig(task="glue/sst2")
    fp32 = teacher_key(finetune, task, TrainConfig())
    assert teacher_key(finetune, task, TrainConfig(device="cpu")) == fp32  # where it trained is not what it is
    assert teacher_key(finetune, task, TrainConfig(precision="bf16")) != fp32
    # benchmarks/quantization.py's translation teacher, cached under this key before precision and device existed
    scratch = TrainConfig(epochs=16.0, batch_size=64, learning_rate=7e-4, warmup_ratio=0.06, max_length=128, eval_batch_size=128)
    assert teacher_key(FinetuneConfig(model="scratch"), TaskConfig(task="bible_en_fr"), scratch) == "scratch-bible_en_fr-7f415d1f211e"


def test_the_timer_measures_the_call_and_names_no_accelerator_on_the_cpu():
    assert 20 <= time_call_ms(lambda: time.sleep(0.02), "cpu") < 500
    assert device_name("cpu") is None


@pytest.mark.slow
def test_gpu_suite_dry_mode_runs_every_method_on_a_tiny_model(tmp_path, monkeypatch):
    """benchmarks/gpu_suite.sh --dry: the GPU suite's pipeline (bf16 training, every method and
    composition, one benchmark) on a tiny MPNet on the CPU; benchmarks/results/ is left alone."""
    spec = importlib.util.spec_from_file_location("gpu_suite", ROOT / "benchmarks" / "gpu_suite.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    results = ROOT / "benchmarks" / "results"
    before = {p.name: p.stat().st_mtime_ns for p in results.iterdir()}
    monkeypatch.delenv("LEANFORMER_CACHE", raising=False)
    assert suite.main(["--dry", "--output_dir", str(tmp_path)]) == 0
    rows = read_results(tmp_path / "demo" / "results.json")
    assert [r.model for r in rows] == ["teacher", "depth", "kronecker", "pruning", "quantization",
                                         "depth+quantization", "kronecker+quantization", "pruning+quantization"]
    teacher = next((tmp_path / "cache" / "teachers").iterdir())  # cached beside the run, not in the user's cache
    settings = json.loads((teacher / "leanformer_metrics.json").read_text())["settings"]["train"]
    assert settings["precision"] == "bf16" and settings["device"] == "cpu"
    assert {p.name: p.stat().st_mtime_ns for p in results.iterdir()} == before
