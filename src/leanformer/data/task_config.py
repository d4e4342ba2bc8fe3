"""`TaskConfig`: which data a command trains and evaluates on (the `--task` flags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import ConfigBase
from ..errors import ConfigError

if TYPE_CHECKING:
    from .spec import TaskData


DEFAULT_TASK = "glue/sst2"


@dataclass
class TaskConfig(ConfigBase):
    """Which data: a built-in task name or a local file, with its columns."""

    task: str = field(default=DEFAULT_TASK, metadata={"help": "Built-in task (e.g. glue/sst2, rotten_tomatoes, squad_v1) or a local csv/tsv/json/jsonl/parquet file."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Subsample the train split to this many examples (seeded)."})
    text_columns: list[str] | None = field(default=None, metadata={"help": "Local files: the text column(s), one or two."})
    label_column: str | None = field(default=None, metadata={"help": "Local files: the label column."})
    kind: str | None = field(default=None, metadata={"help": "Local files: classification, regression, qa or translation."})
    train_file: str | None = field(default=None, metadata={"help": "Local files: the train split's file (instead of --task)."})
    validation_file: str | None = field(
        default=None, metadata={"help": "Local files: the validation split's file (default: 10% of train, or 10% each with no test file)."}
    )
    test_file: str | None = field(default=None, metadata={"help": "Local files: the test split's file (default: carved from train like validation)."})
    split_column: str | None = field(
        default=None,
        metadata={"help": "Local file: the column naming each row's split (train, validation/dev/val, test); a column called "
                          "'split' is used without this flag. Without one, the file is split 80/10/10."},
    )

    @property
    def data(self) -> str:
        """The data set name, or the (train) file."""
        return self.train_file or self.task

    def validate(self) -> None:
        if self.train_file and self.task not in (DEFAULT_TASK, self.train_file):
            raise ConfigError(f"--task {self.task} and --train_file {self.train_file} both name the data: give one")
        if (self.validation_file or self.test_file) and not self.train_file and self.task == DEFAULT_TASK:
            raise ConfigError("--validation_file/--test_file need the train file: pass --train_file (or --task) FILE")

    def load(self, seed: int = 0) -> TaskData:
        from .tasks import load_task  # needs `datasets`: this module stays import-light for the CLI

        return load_task(
            self.data,
            max_train_samples=self.max_train_samples,
            seed=seed,
            text_columns=self.text_columns,
            label_column=self.label_column,
            kind=self.kind,
            split_column=self.split_column,
            validation_file=self.validation_file,
            test_file=self.test_file,
        )
