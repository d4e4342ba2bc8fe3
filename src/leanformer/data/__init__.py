"""Tasks as fixed train/validation/test splits with normalised columns, and their model features.

`load_task(name)` loads a built-in data set (`list_tasks()`) or a local file; `tokenize_dataset`
turns its rows into model features. Sources, licenses and split sizes: `data/README.md`.
"""

from .preprocess import postprocess_qa_predictions, tokenize_dataset
from .spec import KINDS, SPLITS, TaskData, TaskSpec
from .task_config import TaskConfig
from .tasks import list_tasks, load_task

__all__ = ["TaskConfig", "TaskSpec", "TaskData", "KINDS", "SPLITS", "load_task", "list_tasks", "tokenize_dataset", "postprocess_qa_predictions"]
