"""Teachers: fine-tune a packaged encoder on a task once, cache it, reuse it for every student.

The cache key hashes the base model, the task and data settings and the training settings, so a
changed setting trains a new teacher and an unchanged one is loaded in seconds. Training writes
resumable checkpoints; an interrupted run continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import transformers
from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding, Trainer
from transformers.trainer_utils import get_last_checkpoint

from .api import check_weights, load_tokenizer, output_lock, save
from .architectures import check_sequence_length
from .data import TaskConfig, tokenize_dataset
from .errors import ConfigError
from .evaluation import evaluate_model
from .model_card import model_card
from .pretrained import resolve_model
from .paths import cache_dir
from .teacher_config import SCRATCH, FinetuneConfig, ScratchTranslationConfig
from .training import TrainConfig, training_what_is_saved
from .training_clock import TrainingClock
from .translation_teacher import model_and_tokenizer

METRICS_FILE = "leanformer_metrics.json"
_TEACHER_FORMAT = 1  # bump when the teacher recipe changes in a way the key does not see
_SPLIT_SETTINGS = ("train_file", "validation_file", "test_file", "split_column")



def model_class_for(kind: str):
    if kind in ("classification", "regression"):
        return transformers.AutoModelForSequenceClassification
    if kind == "qa":
        return transformers.AutoModelForQuestionAnswering
    return transformers.AutoModelForSeq2SeqLM


def teacher_key(finetune: FinetuneConfig, task: TaskConfig, train: TrainConfig, scratch: ScratchTranslationConfig | None = None) -> str:
    training = {k: v for k, v in train.to_dict().items() if k not in ("progress", "report_to", "logging_steps", "save_steps", "eval_batch_size", "device")}
    if training["precision"] == "fp32":  # keyed only when mixed: teachers cached before the setting keep their keys
        del training["precision"]
    # the split settings joined TaskConfig later: keyed only when set, so cached teachers keep their keys
    data = {k: v for k, v in task.to_dict().items() if v is not None or k not in _SPLIT_SETTINGS}
    content = {"format": _TEACHER_FORMAT, "model": finetune.model, "task": data, "train": training}
    if finetune.model == SCRATCH:
        content["scratch"] = (scratch or ScratchTranslationConfig()).to_dict()
    blob = json.dumps(content, sort_keys=True)
    name = f"{Path(finetune.model).name}-{task.data.replace('/', '_')}"
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def finetune(
    finetune_config: FinetuneConfig,
    task_config: TaskConfig,
    train_config: TrainConfig,
    *,
    scratch: ScratchTranslationConfig | None = None,
    force: bool = False,
) -> Path:
    """Path of the fine-tuned teacher (trained now, or found in the cache). Its metrics sit beside it.

    `finetune_config.model == "scratch"` trains a translation model from nothing (size from `scratch`).
    """
    scratch = scratch or ScratchTranslationConfig()
    key = teacher_key(finetune_config, task_config, train_config, scratch)
    target = cache_dir("teachers") / key
    if (target / METRICS_FILE).is_file() and not force:
        return target
    with output_lock(target):  # one writer per output: a second run at once fails here
        transformers.set_seed(train_config.seed)
        task = task_config.load(seed=train_config.seed)
        spec = task.spec
        print(f"leanformer: data {spec.name!r}: {task.split_summary()}", file=sys.stderr, flush=True)
        run_dir = cache_dir("runs") / key  # created by the first thing that writes there, not by a refused run
        overrides = {}
        if finetune_config.model == SCRATCH:
            if spec.kind != "translation":
                raise ConfigError(f"--model scratch trains translation models only; {spec.name} is a {spec.kind} task: pass a packaged encoder such as minilm")
            model, tokenizer = model_and_tokenizer(task.splits["train"], scratch, run_dir, train_config.max_length, train_config.seed)
            # batches of similar lengths: verses vary 5-80 tokens and padding would double the cost
            overrides.update(label_smoothing_factor=scratch.label_smoothing, train_sampling_strategy="group_by_length")
        else:
            base = resolve_model(finetune_config.model)
            tokenizer = load_tokenizer(base)
            kwargs = {}
            if spec.kind == "classification":
                kwargs = dict(num_labels=spec.num_labels, id2label=dict(enumerate(spec.label_names)), label2id={n: i for i, n in enumerate(spec.label_names)})
            elif spec.kind == "regression":
                kwargs = dict(num_labels=1, problem_type="regression")
            elif spec.kind == "translation" and not getattr(transformers.AutoConfig.from_pretrained(base), "is_encoder_decoder", False):
                raise ConfigError(f"{finetune_config.model!r} is an encoder, not a translation model: pass --model scratch or an encoder-decoder directory")
            check_weights(base)
            model = model_class_for(spec.kind).from_pretrained(base, use_safetensors=True, **kwargs)
        check_sequence_length(model.config, train_config.max_length, finetune_config.model)

        train_features = tokenize_dataset(spec, task.splits["train"], tokenizer, train_config.max_length, for_training=True)
        collator = DataCollatorForSeq2Seq(tokenizer, model=model) if spec.kind == "translation" else DataCollatorWithPadding(tokenizer)
        with training_what_is_saved(model):
            trainer = Trainer(
                model=model,
                args=train_config.training_arguments(str(run_dir), **overrides),
                train_dataset=train_features,
                data_collator=collator,
                processing_class=tokenizer,
            )
            last = get_last_checkpoint(str(run_dir)) if run_dir.is_dir() else None
            clock = TrainingClock(last)  # seconds summed over an interrupted training's runs
            trainer.add_callback(clock)
            trainer.train(resume_from_checkpoint=last)
        train_seconds = clock.seconds

        model.eval()
        metrics = {
            split: evaluate_model(model, tokenizer, task, split, batch_size=train_config.eval_batch_size, max_length=train_config.max_length, progress=train_config.progress)
            for split in ("validation", "test")
        }
        if spec.kind == "translation":  # the papers report beam search; greedy is what the int8 loop runs
            metrics["test_beam4"] = evaluate_model(
                model, tokenizer, task, "test", batch_size=train_config.eval_batch_size, max_length=train_config.max_length, num_beams=4, progress=train_config.progress
            )
        record = {
            "model": finetune_config.model,
            "task": spec.name,
            "splits": task.split_summary(),
            "metric_name": spec.primary_metric,
            "metrics": metrics,
            "train_examples": len(task.splits["train"]),
            "train_seconds": round(train_seconds, 1),
            "parameters": sum(p.numel() for p in model.parameters()),
            "settings": {"finetune": finetune_config.to_dict(), "task": task_config.to_dict(), "train": train_config.to_dict()}
            | ({"scratch": scratch.to_dict()} if finetune_config.model == SCRATCH else {}),
        }
        save(model, target, tokenizer, extra_files={METRICS_FILE: json.dumps(record, indent=2), "README.md": model_card(model, record)})
        return target


def teacher_metrics(path: str | Path) -> dict:
    """The metrics written next to a fine-tuned teacher."""
    return json.loads((Path(path) / METRICS_FILE).read_text())
