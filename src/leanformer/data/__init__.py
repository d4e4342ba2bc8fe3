"""Tasks as fixed train/validation/test splits with normalised columns, and their model features.

`load_task(name)` loads a built-in data set (`list_tasks()`) or a local file; `tokenize_dataset`
turns its rows into model features. Sources, licenses and split sizes: `data/README.md`.
"""

from ..lazy import lazy_exports

# `TaskConfig` is import-light (the CLI builds flags from it); loading data needs `datasets`
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".task_config": ("TaskConfig",),
    ".spec": ("TaskSpec", "TaskData", "KINDS", "SPLITS"),
    ".tasks": ("load_task", "list_tasks"),
    ".preprocess": ("tokenize_dataset", "postprocess_qa_predictions"),
})
