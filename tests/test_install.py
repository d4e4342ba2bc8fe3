"""A pip user's install: the wheel, installed outside the repository, runs the built-in tasks."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(argv, **kwargs) -> str:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_finetunes_and_evaluates_a_builtin_task(tmp_path):
    # build from a copy of the sources: an in-tree build would leave build/ and egg-info behind
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source])
    (wheel,) = (tmp_path / "dist").glob("leanformer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "leanformer/data/glue/MRPC/dev.tsv" in names and "leanformer/data/glue/SQuAD/dev-v1.1.json" in names
    assert not any(n.endswith(".py") and "/glue/" in n for n in names)

    target = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, wheel])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "LEANFORMER_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("LEANFORMER_DATA", None)
    where = _run([sys.executable, "-c", "import leanformer; print(leanformer.__file__)"], cwd=elsewhere, env=env)
    assert where.strip().startswith(str(target)), where  # the installed copy, not the checkout

    cli = [sys.executable, "-m", "leanformer.cli"]
    teacher = _run([*cli, "finetune", "--task", "glue/mrpc", "--max_steps", "2", "--batch_size", "8", "--max_length", "64",
                    "--no_progress"], cwd=elsewhere, env=env).strip()
    assert Path(teacher).is_relative_to(tmp_path / "cache") and (Path(teacher) / "model.safetensors").is_file()
    metrics = json.loads(_run([*cli, "evaluate", "--model", teacher, "--task", "glue/mrpc", "--max_examples", "64",
                               "--max_length", "64"], cwd=elsewhere, env=env))
    assert 0 <= metrics["accuracy"] <= 100 and 0 <= metrics["f1"] <= 100
