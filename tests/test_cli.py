"""The CLI: generated help, one-line errors with exit status 2 and no traceback."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from leanformer.cli import main
from leanformer.distill import DistillationConfig
from leanformer.training import TrainConfig


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("finetune", "compress", "evaluate", "benchmark", "demo"):
        assert command in out


@pytest.mark.parametrize("command,configs", [("finetune", [TrainConfig]), ("compress", [TrainConfig, DistillationConfig])])
def test_help_documents_every_config_field(command, configs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for config in configs:
        for f in dataclasses.fields(config):
            assert f"--{f.name}" in out, f.name
            assert f.metadata["help"].split()[0] in out


def test_compress_without_a_method_says_what_to_do(capsys):
    assert main(["compress", "--teacher", "t", "--output_dir", "o"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("leanformer: error: choose a method with --method NAME or --recipe FILE")
    assert "\n" not in err


def test_unknown_method_and_bad_recipe(tmp_path, capsys):
    assert main(["compress", "--teacher", "t", "--output_dir", "o", "--method", "nope"]) == 2
    assert "unknown compression method 'nope'" in capsys.readouterr().err
    recipe = tmp_path / "r.yaml"
    recipe.write_text("method: kronecker\nconfgi: {}\n")
    assert main(["compress", "--teacher", "t", "--output_dir", "o", "--recipe", str(recipe)]) == 2
    assert "unknown key 'confgi'; allowed keys: method, config, distillation, train, general, general_train" in capsys.readouterr().err


def test_bad_flag_values_are_one_line_errors(capsys):
    assert main(["finetune", "--batch_size", "0"]) == 2
    assert capsys.readouterr().err.strip() == "leanformer: error: batch_size must be > 0, got 0"


def test_evaluate_a_directory_that_is_not_a_model(tmp_path, capsys):
    assert main(["evaluate", "--model", str(tmp_path), "--task", "glue/wnli"]) == 2
    assert "is not a saved model: no config.json" in capsys.readouterr().err


def test_bad_data_file_from_the_command_line_prints_no_traceback(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "leanformer.cli", "finetune", "--task", str(empty), "--text_columns", "text", "--label_column", "label"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(empty) in result.stderr or "empty.csv" in result.stderr


def _config_classes():
    """Every config dataclass leanformer defines (methods, training, distillation, CLI commands)."""
    import leanformer.cli  # noqa: F401  (defines the command configs)
    from leanformer.config import ConfigBase
    from leanformer.registry import registered_methods

    registered_methods()  # imports every method folder

    seen, stack = [], list(ConfigBase.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return seen


def _float_fields():
    import typing

    out = []
    for cls in _config_classes():
        hints = typing.get_type_hints(cls)
        out += [(cls, f.name) for f in dataclasses.fields(cls) if f.init and float in (hints[f.name], *typing.get_args(hints[f.name]))]
    return out


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused_by_every_config(value):
    from leanformer.errors import ConfigError

    fields = _float_fields()
    assert len(fields) > 20  # every method, training and distillation config is covered
    for cls, name in fields:
        with pytest.raises(ConfigError, match=f"{cls.__name__}.{name}: expected a finite number"):
            cls.from_dict({name: value})


@pytest.mark.parametrize("flag, value", [("--epochs", "nan"), ("--learning_rate", "inf"), ("--warmup_ratio", "-inf"), ("--temperature", "NaN")])
def test_non_finite_flags_are_one_line_errors_and_nothing_is_written(tmp_path, capsys, flag, value):
    out = tmp_path / "student"
    assert main(["compress", "--teacher", str(tmp_path / "t"), "--output_dir", str(out), "--method", "quantization", f"{flag}={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "expected a finite number" in err and flag.lstrip("-") in err and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize("flag, value, message", [
    ("--seed", "-1", "seed must be in [0, 2^32), got -1"),
    ("--seed", str(2**32), "seed must be in [0, 2^32)"),
    ("--warmup_ratio", "1.5", "warmup_ratio must be in [0, 1), got 1.5"),
    ("--warmup_ratio", "1", "warmup_ratio must be in [0, 1), got 1.0"),
    ("--warmup_ratio", "-0.1", "warmup_ratio must be in [0, 1), got -0.1"),
    ("--weight_decay", "-0.01", "weight_decay must be >= 0"),
])
def test_training_flags_out_of_range_are_one_line_errors(capsys, flag, value, message):
    assert main(["finetune", f"{flag}={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("leanformer: error: ") and message in err and "\n" not in err


HELP_ARGVS = [["--help"]] + [[command, "--help"] for command in ("finetune", "general", "compress", "evaluate", "benchmark", "export", "report", "demo")]


def test_every_help_imports_neither_torch_nor_transformers():
    """`leanformer --help` and every `leanformer COMMAND --help` (with each method's flags) answer at
    once: config modules import no heavy library; commands import what they run after parsing."""
    from leanformer.registry import available_methods

    argvs = HELP_ARGVS + [["compress", "--method", name, "--help"] for name in available_methods()]
    code = f"""
import contextlib, io, sys
from leanformer.cli import main
for argv in {argvs!r}:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
    assert code == 0 and "--help" in out.getvalue() or argv == ["--help"], (argv, code)
print(sorted(m for m in ('torch', 'transformers', 'onnx', 'onnxruntime', 'datasets') if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


def test_config_modules_import_no_heavy_library():
    """Every module that defines a config class can be imported alone without torch or transformers."""
    modules = sorted({cls.__module__ for cls in _config_classes() if cls.__module__.startswith("leanformer")})
    assert len(modules) >= 10
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n" \
           "print(sorted(m for m in ('torch', 'transformers', 'onnx', 'datasets') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", (modules, result.stdout + result.stderr)


@pytest.mark.parametrize("argv, parsed", [
    (["--epochs", "2", "--progress", "false", "--max_steps=7"], {"epochs": 2.0, "progress": False, "max_steps": 7}),
    (["--progress"], {"progress": True}),
    (["--no_progress"], {"progress": False}),
    (["--progress", "YES", "--report_to", "none"], {"progress": True, "report_to": "none"}),
    ([], {}),
])
def test_flags_parse_into_the_config_as_from_dict_would(argv, parsed):
    from leanformer.config import parse_flags

    (train,) = parse_flags((TrainConfig,), argv, "t", "")
    assert train == TrainConfig.from_dict(parsed)


def test_list_flags_literals_and_unknown_flags():
    from leanformer.config import parse_flags
    from leanformer.errors import ConfigError
    from leanformer.methods.kronecker import KroneckerConfig

    (config,) = parse_flags((KroneckerConfig,), ["--attention_a", "4", "2", "--search_objective", "capacity"], "t", "")
    assert config == KroneckerConfig(attention_a=[4, 2], search_objective="capacity")
    with pytest.raises(SystemExit) as exit_info:  # argparse: usage and exit status 2, no traceback
        parse_flags((KroneckerConfig,), ["--search_objective", "speed"], "t", "")
    assert exit_info.value.code == 2
    with pytest.raises(ConfigError, match="unknown argument.* --epoch 3"):
        parse_flags((TrainConfig,), ["--epoch", "3"], "leanformer finetune", "")


def test_a_command_prints_its_result_alone_on_stdout(tmp_path, capfd, monkeypatch):
    """`T=$(leanformer finetune ...)` gets the teacher directory; settings, progress and training
    logs go to stderr. Likewise compress (student), export (file) and evaluate (metrics JSON)."""
    from tiny_models import write_tiny_task

    write_tiny_task(tmp_path, rows=24)
    task = ["--task", str(tmp_path / "data.csv"), "--text_columns", "text", "--label_column", "label"]
    steps = ["--max_steps", "2", "--batch_size", "4", "--max_length", "16", "--logging_steps", "1"]

    def stdout_of(argv):
        capfd.readouterr()
        assert main(argv) == 0
        captured = capfd.readouterr()
        return captured.out, captured.err

    monkeypatch.setenv("LEANFORMER_CACHE", str(tmp_path / "cache"))
    out, err = stdout_of(["finetune", "--model", str(tmp_path / "teacher"), *task, *steps])
    teacher = out.strip()
    assert out == teacher + "\n" and (Path(teacher) / "config.json").is_file() and "loss" in err
    student = tmp_path / "student"
    # the user's own test file (run_glue's flags): used as the test split, printed and recorded
    (tmp_path / "test.csv").write_text("text,label\n" + "".join(f"held out {i},{['neg', 'pos'][i % 2]}\n" for i in range(6)))
    split_files = ["--train_file", str(tmp_path / "data.csv"), "--test_file", str(tmp_path / "test.csv"), *task[2:]]
    out, err = stdout_of(["compress", "--teacher", teacher, "--method", "quantization", "--output_dir", str(student), *split_files, *steps])
    assert out == f"{student}\n" and "leanformer: training" in err
    splits = json.loads((student / "leanformer_metrics.json").read_text())["splits"]
    assert splits.startswith("train 22 / validation 2 / test 6 rows: files train ") and splits in err
    out, err = stdout_of(["export", "--model", str(student), "--output", str(tmp_path / "s.onnx")])
    assert out == f"{tmp_path / 's.onnx'}\n" and "onnxruntime int8" in err
    out, _ = stdout_of(["evaluate", "--model", str(student), *task])
    assert 0 <= json.loads(out)["accuracy"] <= 100  # percent


@pytest.mark.parametrize("opset", ["9", "13", "21", "30"])
def test_export_refuses_an_opset_it_cannot_write(tmp_path, capsys, opset):
    assert main(["export", "--model", str(tmp_path / "m"), "--output", str(tmp_path / "m.onnx"), "--opset", opset]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"leanformer: error: --opset {opset} cannot express these graphs: choose 14 to 20") and "\n" not in err
    assert not (tmp_path / "m.onnx").exists()
