"""Unlabelled text for general distillation (KroneckerBERT stage 1).

`load_corpus(name_or_path)` gives a `datasets.Dataset` with one column, `text`:
- `vitaminc_wiki` (built-in): the Wikipedia evidence sentences of VitaminC's *train* split,
  deduplicated. Evidence of the validation and test splits is never included (the splits are
  grouped by evidence), so no evaluation text leaks into stage 1. BIG-bench asks that its files
  not be used to train language models; distilling an encoder on these sentences is task-level
  use, the same as fine-tuning on VitaminC.
- `general_en` (built-in; 69,185 passages, 2.4× the words of vitaminc_wiki): `vitaminc_wiki` plus VitaminC's train claims, the English
  (WEB) side of `bible_en_fr`'s train split and the paragraphs of `squad_v1`'s train articles split
  into sentences; deduplicated, and any text that also occurs in a validation or test split of those
  tasks is removed. Stage 1 of the paper used 10% of Wikipedia; this is the most English text that
  ships in the packages here (ASSETS.md) without touching an evaluation split.
- a path to a text file: one passage per non-empty line.
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from ..errors import DataError
from .tasks import load_task

BUILTIN_CORPORA = ("vitaminc_wiki", "general_en")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def _general_english() -> list[str]:
    vitaminc, bible, squad = load_task("vitaminc").splits, load_task("bible_en_fr").splits, load_task("squad_v1").splits
    texts = list(vitaminc["train"]["sentence1"]) + list(vitaminc["train"]["sentence2"]) + list(bible["train"]["source"])
    for paragraph in dict.fromkeys(squad["train"]["context"]):
        texts += _SENTENCE_END.split(paragraph)
    held_out = set()
    for split in ("validation", "test"):
        held_out |= set(vitaminc[split]["sentence1"]) | set(vitaminc[split]["sentence2"]) | set(bible[split]["source"])
        for paragraph in squad[split]["context"]:
            held_out |= {paragraph, *_SENTENCE_END.split(paragraph)}
    held_out = {t.strip() for t in held_out}
    return [t for t in dict.fromkeys(t.strip() for t in texts) if t and t not in held_out]


def load_corpus(name_or_path: str, max_samples: int | None = None, seed: int = 0) -> datasets.Dataset:
    if name_or_path == "vitaminc_wiki":
        evidence = load_task("vitaminc").splits["train"]["sentence1"]
        texts = list(dict.fromkeys(t.strip() for t in evidence if t.strip()))  # dedupe, keep order
    elif name_or_path == "general_en":
        texts = _general_english()
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
