"""General distillation (stage 1 of KroneckerBERT): a compressed copy of the *pre-trained* encoder
learns the teacher encoder's embeddings, attention scores and hidden states on unlabelled text,
plus masked-language modelling when the pre-trained model has an MLM head. Its encoder weights
then initialise the task student of stage 2 (`student.distil_student(..., init_encoder=...)`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import transformers
from transformers import AutoModel, AutoModelForMaskedLM, DataCollatorForLanguageModeling, DataCollatorWithPadding

from ..api import check_weights, compress, load_tokenizer, output_lock, save
from ..config import ConfigBase
from ..data.corpus import load_corpus
from ..pretrained import resolve_model
from ..training import TrainConfig
from ..training_clock import seconds_per_step, trainer_clock
from .config import DistillationConfig, GeneralDistillationConfig
from .trainer import checkpoint_dir, run_distillation

# what stage 1 cost, beside its encoder (not leanformer_metrics.json: this is no task student)
GENERAL_RECORD_FILE = "leanformer_general.json"


def _pretrained_model(path: Path):
    """The MLM model when the checkpoint has an MLM head, else the bare encoder."""
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True, use_safetensors=True)
    except (ValueError, KeyError):
        return AutoModel.from_pretrained(path, use_safetensors=True), False
    head_missing = any(k for k in info["missing_keys"] if not k.startswith(model.base_model_prefix + "."))
    if head_missing:
        return AutoModel.from_pretrained(path, use_safetensors=True), False
    return model, True


def _untie_output_embeddings(model) -> None:
    """Give every tied parameter (MLM decoder weight and bias) its own copy, so the word table can be
    factored alone and the saved checkpoint holds each tensor under each name."""
    seen: set[int] = set()
    for name, param in list(model.named_parameters(remove_duplicate=False)):
        if id(param) in seen:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, torch.nn.Parameter(param.detach().clone()))
        seen.add(id(param))
    model.config.tie_word_embeddings = False


def general_distillation(
    general: GeneralDistillationConfig,
    method_config: ConfigBase,
    train: TrainConfig,
    output_dir: str | Path,
    distillation: DistillationConfig | None = None,
) -> Path:
    """Train the compressed pre-trained encoder on `general.corpus`; returns the saved student's directory."""
    output_dir = Path(output_dir)
    with output_lock(output_dir):  # one writer per output: a second run at once fails here
        transformers.set_seed(train.seed)
        path = resolve_model(general.pretrained)
        check_weights(path)
        tokenizer = load_tokenizer(path)
        teacher, mlm = _pretrained_model(path)
        distillation = distillation or DistillationConfig(
            temperature=1.0, logit_weight=1.0 if mlm else 0.0, task_weight=1.0 if mlm else 0.0,
            embedding_weight=1.0, hidden_weight=1.0, attention_weight=1.0,
        )
        student = copy.deepcopy(teacher)
        if mlm:
            _untie_output_embeddings(student)
        student = compress(student, method_config)

        corpus = load_corpus(general.corpus, general.corpus_samples, train.seed)
        features = corpus.map(
            lambda batch: tokenizer(batch["text"], truncation=True, max_length=train.max_length),
            batched=True, remove_columns=["text"], desc="tokenize corpus",
        )
        collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15) if mlm else DataCollatorWithPadding(tokenizer)
        # stage 1 always continues its own checkpoints: its output path names one configuration
        trainer = run_distillation(
            student, teacher, features, collator=collator, tokenizer=tokenizer, train=train, distillation=distillation,
            output_dir=output_dir, resume=checkpoint_dir(output_dir).is_dir(),
        )
        steps = trainer.state.global_step
        seconds = trainer_clock(trainer).seconds  # summed over resumed runs
        record = {"pretrained": str(path), "corpus": general.corpus, "passages": len(features), "steps": steps,
                  "train_seconds": round(seconds, 1), "seconds_per_step": seconds_per_step(trainer),
                  "settings": {"general": general.to_dict(), "config": method_config.to_dict(), "train": train.to_dict(), "distillation": distillation.to_dict()}}
        save(student, output_dir, tokenizer, extra_files={GENERAL_RECORD_FILE: json.dumps(record, indent=2)})
        return output_dir
