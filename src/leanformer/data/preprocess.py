"""Task rows -> model features, with transformers' tokenizers; and QA logits -> answer strings.

No padding anywhere: the collator pads each batch (`DataCollatorWithPadding`, or
`DataCollatorForSeq2Seq` for translation). Extractive QA uses the usual SQuAD sliding window:
question first, context truncated ("only_second") into overlapping windows of `max_length` tokens
that share `stride` tokens. Training features carry `start_positions`/`end_positions` (the CLS
index when the first gold answer is not wholly inside the window); evaluation features carry
`example_id` and `offset_mapping` (None outside the context) for `postprocess_qa_predictions`,
and those two columns must be dropped before batching model inputs.
"""

from __future__ import annotations

from collections import defaultdict

import datasets
import numpy as np

from ..errors import ConfigError
from .spec import TaskSpec


def tokenize_dataset(
    spec: TaskSpec,
    dataset: datasets.Dataset,
    tokenizer,
    max_length: int,
    *,
    for_training: bool = True,
    stride: int | None = None,
) -> datasets.Dataset:
    """Model features for `dataset` (rows normalised as in `spec`); the source columns are dropped.

    `stride` (QA only) defaults to `max_length // 4`.
    """
    if spec.kind in ("classification", "regression"):
        features = dataset.map(
            lambda batch: _encode_sentences(spec, batch, tokenizer, max_length), batched=True, remove_columns=dataset.column_names
        )
        if spec.kind == "regression":
            features = features.cast_column("labels", datasets.Value("float32"))  # MSE loss needs float targets
        return features
    if spec.kind == "translation":
        return dataset.map(
            lambda batch: tokenizer(batch["source"], text_target=batch["target"], max_length=max_length, truncation=True),
            batched=True,
            remove_columns=dataset.column_names,
        )
    if spec.kind == "qa":
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError(f"QA preprocessing needs a fast tokenizer (offset mappings); {type(tokenizer).__name__} is not one")
        encode = _qa_training_features if for_training else _qa_evaluation_features
        stride = max_length // 4 if stride is None else stride
        return dataset.map(lambda batch: encode(batch, tokenizer, max_length, stride), batched=True, remove_columns=dataset.column_names)
    raise ValueError(f"unknown task kind {spec.kind!r}")


def _encode_sentences(spec: TaskSpec, batch, tokenizer, max_length: int):
    features = tokenizer(*(batch[c] for c in spec.text_columns), truncation=True, max_length=max_length)
    features["labels"] = batch[spec.label_column]
    return features


def _qa_windows(batch, tokenizer, max_length: int, stride: int):
    # Leading spaces in questions waste window tokens with some tokenizers (SQuAD has such questions).
    questions = [q.lstrip() for q in batch["question"]]
    return tokenizer(
        questions,
        batch["context"],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )


def _cls_index(input_ids: list[int], tokenizer) -> int:
    cls = tokenizer.cls_token_id
    return input_ids.index(cls) if cls is not None and cls in input_ids else 0


def _qa_training_features(batch, tokenizer, max_length: int, stride: int):
    windows = _qa_windows(batch, tokenizer, max_length, stride)
    example_of = windows.pop("overflow_to_sample_mapping")
    offsets_of = windows.pop("offset_mapping")
    starts, ends = [], []
    for i, offsets in enumerate(offsets_of):
        cls = _cls_index(windows["input_ids"][i], tokenizer)
        answers = batch["answers"][example_of[i]]
        sequence = windows.sequence_ids(i)
        context_tokens = [t for t, s in enumerate(sequence) if s == 1]
        if not answers["text"] or not context_tokens:
            starts.append(cls)
            ends.append(cls)
            continue
        answer_start = answers["answer_start"][0]
        answer_end = answer_start + len(answers["text"][0])
        first, last = context_tokens[0], context_tokens[-1]
        if offsets[first][0] > answer_start or offsets[last][1] < answer_end:  # answer not wholly in this window
            starts.append(cls)
            ends.append(cls)
            continue
        start = first
        while start <= last and offsets[start][0] <= answer_start:
            start += 1
        end = last
        while end >= first and offsets[end][1] >= answer_end:
            end -= 1
        starts.append(start - 1)
        ends.append(end + 1)
    windows["start_positions"] = starts
    windows["end_positions"] = ends
    return windows


def _qa_evaluation_features(batch, tokenizer, max_length: int, stride: int):
    windows = _qa_windows(batch, tokenizer, max_length, stride)
    example_of = windows.pop("overflow_to_sample_mapping")
    windows["example_id"] = [batch["id"][e] for e in example_of]
    windows["offset_mapping"] = [
        [list(span) if s == 1 else None for span, s in zip(offsets, windows.sequence_ids(i))]
        for i, offsets in enumerate(windows["offset_mapping"])
    ]
    return windows


def postprocess_qa_predictions(
    examples, features, start_logits, end_logits, n_best: int = 20, max_answer_length: int = 30
) -> dict[str, str]:
    """Best answer string per example id from per-feature start/end logits.

    Candidates are the `n_best` top start and end tokens of every window of the example; a span is
    valid when both ends lie in the context, end >= start and it spans at most `max_answer_length`
    tokens; the highest start+end logit wins. Logit rows may be longer than their feature (batch
    padding); the padding is ignored. An example without a valid span gets "".
    """
    windows_of = defaultdict(list)
    for i, example_id in enumerate(features["example_id"][:]):  # [:] reads a whole column at once
        windows_of[example_id].append(i)
    offsets_of = features["offset_mapping"][:]
    answers = {}
    for example_id, context in zip(examples["id"][:], examples["context"][:]):
        best_text, best_score = "", -np.inf
        for i in windows_of[example_id]:
            offsets = offsets_of[i]
            starts = np.asarray(start_logits[i])[: len(offsets)]
            ends = np.asarray(end_logits[i])[: len(offsets)]
            best_ends = np.argsort(ends)[::-1][:n_best]
            for s in np.argsort(starts)[::-1][:n_best]:
                for e in best_ends:
                    if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    score = starts[s] + ends[e]
                    if score > best_score:
                        best_text, best_score = context[offsets[s][0] : offsets[e][1]], score
        answers[example_id] = best_text
    return answers
