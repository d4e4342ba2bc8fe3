"""A user's own data file (.csv, .tsv, .json, .jsonl, .parquet) as a task.

The file is read with `datasets.load_dataset(<format>, data_files=...)` (local, works offline),
its columns are renamed to the normalised names of its kind (see `spec.py`). TSV files are read
with quoting off, as GLUE's are. Splits are the user's when the data says them:

- separate files (`--train_file`/`--task`, `--validation_file`, `--test_file`), the convention of
  transformers' `run_glue.py`; or a split column (`split`, or `--split_column NAME`) whose values
  are train, validation (dev, val, valid) and test. A split not given is carved from train with
  the fixed `SPLIT_SEED`: 10% of train for one missing split, 80/10/10 when both are missing.
- otherwise one file's rows are split 80/10/10 with `SPLIT_SEED` (rows, not groups).

How the splits were made is `TaskData.splits_from`, printed and recorded with every model. Defaults:

- kind: "regression" when the label column holds non-integer numbers, else "classification";
  qa and translation must be named.
- text columns: `sentence1` (+ `sentence2`), else `sentence`, else `text` for classification and
  regression; `question`, `context` for qa; `source` for translation.
- label column: `label`; `answers` (SQuAD format) for qa; `target` for translation.
- classification labels may be strings or integers: `label_names` defaults to the sorted distinct
  values. Given `label_names`, a value matches a name, or else an integer value is read as an id.
"""

from __future__ import annotations

import codecs
import csv
import math
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
from pyarrow import ArrowException

from ..errors import DataError
from .spec import KINDS, TaskData, TaskSpec
from .splits import SPLIT_NAMES, SPLIT_SEED, complete_splits, rows_of, split_by_group

FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
LOCAL_FRACTIONS = (0.8, 0.1, 0.1)
DEFAULT_METRICS = {
    "classification": ("accuracy", "f1"),
    "regression": ("spearman", "pearson"),
    "qa": ("f1", "exact_match"),
    "translation": ("bleu", "chrf"),
}


def is_local_file(name: str) -> bool:
    return Path(name).suffix.lower() in FORMATS


def _check_utf8(path: Path, shown: str) -> None:
    """Text formats must be UTF-8: the readers otherwise fail deep inside, or pass undecodable bytes on."""
    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                raise DataError(f"data file {shown!r} is not UTF-8 text (byte 0x{chunk[err.start]:02x} at offset {offset + err.start}): "
                                "save it as UTF-8") from None
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataError(f"data file {shown!r} is not UTF-8 text (it ends inside a character): save it as UTF-8") from None


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None or (error.__context__ is not None and not error.__suppress_context__):
        error = error.__cause__ or error.__context__
    return error


def _read(path: Path, shown: str) -> datasets.Dataset:
    if not path.is_file():
        raise DataError(f"data file {shown!r} does not exist: check the path")
    if path.stat().st_size == 0:
        raise DataError(f"data file {shown!r} is empty: it needs a header row and at least 3 data rows")
    suffix = path.suffix.lower()
    if suffix != ".parquet":
        _check_utf8(path, shown)
    options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if suffix == ".tsv" else {}
    try:
        rows = datasets.load_dataset(FORMATS[suffix], data_files=str(path), split="train", **options)
    except Exception as error:  # the readers raise many types; the user needs the file named
        if "corresponds to no data" in str(error):  # a header without rows
            raise DataError(f"data file {shown!r} is empty (no data rows): it needs at least 3 rows") from error
        cause = _root_cause(error)  # the readers wrap the real cause ("An error occurred while generating the dataset")
        if isinstance(cause, UnicodeDecodeError):
            raise DataError(f"data file {shown!r} is not UTF-8 text (byte 0x{cause.object[cause.start]:02x} at offset {cause.start}): "
                            "save it as UTF-8") from error
        first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        if "utf8" in first_line.lower().replace("-", ""):
            raise DataError(f"data file {shown!r} is not UTF-8 text ({first_line}): save it as UTF-8") from error
        if "expected" in first_line.lower() and "fields" in first_line.lower():
            raise DataError(f"data file {shown!r} has a row with another number of fields than its header ({first_line}): "
                            "quote fields that contain the delimiter") from error
        raise DataError(f"data file {shown!r} cannot be read as {suffix[1:]}: {first_line}") from error
    if len(rows) == 0:
        raise DataError(f"data file {shown!r} is empty (no data rows): it needs at least 3 rows")
    return rows


def _require_columns(rows: datasets.Dataset, wanted: Sequence[str], flag: str, shown: str, exclude: Sequence[str] = ()) -> None:
    for column in wanted:
        if column not in rows.column_names:
            if flag == "text_columns":  # guess: the first string column that is not the label
                candidates = [c for c in rows.column_names if c not in exclude and getattr(rows.features[c], "dtype", "") in ("string", "large_string")]
            else:  # guess: labels usually come last
                candidates = [c for c in reversed(rows.column_names) if c not in exclude]
            hint = f"pass --{flag} {candidates[0] if candidates else '<column>'}"
            raise DataError(f"data file {shown!r} has no column {column!r} (columns: {', '.join(rows.column_names)}): {hint}")


