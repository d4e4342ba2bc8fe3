"""Metrics against small cases worked out by hand."""

import math

import numpy as np
import pytest

from leanformer.data import TaskSpec
from leanformer.metrics import compute_metrics, normalize_answer, squad_metrics, token_f1, translation_metrics

BINARY = TaskSpec("t", "classification", ("sentence1",), "label", ("neg", "pos"), ("f1", "accuracy"))
COLA = TaskSpec("cola", "classification", ("sentence1",), "label", ("no", "yes"), ("matthews", "accuracy"))
THREE = TaskSpec("three", "classification", ("sentence1",), "label", ("a", "b", "c"), ("accuracy", "f1"))
STSB = TaskSpec("stsb", "regression", ("sentence1", "sentence2"), "label", metric_names=("spearman", "pearson"))
QA = TaskSpec("qa", "qa", ("question", "context"), "answers", metric_names=("f1", "exact_match"))
MT = TaskSpec("mt", "translation", ("source",), "target", metric_names=("bleu", "chrf"))

# predictions vs references: TP = 2 (rows 0, 3), TN = 1 (row 1), FP = 1 (row 2), FN = 0
PREDICTIONS, REFERENCES = [1, 0, 1, 1], [1, 0, 0, 1]


def test_accuracy_and_binary_f1():
    result = compute_metrics(BINARY, PREDICTIONS, REFERENCES)
    assert set(result) == {"accuracy", "f1"}
    assert result["accuracy"] == pytest.approx(75.0)
    precision, recall = 2 / 3, 1.0
    assert result["f1"] == pytest.approx(100 * 2 * precision * recall / (precision + recall))  # 80


def test_matthews_from_the_formula():
    tp, tn, fp, fn = 2, 1, 1, 0
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    result = compute_metrics(COLA, PREDICTIONS, REFERENCES)
    assert result["matthews"] == pytest.approx(100 * expected)  # 57.735
    assert set(result) == {"matthews", "accuracy"}


def test_logits_are_reduced_by_argmax():
    logits = np.array([[0.1, 2.0], [3.0, -1.0], [0.0, 0.5], [-2.0, 2.0]])
    assert compute_metrics(BINARY, logits, REFERENCES) == compute_metrics(BINARY, PREDICTIONS, REFERENCES)


def test_multiclass_f1_is_macro():
    # class a: P=1, R=1/2 -> 2/3; class b: P=1/2, R=1 -> 2/3; class c: P=R=1 -> 1
    result = compute_metrics(THREE, [0, 1, 1, 2], [0, 0, 1, 2])
    assert result["f1"] == pytest.approx(100 * (2 / 3 + 2 / 3 + 1) / 3)
    assert result["accuracy"] == pytest.approx(75.0)


def test_pearson_and_spearman_by_hand():
    # x = (1, 2, 3, 4), y = (2, 1, 4, 3). Spearman: rank differences d = (-1, 1, -1, 1),
    # rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 24/60 = 0.6. Pearson: centred x = (-1.5, -.5, .5, 1.5),
    # y = (-.5, -1.5, 1.5, .5): sum xy = 3, sum x^2 = sum y^2 = 5, r = 3/5.
    result = compute_metrics(STSB, [1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0])
    assert result == {"spearman": pytest.approx(60.0), "pearson": pytest.approx(60.0)}
    # y = (1, 2, 3, 10): same ranks as x (rho = 1); centred y = (-3, -2, -1, 6): sum xy = 14, sum y^2 = 50
    result = compute_metrics(STSB, np.array([[1.0], [2.0], [3.0], [4.0]]), [1.0, 2.0, 3.0, 10.0])
    assert result == {"spearman": pytest.approx(100.0), "pearson": pytest.approx(100 * 14 / math.sqrt(5 * 50))}


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("The Denver Broncos!", "denver broncos"),
        ("an apple, a day", "apple day"),
        ("  Theory   of  the\tmind. ", "theory of mind"),
        ("A.D. 1066", "ad 1066"),
        ("Anatomy", "anatomy"),
    ],
)
def test_normalize_answer(text, normalised):
    assert normalize_answer(text) == normalised


def test_squad_exact_match_and_f1():
    predictions = {"q1": "the Denver Broncos", "q2": "Broncos", "q3": "nothing"}
    references = {"q1": ["Denver Broncos"], "q2": ["Carolina", "Denver Broncos"], "q3": ["Levi's Stadium"]}
    result = squad_metrics(predictions, references)
    assert token_f1("Broncos", "Denver Broncos") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert result["exact_match"] == pytest.approx(100 / 3)
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)
    # the same as lists, and with SQuAD `answers` dicts as references
    as_lists = compute_metrics(QA, list(predictions.values()), list(references.values()))
    as_dicts = compute_metrics(QA, list(predictions.values()), [{"text": r, "answer_start": [0] * len(r)} for r in references.values()])
    assert as_lists == as_dicts == result


def test_bleu_and_chrf():
    hypotheses = ["the cat sat on the mat", "a dog barked loudly at night"]
    exact = compute_metrics(MT, hypotheses, list(hypotheses))
    assert exact == {"bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0)}
    assert translation_metrics(["xyz qqq"], ["the cat sat on the mat"])["bleu"] == pytest.approx(0.0)
    # a second reference that matches exactly makes the score perfect again
    multi = translation_metrics(hypotheses, [["a feline was sitting", hypotheses[0]], [hypotheses[1]]])
    assert multi["bleu"] == pytest.approx(100.0)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="3 predictions but 4 references"):
        compute_metrics(BINARY, [1, 0, 1], REFERENCES)
