"""What a task is (`TaskSpec`) and what loading it gives (`TaskData`).

Every data set, built-in or local, is normalised to the same columns per kind, so the rest of
leanformer never special-cases a data set:

| kind | text columns | label column |
|---|---|---|
| classification | `sentence1` (+ `sentence2` for pairs) | `label`: int id, index into `label_names` |
| regression | `sentence1` (+ `sentence2`) | `label`: float |
| qa | `question`, `context` (rows also have `id`) | `answers`: SQuAD `{"text": [...], "answer_start": [...]}` |
| translation | `source` | `target` |
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets

KINDS = ("classification", "regression", "qa", "translation")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str
    text_columns: tuple[str, ...]
    label_column: str
    label_names: tuple[str, ...] = ()
    metric_names: tuple[str, ...] = ()
    source_lang: str = ""
    target_lang: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "classification" and len(self.label_names) < 2:
            raise ValueError(f"task {self.name!r}: classification needs at least 2 label names")

    @property
    def num_labels(self) -> int:
        """Size of the model's output head: classes, 1 for regression, 0 for qa/translation."""
        if self.kind == "classification":
            return len(self.label_names)
        return 1 if self.kind == "regression" else 0

    @property
    def primary_metric(self) -> str:
        return self.metric_names[0]


@dataclass
class TaskData:
    spec: TaskSpec
    splits: datasets.DatasetDict  # always "train", "validation", "test"
    splits_from: str = "the data set's fixed splits (data/README.md)"  # how the splits were made

    def split_summary(self) -> str:
        """Rows per split and where they came from: printed and recorded with every model trained on them."""
        sizes = " / ".join(f"{name} {len(self.splits[name])}" for name in SPLITS)
        return f"{sizes} rows: {self.splits_from}"
