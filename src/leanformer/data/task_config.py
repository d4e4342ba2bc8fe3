"""`TaskConfig`: which data a command trains and evaluates on (the `--task` flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from typing import TYPE_CHECKING

from ..config import ConfigBase

if TYPE_CHECKING:
    from .spec import TaskData


@dataclass
class TaskConfig(ConfigBase):
    """Which data: a built-in task name or a local file, with its columns."""

    task: str = field(default="glue/sst2", metadata={"help": "Built-in task (e.g. glue/sst2, rotten_tomatoes, squad_v1) or a local csv/tsv/json/jsonl/parquet file."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Subsample the train split to this many examples (seeded)."})
    text_columns: list[str] | None = field(default=None, metadata={"help": "Local files: the text column(s), one or two."})
    label_column: str | None = field(default=None, metadata={"help": "Local files: the label column."})
    kind: str | None = field(default=None, metadata={"help": "Local files: classification, regression, qa or translation."})

    def load(self, seed: int = 0) -> TaskData:
        from .tasks import load_task  # needs `datasets`: this module stays import-light for the CLI

        return load_task(
            self.task,
            max_train_samples=self.max_train_samples,
            seed=seed,
            text_columns=self.text_columns,
            label_column=self.label_column,
            kind=self.kind,
        )
