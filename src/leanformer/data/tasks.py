"""`load_task`: a built-in data set by name, or a local file by path, as fixed train/validation/test splits."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import DataError
from .builtin import BUILTIN_TASKS, load_builtin
from .local_files import FORMATS, is_local_file, load_local_file
from .spec import TaskData


def list_tasks() -> list[str]:
    """Names of the built-in data sets (see `data/README.md` for sources, licenses and split sizes)."""
    return sorted(BUILTIN_TASKS)


def load_task(
    name: str,
    *,
    max_train_samples: int | None = None,
    seed: int = 0,
    text_columns: Sequence[str] | None = None,
    label_column: str | None = None,
    label_names: Sequence[str] | None = None,
    kind: str | None = None,
    split_column: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
) -> TaskData:
    """Load a task with its fixed splits; `max_train_samples` keeps a `seed`-chosen subset of train only.

    `text_columns`, `label_column`, `label_names`, `kind`, `split_column` and the split files
    describe local files (`name` is then the only or the train file); built-in data sets already
    know theirs, so passing them with a built-in name is an error.
    """
    if name in BUILTIN_TASKS:
        options = {"text_columns": text_columns, "label_column": label_column, "label_names": label_names, "kind": kind,
                   "split_column": split_column, "validation_file": validation_file, "test_file": test_file}
        given = ", ".join(f"--{flag}" for flag, value in options.items() if value is not None)
        if given:
            raise DataError(f"{given} only apply to local files; built-in data set {name!r} defines its own columns: drop them")
        task = load_builtin(name)
    elif is_local_file(name):
        task = load_local_file(name, text_columns=text_columns, label_column=label_column, label_names=label_names, kind=kind,
                               split_column=split_column, validation_file=validation_file, test_file=test_file)
    else:
        raise DataError(
            f"unknown data set {name!r}: use one of {', '.join(list_tasks())}, or a path to a {'/'.join(sorted(FORMATS))} file"
        )
    if max_train_samples is not None:
        if max_train_samples < 1:
            raise DataError(f"max_train_samples must be at least 1, got {max_train_samples}")
        train = task.splits["train"]
        if max_train_samples < len(train):
            task.splits["train"] = train.shuffle(seed=seed).select(range(max_train_samples))
            task.splits_from += f"; train subsampled from {len(train)} rows (seed {seed})"
    return task
