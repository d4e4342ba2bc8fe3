"""The whole CLI path on a tiny teacher: compress (with and without a recipe and stage 1), evaluate, benchmark."""

import json

import pytest
import transformers

import leanformer
from leanformer.cli import main
from leanformer.methods.kronecker import KroneckerLinear
from tiny_models import WORDS, tiny_config, tiny_tokenizer, write_tiny_task

@pytest.fixture
def teacher_and_data(tmp_path):
    write_tiny_task(tmp_path)
    pretrained = tmp_path / "pretrained"
    transformers.BertModel(tiny_config("bert")).save_pretrained(pretrained)
    tiny_tokenizer().save_pretrained(pretrained)
    (tmp_path / "corpus.txt").write_text("\n".join(" ".join(WORDS[(i + j) % 95] for j in range(10)) for i in range(30)))
    return tmp_path


TASK = ["--text_columns", "text", "--label_column", "label"]
FAST = ["--max_steps", "3", "--batch_size", "8", "--report_to", "none", "--progress", "false", "--max_length", "16"]


def test_compress_evaluate_benchmark_from_the_command_line(teacher_and_data, capsys):
    d = teacher_and_data
    code = main(
        ["compress", "--teacher", str(d / "teacher"), "--method", "kronecker", "--attention_a", "4", "2", "--ffn_a", "8", "4",
         "--embedding_n", "4", "--task", str(d / "data.csv"), *TASK, *FAST, "--output_dir", str(d / "student")]
    )
    assert code == 0, capsys.readouterr().err
    student = leanformer.load(d / "student")
    assert sum(isinstance(m, KroneckerLinear) for m in student.modules()) == 12
    metrics = json.loads((d / "student" / "leanformer_metrics.json").read_text())
    # the method's own losses were used (KroneckerBERT: every weight 1) since none were given
    assert metrics["settings"]["distillation"]["hidden_weight"] == 1.0
    capsys.readouterr()

    assert main(["evaluate", "--model", str(d / "student"), "--task", str(d / "data.csv"), *TASK]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["accuracy"] <= 100

    out = d / "rows.json"
    assert main(["benchmark", "--teacher", str(d / "teacher"), "--students", str(d / "student"), "--task", str(d / "data.csv"),
                 *TASK, "--repeats", "1", "--seq_len", "32", "--output_json", str(out)]) == 0
    rows = json.loads(out.read_text())
    capsys.readouterr()
    assert main(["benchmark", "--teacher", str(d / "teacher"), "--task", str(d / "data.csv"), *TASK, "--seq_len", "128"]) == 2
    assert "sequence length 128 exceeds the maximum 64" in capsys.readouterr().err
    assert [r["method"] for r in rows] == ["teacher", "kronecker"]
    assert rows[1]["params"] < rows[0]["params"]

    # refuses to overwrite without --overwrite
    assert main(["compress", "--teacher", str(d / "teacher"), "--method", "kronecker", "--embedding_n", "4",
                 "--task", str(d / "data.csv"), *TASK, *FAST, "--output_dir", str(d / "student")]) == 2


def test_recipe_with_general_distillation_stage(teacher_and_data, capsys):
    d = teacher_and_data
    recipe = d / "recipe.yaml"
    recipe.write_text(
        f"""
method: kronecker
config: {{attention_a: [4, 2], ffn_a: [8, 4], embedding_n: 4}}
general: {{pretrained: {d / 'pretrained'}, corpus: {d / 'corpus.txt'}}}
general_train: {{max_steps: 2, batch_size: 8, report_to: none, progress: false, max_length: 16}}
train: {{max_steps: 2, batch_size: 8, report_to: none, progress: false, max_length: 16}}
"""
    )
    code = main(["compress", "--teacher", str(d / "teacher"), "--recipe", str(recipe), "--task", str(d / "data.csv"), *TASK,
                 "--output_dir", str(d / "student")])
    assert code == 0, capsys.readouterr().err
    assert (d / "student.general" / "config.json").is_file()
    stage1 = leanformer.load(d / "student.general")
    student = leanformer.load(d / "student")
    # the student's factors moved on from stage 1 in stage 2, but started there: same structure
    assert stage1.encoder.layer[0].attention.self.query.A.shape == student.bert.encoder.layer[0].attention.self.query.A.shape
