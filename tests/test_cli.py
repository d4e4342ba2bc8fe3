"""The CLI: generated help, one-line errors with exit status 2 and no traceback."""

import dataclasses
import subprocess
import sys

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
    import leanformer.methods  # noqa: F401
    from leanformer.config import ConfigBase

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


def test_top_level_help_imports_neither_torch_nor_transformers():
    """`leanformer --help` answers at once: the heavy libraries load when a command needs them."""
    code = ("import sys; from leanformer.cli import main; import leanformer; assert main(['--help']) == 0; "
            "print(sorted(m for m in ('torch', 'transformers', 'onnx', 'datasets') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


@pytest.mark.parametrize("opset", ["9", "13", "21", "30"])
def test_export_refuses_an_opset_it_cannot_write(tmp_path, capsys, opset):
    assert main(["export", "--model", str(tmp_path / "m"), "--output", str(tmp_path / "m.onnx"), "--opset", opset]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"leanformer: error: --opset {opset} cannot express these graphs: choose 14 to 20") and "\n" not in err
    assert not (tmp_path / "m.onnx").exists()
