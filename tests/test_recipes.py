"""Recipes: every shipped preset parses, validates and round-trips; multi-stage recipes compose
methods end to end and the result loads exactly; bad recipes are one clear error."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml

import leanformer
from leanformer.cli import main
from leanformer.errors import ConfigError
from leanformer.recipe import STAGE_KEYS, Recipe
from leanformer.registry import method_by_name
from leanformer.training import TrainConfig
from tiny_models import tiny_inputs, tiny_model, write_tiny_task

RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))
PRESETS = {"kronecker8", "kronecker21", "hybrid_filled", "struct", "fullyqt8", "prune_then_int8", "kronecker_then_int8"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_parses_validates_and_round_trips(path):
    raw = yaml.safe_load(path.read_text())
    parsed = Recipe.from_yaml(path)
    assert Recipe.from_dict(yaml.safe_load(parsed.to_yaml())) == parsed
    stages = raw["stages"] if "stages" in raw else [raw]
    assert [s.method for s in parsed.stages] == [s["method"] for s in stages]
    for stage, data in zip(parsed.stages, stages):
        assert set(data) <= set(STAGE_KEYS)
        config_class = method_by_name(data["method"]).config_class
        assert stage.config == config_class.from_dict(data["config"])
        assert config_class.from_yaml(stage.config.to_yaml()) == stage.config
    assert path.read_text().startswith("# "), "each preset starts with its one-line description"


def test_the_depth4_gentle_preset_is_the_benchmarked_recipe():
    """recipes/depth4_gentle_prune_int8.yaml claims benchmarks/depth.md's SST-2 row: same stages, same training."""
    spec = importlib.util.spec_from_file_location("depth_benchmark", Path(__file__).parents[1] / "benchmarks" / "depth.py")
    depth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(depth)
    # depth.py's SST-2 training (its --lr default, its STUDENT_TRAIN epochs)
    train = TrainConfig(max_length=128, batch_size=32, learning_rate=1e-4, epochs=depth.STUDENT_TRAIN["glue/sst2"]["epochs"])
    benchmarked = depth._variants(train)["4 layers → hybrid_filled λ1.5 (3,000 + 1,022 steps) → int8 (7-bit weights, 500 steps)"]
    shipped = Recipe.from_yaml(Path(__file__).parents[1] / "recipes" / "depth4_gentle_prune_int8.yaml").stages
    assert [s.method for s in shipped] == [s.method for s in benchmarked]
    for ours, theirs in zip(shipped, benchmarked):
        assert ours.config == theirs.config
        assert ours.train.to_dict() == (theirs.train or train).to_dict()


def test_the_presets_ship():
    assert {p.stem for p in RECIPES} >= PRESETS
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for name in PRESETS:
        assert f"recipes/{name}.yaml" in readme, f"README does not document {name}"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"stages": []}, "'stages' must be a non-empty list"),
        ({"stages": [{"method": "pruning"}], "train": {}}, "unknown key 'train' beside 'stages'"),
        ({"stages": [{"method": "pruning", "confg": {}}]}, "stage 1: unknown key 'confg'"),
        ({"stages": [{"method": "pruning"}, {"method": "quantization", "config": {"weight_bits": 9}}]}, "weight_bits = 9 is not supported"),
        ({"stages": [{"method": "pruning"}, {"method": "kronecker", "config": {"target_compression": 8.0}, "general": {}}]}, "first stage only"),
        ({"method": "nope"}, "unknown compression method 'nope'"),
    ],
)
def test_bad_recipes_name_the_problem(data, message):
    with pytest.raises(ConfigError, match=message):
        Recipe.from_dict(data)


def test_compress_with_a_recipe_object_applies_every_stage():
    recipe = Recipe.from_dict({"stages": [{"method": "pruning", "config": {"attention_structure": "head"}}, {"method": "quantization"}]})
    student = leanformer.compress(tiny_model("bert"), recipe)
    assert [s["method"] for s in leanformer.recipe_of(student)] == ["pruning", "quantization"]