def _default_text_columns(rows: datasets.Dataset, kind: str) -> tuple[str, ...]:
    if kind == "qa":
        return ("question", "context")
    if kind == "translation":
        return ("source",)
    for candidate in (("sentence1", "sentence2"), ("sentence1",), ("sentence",)):
        if all(c in rows.column_names for c in candidate):
            return candidate
    return ("text",)


def _is_integral(values: list) -> bool:
    return all(isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer()) for v in values)


def _label_text(value) -> str:
    """A label value as a class name: 1.0 (a JSON/parquet float) reads as "1"."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _infer_kind(values: list) -> str:
    """Regression when every label is a number and some are not whole numbers, else classification."""
    present = [v for v in values if v is not None]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    return "regression" if numeric and not _is_integral([v for v in present if not math.isnan(v)]) else "classification"


def _class_ids(values: list, label_names: Sequence[str] | None, shown: str) -> tuple[list[int], tuple[str, ...]]:
    if label_names is None:
        try:
            distinct = sorted(set(values))  # numbers sort numerically, strings alphabetically
        except TypeError:  # mixed numbers and strings
            distinct = sorted(set(values), key=str)
        label_names = [_label_text(v) for v in distinct]
        index = {v: i for i, v in enumerate(distinct)}
        if len(label_names) < 2:
            raise DataError(f"data file {shown!r} has a single label value {label_names[0]!r}: classification needs at least 2 classes")
        return [index[v] for v in values], tuple(label_names)
    names = [str(n) for n in label_names]
    by_name = {n: i for i, n in enumerate(names)}
    ids, outside = [], set()
    for value in values:
        text = _label_text(value)
        if text in by_name:
            ids.append(by_name[text])
        elif _is_integral([value]) and 0 <= int(value) < len(names):  # an id into label_names
            ids.append(int(value))
        else:
            outside.add(text)
    if outside:
        raise DataError(
            f"data file {shown!r} has labels outside the label set {names}: {sorted(outside)}; add them to --label_names or remove those rows"
        )
    return ids, tuple(names)


def _normalise(rows, kind, text_columns, label_column, label_names, shown) -> tuple[datasets.Dataset, TaskSpec]:
    """Rows with the normalised columns of `kind` only, and the task's spec."""
    values = rows[label_column][:]  # [:] reads the whole column at once
    if any(v is None for v in values):
        raise DataError(f"data file {shown!r} has {sum(v is None for v in values)} rows without a {label_column!r} value: fill or remove them")
    if kind == "qa":
        first = values[0]
        if not isinstance(first, dict) or not {"text", "answer_start"} <= set(first):
            raise DataError(f"data file {shown!r}: column {label_column!r} must hold SQuAD answers {{'text': [...], 'answer_start': [...]}}")
        question, context = text_columns
        columns = {
            "id": [str(i) for i in rows["id"][:]] if "id" in rows.column_names else [str(i) for i in range(len(rows))],
            "question": rows[question][:],
            "context": rows[context][:],
            "answers": [{"text": list(v["text"]), "answer_start": [int(s) for s in v["answer_start"]]} for v in values],
        }
        return datasets.Dataset.from_dict(columns), TaskSpec(shown, "qa", ("question", "context"), "answers", metric_names=DEFAULT_METRICS["qa"])

    def texts(column):  # a missing cell reads as None; an empty string tokenizes fine
        return ["" if t is None else str(t) for t in rows[column][:]]

    if kind == "translation":
        columns = {"source": texts(text_columns[0]), "target": texts(label_column)}
        return datasets.Dataset.from_dict(columns), TaskSpec(shown, "translation", ("source",), "target", metric_names=DEFAULT_METRICS["translation"])

    if len(text_columns) not in (1, 2):
        raise DataError(f"data file {shown!r}: give one or two text columns, not {len(text_columns)}")
    normalised_text = ("sentence1", "sentence2")[: len(text_columns)]
    columns = {new: texts(old) for new, old in zip(normalised_text, text_columns)}
    if kind == "regression":
        try:
            columns["label"] = [float(v) for v in values]
        except (TypeError, ValueError):
            raise DataError(f"data file {shown!r}: regression labels in {label_column!r} must be numbers; pass --kind classification for class names") from None
        spec = TaskSpec(shown, "regression", normalised_text, "label", metric_names=DEFAULT_METRICS["regression"])
    else:
        columns["label"], names = _class_ids(values, label_names, shown)
        spec = TaskSpec(shown, "classification", normalised_text, "label", names, DEFAULT_METRICS["classification"])
    return datasets.Dataset.from_dict(columns), spec


