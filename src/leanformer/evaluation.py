"""Evaluate a model on a task split: the task metric, computed the same way for teacher and student."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding

from .data import TaskData, tokenize_dataset
from .data.preprocess import postprocess_qa_predictions
from .metrics import compute_metrics

_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _batches(features, tokenizer, batch_size: int, progress: bool, desc: str):
    columns = [c for c in features.column_names if c in _MODEL_INPUTS]
    loader = DataLoader(
        features.select_columns(columns).with_format("python"),
        batch_size=batch_size,
        collate_fn=DataCollatorWithPadding(tokenizer),
    )
    return tqdm(loader, desc=desc, disable=not progress, leave=False)


@torch.inference_mode()
def evaluate_model(
    model,
    tokenizer,
    task: TaskData,
    split: str = "test",
    *,
    batch_size: int = 64,
    max_length: int = 128,
    num_beams: int = 1,
    max_examples: int | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Metrics of `model` (a PyTorch model, or `OnnxSeq2Seq` for translation) on `task.splits[split]`
    (see `leanformer.metrics` for names and scales)."""
    spec = task.spec
    examples = task.splits[split]
    if max_examples is not None:
        examples = examples.select(range(min(max_examples, len(examples))))
    if isinstance(model, torch.nn.Module):
        model.eval()
        device = next(model.parameters()).device
    else:  # a runtime with the same call surface, e.g. OnnxSeq2Seq (onnxruntime, CPU)
        device = torch.device("cpu")
    desc = f"evaluate {spec.name}/{split}"

    if spec.kind in ("classification", "regression"):
        features = tokenize_dataset(spec, examples, tokenizer, max_length, for_training=False)
        outputs = [model(**{k: v.to(device) for k, v in b.items()}).logits.float().cpu() for b in _batches(features, tokenizer, batch_size, progress, desc)]
        logits = torch.cat(outputs).numpy()
        predictions = logits[:, 0] if spec.kind == "regression" else logits.argmax(-1)
        return compute_metrics(spec, predictions, np.asarray(examples[spec.label_column]))

    if spec.kind == "qa":
        features = tokenize_dataset(spec, examples, tokenizer, max_length, for_training=False)
        starts, ends = [], []
        for b in _batches(features, tokenizer, batch_size, progress, desc):
            out = model(**{k: v.to(device) for k, v in b.items()})
            starts.extend(out.start_logits.float().cpu().numpy())
            ends.extend(out.end_logits.float().cpu().numpy())
        answers = postprocess_qa_predictions(examples, features, starts, ends)
        predictions = [answers[i] for i in examples["id"]]
        references = [a["text"] for a in examples[spec.label_column]]
        return compute_metrics(spec, predictions, references)

    if spec.kind == "translation":
        hypotheses = []
        sources = examples[spec.text_columns[0]]
        for start in tqdm(range(0, len(sources), batch_size), desc=desc, disable=not progress, leave=False):
            batch = tokenizer(sources[start:start + batch_size], max_length=max_length, truncation=True, padding=True, return_tensors="pt")
            generated = model.generate(**batch.to(device), num_beams=num_beams, max_new_tokens=max_length)
            hypotheses.extend(tokenizer.batch_decode(generated, skip_special_tokens=True))
        return compute_metrics(spec, hypotheses, examples[spec.label_column])

    raise ValueError(f"unknown task kind {spec.kind!r}")
