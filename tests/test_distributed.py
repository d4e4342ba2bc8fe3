"""Multi-process distillation through torchrun (2 CPU processes, gloo) works unchanged."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "distributed_distill.py"

pytestmark = pytest.mark.slow  # torchrun starts several Python processes


def _run(cmd, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_process_torchrun_matches_one_process_loss_at_step_0(tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    _run([sys.executable, str(SCRIPT), str(one)], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT), str(two)], tmp_path)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert (a["world_size"], b["world_size"]) == (1, 2)
    assert b["steps"] == 2
    for key in ("loss", "loss_task", "loss_logits", "loss_embeddings", "loss_hidden", "loss_attention"):
        assert b["first"][key] == pytest.approx(a["first"][key], rel=1e-4, abs=1e-6), key