def _read_split_files(files: dict[str, str]) -> tuple[datasets.Dataset, np.ndarray]:
    """The rows of one file per split, as one table, and the split of each row."""
    parts = {split: _read(Path(file).expanduser(), str(file)) for split, file in files.items()}
    columns = parts["train"].column_names
    for split, rows in parts.items():
        if sorted(rows.column_names) != sorted(columns):
            raise DataError(f"{split} file {files[split]!r} has the columns {', '.join(rows.column_names)} but the train file "
                            f"{files['train']!r} has {', '.join(columns)}: give every split file the same columns")
    try:  # through Python values: arrow then finds one type per column over all files (int and float -> float)
        rows = datasets.Dataset.from_dict({c: [v for part in parts.values() for v in part[c][:]] for c in columns})
    except (ValueError, TypeError, ArrowException) as err:
        raise DataError(f"the split files {', '.join(map(repr, files.values()))} disagree on a column's type ({str(err).splitlines()[0]}): "
                        "give each column the same kind of value in every file") from None
    return rows, np.concatenate([np.full(len(part), split) for split, part in parts.items()])


def _split_column(values: list, column: str, shown: str) -> np.ndarray:
    names = [SPLIT_NAMES.get(str(v).strip().lower()) for v in values]
    unknown = sorted({"(empty)" if v is None else str(v) for v, name in zip(values, names) if name is None})
    if unknown:
        raise DataError(f"data file {shown!r}: the split column {column!r} has values {unknown[:5]} that are not train, validation "
                        "(dev, val) or test: fix them, or pass --split_column with the right column (a file without one is split 80/10/10)")
    names = np.array(names)
    if not (names == "train").any():
        raise DataError(f"data file {shown!r}: the split column {column!r} marks no row as train: training needs train rows")
    return names


def load_local_file(
    path: str,
    *,
    text_columns: Sequence[str] | None = None,
    label_column: str | None = None,
    label_names: Sequence[str] | None = None,
    kind: str | None = None,
    split_column: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
) -> TaskData:
    """A task from the user's file(s): `path` is the only file or the train file."""
    shown = str(path)
    files = {"train": path} | {s: f for s, f in (("validation", validation_file), ("test", test_file)) if f is not None}
    if len(files) > 1:
        if split_column is not None:
            raise DataError("--split_column splits one file; with --validation_file/--test_file the files are the splits: drop one")
        rows, origin = _read_split_files(files)
        splits_from = "files " + ", ".join(f"{split} {str(file)!r}" for split, file in files.items())
    else:
        rows, origin = _read(Path(path).expanduser(), shown), None
        column = split_column or ("split" if "split" in rows.column_names else None)
        if column is not None:
            _require_columns(rows, [column], "split_column", shown)
            origin = _split_column(rows[column][:], column, shown)
            splits_from = f"the {column!r} column of {shown!r}"
        else:
            splits_from = f"80/10/10 of the rows of {shown!r} (fixed seed {SPLIT_SEED})"
    if kind is not None and kind not in KINDS:
        raise DataError(f"unknown kind {kind!r} for data file {shown!r}: pass --kind one of {', '.join(KINDS)}")
    label_column = label_column or {"qa": "answers", "translation": "target"}.get(kind, "label")
    _require_columns(rows, [label_column], "label_column", shown)
    if kind is None and label_names is not None:
        kind = "classification"
    if kind is None:
        kind = _infer_kind(rows[label_column][:])
    if kind != "qa":  # only QA answers are structured
        values = rows[label_column][:]
        nested = next((i for i, v in enumerate(values) if isinstance(v, (list, dict))), None)
        if nested is not None:
            raise DataError(f"data file {shown!r}: the {label_column!r} of row {nested + 1} is {values[nested]!r:.60}, a list or mapping: "
                            "give one class name or number per row (multi-label data is not supported)")
    text_columns = tuple(text_columns) if text_columns else _default_text_columns(rows, kind)
    _require_columns(rows, text_columns, "text_columns", shown, exclude=[label_column])
    rows, spec = _normalise(rows, kind, text_columns, label_column, label_names, shown)
    if len(rows) < 3:
        raise DataError(f"data file {shown!r} has {len(rows)} rows: the train/validation/test split needs at least 3")
    if origin is None:
        split_names = split_by_group(range(len(rows)), LOCAL_FRACTIONS)
    else:
        try:
            split_names, carved = complete_splits(origin)
        except ValueError as err:
            raise DataError(f"data file {shown!r}: {err}: give more train rows, or the validation and test splits") from None
        splits_from += "".join(f"; {c} (fixed seed {SPLIT_SEED})" for c in carved)
    return TaskData(spec, datasets.DatasetDict({s: rows.select(i) for s, i in rows_of(split_names).items()}), splits_from)
