"""Unlabelled text for general distillation (KroneckerBERT stage 1).

`load_corpus(name_or_path)` gives a `datasets.Dataset` with one column, `text`:
- `vitaminc_wiki` (built-in): the Wikipedia evidence sentences of VitaminC's *train* split,
  deduplicated. Evidence of the validation and test splits is never included (the splits are
  grouped by evidence), so no evaluation text leaks into stage 1. BIG-bench asks that its files
  not be used to train language models; distilling an encoder on these sentences is task-level
  use, the same as fine-tuning on VitaminC.
- a path to a text file: one passage per non-empty line.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from ..errors import DataError
from .tasks import load_task

BUILTIN_CORPORA = ("vitaminc_wiki",)


def load_corpus(name_or_path: str, max_samples: int | None = None, seed: int = 0) -> datasets.Dataset:
    if name_or_path == "vitaminc_wiki":
        evidence = load_task("vitaminc").splits["train"]["sentence1"]
        texts = list(dict.fromkeys(t.strip() for t in evidence if t.strip()))  # dedupe, keep order
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise DataError(f"corpus {name_or_path!r} is neither a built-in corpus ({', '.join(BUILTIN_CORPORA)}) nor a text file")
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            raise DataError(f"corpus file {str(path)!r} is empty: it needs one passage per line")
    corpus = datasets.Dataset.from_dict({"text": texts})
    if max_samples is not None and max_samples < len(corpus):
        corpus = corpus.shuffle(seed=seed).select(range(max_samples))
    return corpus
