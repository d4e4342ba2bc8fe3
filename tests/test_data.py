"""Data layer: built-in data sets load with their documented splits; local files load or fail clearly."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from leanformer.data import TaskSpec, builtin, list_tasks, load_task
from leanformer.errors import AssetMissingError, DataError

# name -> (train, validation, test), as documented in data/README.md
SPLIT_SIZES = {
    "glue/sst2": (65349, 2000, 872),
    "glue/mrpc": (3302, 366, 408),
    "glue/rte": (2241, 249, 277),
    "glue/cola": (7696, 855, 1043),
    "glue/stsb": (5175, 574, 1500),
    "glue/wnli": (572, 63, 71),
    "rotten_tomatoes": (10248, 1279, 1281),
    "squad_v1": (8660, 940, 970),
    "bible_en_fr": (23967, 1431, 1225),
    "vitaminc": (43890, 5399, 5379),
    "disfl_qa": (4729, 600, 564),
}
COLUMNS = {
    "classification": {1: ["sentence1", "label"], 2: ["sentence1", "sentence2", "label"]},
    "regression": {2: ["sentence1", "sentence2", "label"]},
    "qa": {2: ["id", "question", "context", "answers"]},
    "translation": {1: ["source", "target"]},
}
LABEL_NAMES = {
    "glue/sst2": ("negative", "positive"),
    "glue/mrpc": ("not_equivalent", "equivalent"),
    "glue/rte": ("entailment", "not_entailment"),
    "glue/cola": ("unacceptable", "acceptable"),
    "glue/wnli": ("not_entailment", "entailment"),
    "rotten_tomatoes": ("negative", "positive"),
    "vitaminc": ("True", "False", "Neither"),
}
BIGBENCH = {"vitaminc", "disfl_qa"}


def _needs_source(name):
    if name in BIGBENCH and not builtin.bigbench_archive().exists():
        pytest.skip(f"BIG-bench archive missing at {builtin.bigbench_archive()}: run `make assets`")


def test_list_tasks_is_the_documented_set():
    assert list_tasks() == sorted(SPLIT_SIZES)


@pytest.mark.parametrize("name", sorted(SPLIT_SIZES))
def test_builtin_sizes_columns_and_labels(name):
    _needs_source(name)
    task = load_task(name)
    spec = task.spec
    assert list(task.splits) == ["train", "validation", "test"]
    assert tuple(len(task.splits[s]) for s in ("train", "validation", "test")) == SPLIT_SIZES[name]
    for split in task.splits.values():
        assert split.column_names == COLUMNS[spec.kind][len(spec.text_columns)]
    if spec.kind == "classification":
        assert spec.label_names == LABEL_NAMES[name]
        for split in task.splits.values():  # every class in every split
            assert set(split["label"][:]) == set(range(spec.num_labels))
    if spec.kind == "qa":
        rows = task.splits["validation"]
        for context, answers in zip(rows["context"][:], rows["answers"][:]):
            for text, start in zip(answers["text"], answers["answer_start"]):
                assert context[start : start + len(text)] == text


def test_glue_label_counts_match_the_official_files():
    # src/leanformer/data/glue/README.md: SST-2 37569 positive in train, 444 in dev; CoLA 6023 + 721 acceptable.
    sst2 = load_task("glue/sst2").splits
    assert sum(sst2["train"]["label"][:]) + sum(sst2["validation"]["label"][:]) == 37569
    assert sum(sst2["test"]["label"][:]) == 444
    cola = load_task("glue/cola").splits
    assert sum(cola["test"]["label"][:]) == 721
    stsb = load_task("glue/stsb")
    assert stsb.spec.num_labels == 1 and stsb.spec.primary_metric == "spearman"
    assert min(stsb.splits["test"]["label"][:]) == 0.0 and max(stsb.splits["test"]["label"][:]) == 5.0
    mrpc = load_task("glue/mrpc").splits["test"]  # BOM-headed file: first row is data, not header
    assert mrpc[0]["sentence1"].startswith("He said the foodservice pie business")


def test_rotten_tomatoes_counts():
    splits = load_task("rotten_tomatoes").splits
    labels = Counter(label for split in splits.values() for label in split["label"][:])
    assert labels == {1: 7403, 0: 5405}  # fresh / rotten, plot rows dropped


def test_bible_pairs_are_clean_and_short():
    task = load_task("bible_en_fr")
    assert (task.spec.source_lang, task.spec.target_lang) == ("en", "fr")
    assert task.spec.metric_names == ("bleu", "chrf")
    first = task.splits["train"][0]
    assert first == {"source": "In the beginning God created the heavens and the earth.", "target": "Au commencement, Dieu créa les cieux et la terre."}
    for split in task.splits.values():
        for text in split["source"][:] + split["target"][:]:
            assert 0 < len(text) < 200
            assert not any(mark in text for mark in "[]`") and "(7:26)" not in text


@pytest.mark.parametrize(
    "name, groups",
    [("squad_v1", (38, 5, 5)), ("rotten_tomatoes", None), ("vitaminc", None), ("disfl_qa", (964, 120, 120)), ("bible_en_fr", (1071, 59, 59))],
)
def test_group_splits_are_disjoint(name, groups):
    _needs_source(name)
    rows, split_names = builtin.task_rows(name)
    keys = np.asarray(rows["group"])
    per_split = [set(keys[split_names == s]) for s in ("train", "validation", "test")]
    assert not (per_split[0] & per_split[1] or per_split[0] & per_split[2] or per_split[1] & per_split[2])
    if groups:
        assert tuple(len(s) for s in per_split) == groups


def test_squad_articles_do_not_cross_splits():
    # Independent of the loader: map each paragraph back to its article in the vendored file.
    with open(builtin.glue_dir() / "SQuAD" / "dev-v1.1.json", encoding="utf-8") as f:
        article_of = {p["context"]: a["title"] for a in json.load(f)["data"] for p in a["paragraphs"]}
    splits = load_task("squad_v1").splits
    titles = {s: {article_of[c] for c in splits[s]["context"][:]} for s in splits}
    assert not (titles["train"] & titles["test"] or titles["train"] & titles["validation"] or titles["validation"] & titles["test"])
    assert sum(map(len, titles.values())) == 48


@pytest.mark.parametrize("name, column", [("vitaminc", "sentence1"), ("disfl_qa", "context"), ("rotten_tomatoes", "sentence1")])
def test_text_groups_do_not_cross_splits(name, column):
    _needs_source(name)
    splits = load_task(name).splits
    seen = [set(splits[s][column][:]) for s in ("train", "validation", "test")]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


def test_splits_are_deterministic_and_independent_of_seed():
    a = load_task("glue/rte", seed=1).splits
    b = load_task("glue/rte", seed=2).splits
    for split in a:
        assert a[split]["sentence1"][:] == b[split]["sentence1"][:]


def test_max_train_samples_subsamples_train_only():
    full = load_task("glue/mrpc").splits
    small = load_task("glue/mrpc", max_train_samples=100, seed=3).splits
    again = load_task("glue/mrpc", max_train_samples=100, seed=3).splits
    other = load_task("glue/mrpc", max_train_samples=100, seed=4).splits
    assert len(small["train"]) == 100
    assert small["train"]["sentence1"][:] == again["train"]["sentence1"][:]
    assert small["train"]["sentence1"][:] != other["train"]["sentence1"][:]
    assert set(small["train"]["sentence1"][:]) <= set(full["train"]["sentence1"][:])
    assert small["test"]["sentence1"][:] == full["test"]["sentence1"][:]
    assert small["validation"]["sentence1"][:] == full["validation"]["sentence1"][:]
    assert len(load_task("glue/wnli", max_train_samples=10**6).splits["train"]) == 572
    with pytest.raises(DataError, match="max_train_samples"):
        load_task("glue/wnli", max_train_samples=0)


def test_unknown_name_lists_the_builtins():
    with pytest.raises(DataError, match=r"unknown data set 'glue/sst3'.*glue/sst2.*squad_v1"):
        load_task("glue/sst3")


def test_builtin_rejects_local_file_options():
    with pytest.raises(DataError, match="--text_columns only apply to local files"):
        load_task("glue/sst2", text_columns=["sentence"])


def test_missing_bigbench_archive_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("LEANFORMER_CACHE", str(tmp_path))
    with pytest.raises(AssetMissingError) as error:
        load_task("vitaminc")
    message = str(error.value)
    assert "make assets" in message
    assert f"curl -fsSL --create-dirs -o {tmp_path / 'src' / 'bigbench-1.0.0.tar.gz'} https://files.pythonhosted.org/" in message


def test_missing_glue_folder_names_the_override(tmp_path, monkeypatch):
    monkeypatch.setenv("LEANFORMER_DATA", str(tmp_path))
    with pytest.raises(AssetMissingError, match="LEANFORMER_DATA"):
        load_task("glue/rte")


def test_locate_answer_ignores_whitespace():
    context = "In 1466 , perhaps 40 , 000 people died ."
    start = builtin.locate_answer(context, "40,000")
    assert start == context.index("40 , 000")
    assert builtin.locate_answer(context, "plague") == -1


def test_clean_verse_strips_markup():
    assert builtin.clean_verse("(7:26) L'Éternel dit à Moïse:") == "L'Éternel dit à Moïse:"
    assert builtin.clean_verse("God`s offering, [even] an  offering") == "God's offering, even an offering"


# ----------------------------------------------------------------------------- local files


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def _rows(n, label=lambda i: "pos" if i % 2 else "neg"):
    return "".join(f"review number {i},{label(i)}\n" for i in range(n))


def test_local_csv_with_string_labels(tmp_path):
    path = _write(tmp_path / "reviews.csv", "review,sentiment\n" + _rows(20))
    task = load_task(path, text_columns=["review"], label_column="sentiment")
    assert task.spec == TaskSpec(path, "classification", ("sentence1",), "label", ("neg", "pos"), ("accuracy", "f1"))
    assert [len(task.splits[s]) for s in ("train", "validation", "test")] == [16, 2, 2]
    assert task.splits["train"].column_names == ["sentence1", "label"]
    rows = [r for s in task.splits.values() for r in s]
    assert sorted(r["sentence1"] for r in rows) == sorted(f"review number {i}" for i in range(20))
    assert all(r["label"] == int(r["sentence1"].split()[-1]) % 2 for r in rows)
    assert load_task(path, text_columns=["review"], label_column="sentiment").splits["test"]["sentence1"][:] == task.splits["test"]["sentence1"][:]


def test_local_integer_labels_sort_numerically(tmp_path):
    path = _write(tmp_path / "stars.csv", "text,label\n" + _rows(30, label=lambda i: [2, 10, 1][i % 3]))
    task = load_task(path)
    assert task.spec.label_names == ("1", "2", "10")
    first = task.splits["train"][0]
    assert task.spec.label_names[first["label"]] == str([2, 10, 1][int(first["sentence1"].split()[-1]) % 3])


def test_local_given_label_names_accept_names_or_ids(tmp_path):
    names = _write(tmp_path / "names.csv", "text,label\n" + _rows(10))
    task = load_task(names, label_names=["pos", "neg"])
    assert task.spec.label_names == ("pos", "neg")
    row = task.splits["train"][0]
    assert row["label"] == (0 if int(row["sentence1"].split()[-1]) % 2 else 1)
    ids = _write(tmp_path / "ids.csv", "text,label\n" + _rows(10, label=lambda i: i % 2))
    assert load_task(ids, label_names=["neg", "pos"]).spec.label_names == ("neg", "pos")


def test_local_formats_tsv_jsonl_parquet(tmp_path):
    tsv = _write(tmp_path / "pairs.tsv", "sentence1\tsentence2\tlabel\n" + "".join(f'a "quoted {i}\tb {i}\t{i % 2}\n' for i in range(10)))
    task = load_task(tsv)
    assert task.spec.text_columns == ("sentence1", "sentence2")
    assert any(t.startswith('a "quoted') for t in task.splits["train"]["sentence1"])  # quotes kept as text
    jsonl = _write(tmp_path / "scores.jsonl", "".join(json.dumps({"sentence": f"s {i}", "score": i / 3}) + "\n" for i in range(10)))
    task = load_task(jsonl, label_column="score")
    assert task.spec.kind == "regression" and task.spec.text_columns == ("sentence1",)
    import pandas as pd

    parquet = tmp_path / "pairs.parquet"
    pd.DataFrame({"en": [f"hello {i}" for i in range(10)], "fr": [f"bonjour {i}" for i in range(10)]}).to_parquet(parquet)
    task = load_task(str(parquet), kind="translation", text_columns=["en"], label_column="fr")
    assert task.splits["train"].column_names == ["source", "target"]
    assert task.spec.metric_names == ("bleu", "chrf")


def test_local_qa_jsonl(tmp_path):
    rows = [{"question": f"q{i}?", "context": f"the answer is {i}.", "answers": {"text": [str(i)], "answer_start": [14]}} for i in range(10)]
    path = _write(tmp_path / "qa.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    task = load_task(path, kind="qa")
    assert task.splits["train"].column_names == ["id", "question", "context", "answers"]
    assert task.spec.primary_metric == "f1"


def test_local_missing_column_names_file_and_fix(tmp_path):
    path = _write(tmp_path / "x.csv", "review,stars\n" + _rows(10))
    with pytest.raises(DataError) as error:
        load_task(path, label_column="stars")
    assert str(error.value) == f"data file '{path}' has no column 'text' (columns: review, stars): pass --text_columns review"
    with pytest.raises(DataError, match=rf"data file '{path}' has no column 'label' .*: pass --label_column stars"):
        load_task(path, text_columns=["review"])


def test_local_empty_files(tmp_path):
    for content in ("", "text,label\n"):
        path = _write(tmp_path / "empty.csv", content)
        with pytest.raises(DataError, match=rf"data file '{path}' is empty.*rows"):
            load_task(path)


def test_local_labels_outside_the_label_set(tmp_path):
    path = _write(tmp_path / "x.csv", "text,label\n" + _rows(9) + "so-so,neutral\n")
    with pytest.raises(DataError) as error:
        load_task(path, label_names=["neg", "pos"])
    message = str(error.value)
    assert message.startswith(f"data file '{path}' has labels outside the label set ['neg', 'pos']: ['neutral']")
    assert "--label_names" in message and "\n" not in message


def test_local_bad_paths(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_task(str(tmp_path / "missing.csv"))
    path = _write(tmp_path / "bad.json", "{not json")
    with pytest.raises(DataError, match=rf"data file '{path}' cannot be read as json"):
        load_task(path)
    path = _write(tmp_path / "two.csv", "text,label\na,x\nb,y\n")
    with pytest.raises(DataError, match="needs at least 3"):
        load_task(path)


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16"])
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_a_file_that_is_not_utf8_is_named_with_the_fix(tmp_path, encoding, suffix):
    rows = [("crème brûlée", "pos"), ("naïve façade", "neg"), ("déjà vu", "pos"), ("señor", "neg")]
    if suffix == ".jsonl":
        text = "\n".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) for t, y in rows)
    else:
        sep = "\t" if suffix == ".tsv" else ","
        text = "\n".join([f"text{sep}label"] + [f"{t}{sep}{y}" for t, y in rows])
    path = tmp_path / f"data{suffix}"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(DataError, match=r"is not UTF-8 text \(byte 0x[0-9a-f]{2} at offset \d+\): save it as UTF-8") as info:
        load_task(str(path), text_columns=["text"], label_column="label")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("row", ["a b,pos,extra", "a,b,c,d", '"a, b",pos,x'])
def test_a_ragged_csv_row_is_named_with_the_fix(tmp_path, row):
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(["text,label", "one two,pos", row, "three,neg", "four five,pos"]))
    with pytest.raises(DataError, match="has a row with another number of fields than its header .*line 3.*: quote fields"):
        load_task(str(path), text_columns=["text"], label_column="label")


@pytest.mark.parametrize("label", [[1, 2], [], {"x": 1}, {"labels": ["a"]}])
@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_structured_labels_are_refused_with_the_row(tmp_path, label, suffix):
    import pandas as pd

    frame = pd.DataFrame({"text": ["a b", "c d", "e f", "g h"], "label": [label] * 4})
    path = tmp_path / f"data{suffix}"
    frame.to_json(path, orient="records", lines=True) if suffix == ".jsonl" else frame.to_parquet(path)
    with pytest.raises(DataError, match=r"the 'label' of row 1 is .*, a list or mapping: give one class name or number per row"):
        load_task(str(path), text_columns=["text"], label_column="label")


# -- the user's own splits: three files, a split column, or one file split 80/10/10 ------------

def _split_of(task, text):
    return next(s for s in ("train", "validation", "test") if text in task.splits[s]["sentence1"])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("given", [("validation", "test"), ("test",), ("validation",)])
def test_split_files_are_the_splits_and_a_missing_one_is_carved_from_train(tmp_path, suffix, given):
    import pandas as pd

    def write(name, start, n):
        frame = pd.DataFrame({"text": [f"{name} row {i}" for i in range(start, start + n)], "label": [["neg", "pos"][i % 2] for i in range(n)]})
        path = tmp_path / f"{name}{suffix}"
        frame.to_parquet(path) if suffix == ".parquet" else path.write_text(
            frame.to_csv(index=False) if suffix == ".csv" else frame.to_json(orient="records", lines=True))
        return str(path)

    files = {"validation_file": write("validation", 0, 7), "test_file": write("test", 0, 9)}
    task = load_task(write("train", 0, 40), **{f"{s}_file": files[f"{s}_file"] for s in given})
    for split in given:  # a given file is that split, all of it, nothing else
        assert sorted(task.splits[split]["sentence1"]) == sorted(f"{split} row {i}" for i in range(7 if split == "validation" else 9))
    missing = [s for s in ("validation", "test") if s not in given]
    for split in missing:  # carved from train: 10% of 40 rows
        assert len(task.splits[split]) == 4 and all(t.startswith("train row") for t in task.splits[split]["sentence1"])
    assert len(task.splits["train"]) == 40 - 4 * len(missing)
    assert task.spec.label_names == ("neg", "pos")
    assert "files train" in task.splits_from and all(f"{s} '" in task.splits_from for s in given)
    assert all(f"{s}: 10% of train" in task.splits_from for s in missing)


@pytest.mark.parametrize("column, values", [
    ("split", ["train", "validation", "test"]),
    ("split", ["TRAIN", "dev", "Test"]),
    ("fold", ["training", "val", "testing"]),
    ("split", ["train", "valid", "test"]),
])
def test_a_split_column_says_each_rows_split(tmp_path, column, values):
    rows = [f"row {i},{['a', 'b'][i % 2]},{values[0] if i < 20 else values[1] if i < 25 else values[2]}" for i in range(30)]
    path = _write(tmp_path / "data.csv", f"text,label,{column}\n" + "\n".join(rows) + "\n")
    task = load_task(path, split_column=None if column == "split" else column)
    assert [len(task.splits[s]) for s in ("train", "validation", "test")] == [20, 5, 5]
    assert _split_of(task, "row 3") == "train" and _split_of(task, "row 22") == "validation" and _split_of(task, "row 27") == "test"
    assert task.splits_from == f"the {column!r} column of {path!r}" and task.splits["train"].column_names == ["sentence1", "label"]
    assert "train 20 / validation 5 / test 5 rows: " in task.split_summary()


def test_a_split_column_without_test_rows_carves_them_from_train(tmp_path):
    rows = [f"row {i},{['a', 'b'][i % 2]},{'train' if i < 40 else 'validation'}" for i in range(50)]
    task = load_task(_write(tmp_path / "data.csv", "text,label,split\n" + "\n".join(rows)))
    assert [len(task.splits[s]) for s in ("train", "validation", "test")] == [36, 10, 4]
    assert "test: 10% of train" in task.splits_from


def test_one_file_without_a_split_column_is_split_80_10_10_and_says_so(tmp_path):
    task = load_task(_write(tmp_path / "data.csv", "text,label\n" + _rows(40)))
    assert [len(task.splits[s]) for s in ("train", "validation", "test")] == [32, 4, 4]
    assert task.splits_from.startswith("80/10/10 of the rows of")


@pytest.mark.parametrize("values, message", [
    (["train", "holdout", "test"], r"split column 'split' has values \['holdout'\]"),
    (["test", "validation", "test"], "marks no row as train"),
    (["train", "", "test"], r"has values \['\(empty\)'\]"),
])
def test_bad_split_columns_are_one_clear_error(tmp_path, values, message):
    rows = [f"row {i},{['a', 'b'][i % 2]},{values[i % 3]}" for i in range(30)]
    with pytest.raises(DataError, match=message):
        load_task(_write(tmp_path / "data.csv", "text,label,split\n" + "\n".join(rows)))


def test_split_files_that_disagree_are_one_clear_error(tmp_path):
    train = _write(tmp_path / "train.csv", "text,label\n" + _rows(20))
    with pytest.raises(DataError, match="has the columns review, label but the train file .* has text, label"):
        load_task(train, test_file=_write(tmp_path / "test.csv", "review,label\n" + _rows(5)))
    with pytest.raises(DataError, match="--split_column splits one file"):
        load_task(train, test_file=_write(tmp_path / "t2.csv", "text,label\n" + _rows(5)), split_column="split")
    with pytest.raises(DataError, match="only apply to local files"):
        load_task("glue/wnli", test_file=train)
    with pytest.raises(DataError, match="has no column 'fold'"):
        load_task(train, split_column="fold")


def test_task_config_takes_the_train_file_flag_and_refuses_two_data_names(tmp_path):
    from leanformer.data import TaskConfig
    from leanformer.errors import ConfigError

    train = _write(tmp_path / "train.csv", "text,label\n" + _rows(20))
    test = _write(tmp_path / "test.csv", "text,label\n" + _rows(6))
    task = TaskConfig(train_file=train, test_file=test).load()
    assert len(task.splits["test"]) == 6 and TaskConfig(task=train, test_file=test).load().splits_from == task.splits_from
    with pytest.raises(ConfigError, match="both name the data"):
        TaskConfig(task="glue/mrpc", train_file=train)
    with pytest.raises(ConfigError, match="need the train file"):
        TaskConfig(test_file=test)