def test_composed_recipe_runs_end_to_end_from_the_command_line(tmp_path, capsys):
    write_tiny_task(tmp_path, rows=24)
    train = {"epochs": 1.0, "batch_size": 8, "max_length": 16, "report_to": "none", "progress": False, "save_steps": 100}
    recipe = {"stages": [
        {"method": "pruning", "config": {"attention_structure": "head", "final_lambda": 5.0, "initial_warmup": 0.0, "final_warmup": 0.0}, "train": train},
        {"method": "quantization", "config": {"calibration_batches": 2}, "train": train},
    ]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    argv = ["compress", "--teacher", str(tmp_path / "teacher"), "--recipe", str(tmp_path / "recipe.yaml"),
            "--task", str(tmp_path / "data.csv"), "--output_dir", str(tmp_path / "student")]
    assert main(argv) == 0
    out = Path(capsys.readouterr().out.strip())  # the student directory is all compress prints on stdout
    assert out == tmp_path / "student"
    assert (tmp_path / "student.stage1-pruning" / "leanformer_metrics.json").is_file()
    student = leanformer.load(out)
    assert [s["method"] for s in leanformer.recipe_of(student)] == ["pruning", "quantization"]
    stage1 = leanformer.load(tmp_path / "student.stage1-pruning")
    assert leanformer.recipe_of(student)[0]["structure"] == leanformer.recipe_of(stage1)[0]["structure"]
    inputs = tiny_inputs(student)
    saved_logits = student(**inputs).logits
    with torch.no_grad():
        assert torch.equal(leanformer.load(out)(**inputs).logits, saved_logits)

    # an existing output is never overwritten without --overwrite, and no stage runs again
    assert main(argv) == 2
    assert "exists: pass --overwrite" in capsys.readouterr().err

    # a run that died in stage 2: without a flag it is an error, with --resume stage 1 is reused
    import shutil

    shutil.rmtree(out)
    stage1_weights = tmp_path / "student.stage1-pruning" / "model.safetensors"
    mtime = stage1_weights.stat().st_mtime
    assert main(argv) == 2
    assert "stage 1 of an earlier run" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert stage1_weights.stat().st_mtime == mtime
    with torch.no_grad():
        assert torch.equal(leanformer.load(out)(**inputs).logits, saved_logits)  # same seed, same stage 2


@pytest.mark.parametrize("flags, expected_train, expected_distillation", [
    ([], {"max_steps": 3, "max_length": 16, "learning_rate": 1e-4}, {"temperature": 4.0, "hidden_weight": 0.5}),
    (["--max_steps", "2", "--max_length", "12"], {"max_steps": 2, "max_length": 12, "learning_rate": 1e-4}, {"temperature": 4.0}),
    (["--learning_rate=5e-5", "--temperature", "3"], {"max_steps": 3, "learning_rate": 5e-5}, {"temperature": 3.0, "hidden_weight": 0.5}),
])
def test_flags_the_user_typed_win_over_the_recipe_and_are_recorded(tmp_path, capsys, flags, expected_train, expected_distillation):
    """defaults < recipe < command line: `--epochs 1` beside a recipe with a train section was ignored."""
    write_tiny_task(tmp_path, rows=24)
    train = {"max_steps": 3, "batch_size": 8, "max_length": 16, "learning_rate": 1e-4, "report_to": "none", "progress": False, "save_steps": 100}
    distillation = {"temperature": 4.0, "hidden_weight": 0.5}
    recipe = {"stages": [{"method": "depth", "config": {"num_layers": 1}, "train": train, "distillation": distillation}]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    argv = ["compress", "--teacher", str(tmp_path / "teacher"), "--recipe", str(tmp_path / "recipe.yaml"),
            "--task", str(tmp_path / "data.csv"), "--output_dir", str(tmp_path / "student"), *flags]
    assert main(argv) == 0
    settings = json.loads((tmp_path / "student" / "leanformer_metrics.json").read_text())["settings"]
    assert {k: settings["train"][k] for k in expected_train} == expected_train
    assert {k: settings["distillation"][k] for k in expected_distillation} == expected_distillation
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("leanformer: training") and "(depth)" in line)
    assert f"max_length {expected_train.get('max_length', 16)}" in line
    assert ("from flags" in line) == bool(flags)
