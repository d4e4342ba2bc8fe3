"""Task metrics, on the scale papers print: every value is in 0-100.

| kind | metrics (`TaskSpec.metric_names` picks and orders them; first = primary) |
|---|---|
| classification | `accuracy` (always), `f1` (binary: F1 of label 1; more classes: macro F1), `matthews` (MCC) — all x100 |
| regression | `pearson`, `spearman` correlations x100 |
| qa | `exact_match`, `f1` (SQuAD v1.1 official definitions, best over the gold answers), in percent |
| translation | `bleu` (sacrebleu corpus BLEU, default 13a tokenisation), `chrf` (sacrebleu corpus chrF) |

Built-in tasks: sst2, rte, wnli, rotten_tomatoes, vitaminc -> accuracy; mrpc -> f1, accuracy;
cola -> matthews, accuracy; stsb -> spearman, pearson; squad_v1, disfl_qa -> f1, exact_match;
bible_en_fr -> bleu, chrf. Computed with scikit-learn, scipy and sacrebleu (`evaluate` needs the hub).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import sacrebleu
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from .data.spec import TaskSpec


def compute_metrics(spec: TaskSpec, predictions, references) -> dict[str, float]:
    """Metrics of `predictions` against `references` for a task of `spec.kind`.

    classification: label ids (or logits, reduced by argmax) vs label ids. regression: numbers (or
    (n, 1) outputs) vs numbers. qa: answer strings (a list, or a dict id -> answer) vs gold answer
    lists (a list aligned with the predictions, a dict id -> answers, or SQuAD `answers` dicts).
    translation: hypothesis strings vs reference strings (or lists of references per hypothesis).
    """
    if spec.kind == "classification":
        return classification_metrics(predictions, references, spec.metric_names, spec.num_labels)
    if spec.kind == "regression":
        return regression_metrics(predictions, references)
    if spec.kind == "qa":
        return squad_metrics(predictions, references)
    if spec.kind == "translation":
        return translation_metrics(predictions, references)
    raise ValueError(f"unknown task kind {spec.kind!r}")


def classification_metrics(predictions, references, metric_names: Sequence[str] = (), num_labels: int = 2) -> dict[str, float]:
    predictions, references = np.asarray(predictions), np.asarray(references)
    if predictions.ndim == 2:  # logits
        predictions = predictions.argmax(-1)
    _check_lengths(predictions, references)
    result = {"accuracy": 100 * float(accuracy_score(references, predictions))}
    if "f1" in metric_names:
        binary = num_labels == 2
        labels = None if binary else list(range(num_labels))
        f1 = f1_score(references, predictions, average="binary" if binary else "macro", labels=labels, zero_division=0)
        result["f1"] = 100 * float(f1)
    if "matthews" in metric_names:
        result["matthews"] = 100 * float(matthews_corrcoef(references, predictions))
    return result


def regression_metrics(predictions, references) -> dict[str, float]:
    predictions, references = np.asarray(predictions, dtype=float), np.asarray(references, dtype=float)
    if predictions.ndim == 2:  # (n, 1) model outputs
        predictions = predictions[:, 0]
    _check_lengths(predictions, references)
    return {
        "pearson": 100 * float(stats.pearsonr(predictions, references)[0]),
        "spearman": 100 * float(stats.spearmanr(predictions, references)[0]),
    }


_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, drop punctuation and the articles a/an/the, squeeze whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 of the normalised strings (SQuAD v1.1)."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def _gold_lists(references, ids: list | None) -> list[list[str]]:
    if isinstance(references, Mapping):
        if ids is None:
            raise ValueError("qa references given by id need predictions given by id (a dict)")
        missing = [i for i in ids if i not in references]
        if missing:
            raise ValueError(f"{len(missing)} predicted ids have no reference, e.g. {missing[0]!r}")
        references = [references[i] for i in ids]
    golds = []
    for reference in references:
        if isinstance(reference, Mapping):  # a SQuAD `answers` dict
            reference = reference["text"]
        golds.append([reference] if isinstance(reference, str) else list(reference))
    return golds


def squad_metrics(predictions, references) -> dict[str, float]:
    """Exact match and F1 in percent; each prediction scores its best gold answer."""
    ids = list(predictions) if isinstance(predictions, Mapping) else None
    answers = [predictions[i] for i in ids] if ids is not None else list(predictions)
    golds = _gold_lists(references, ids)
    _check_lengths(answers, golds)
    if not answers:
        raise ValueError("no predictions to score")
    em = sum(max(exact_match(a, g) for g in gold) for a, gold in zip(answers, golds))
    f1 = sum(max(token_f1(a, g) for g in gold) for a, gold in zip(answers, golds))
    return {"exact_match": 100 * em / len(answers), "f1": 100 * f1 / len(answers)}


def translation_metrics(hypotheses: Sequence[str], references) -> dict[str, float]:
    """Corpus BLEU and chrF; `references` holds one string, or a list of strings, per hypothesis."""
    hypotheses = list(hypotheses)
    references = [[r] if isinstance(r, str) else list(r) for r in references]
    _check_lengths(hypotheses, references)
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    # sacrebleu wants reference streams: stream k holds the k-th reference of every hypothesis
    # (None where a hypothesis has fewer references).
    n_streams = max(len(r) for r in references)
    streams = [[r[k] if k < len(r) else None for r in references] for k in range(n_streams)]
    return {
        "bleu": float(sacrebleu.corpus_bleu(hypotheses, streams).score),
        "chrf": float(sacrebleu.corpus_chrf(hypotheses, streams).score),
    }


def _check_lengths(predictions, references) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
