"""`DistillationTrainer`: a `transformers.Trainer` whose `compute_loss` distils a frozen teacher.

Only `compute_loss` and `log` are overridden; the training loop, checkpointing, accelerate /
torchrun multi-process training and callbacks are the Trainer's own. Methods add their
schedules as `TrainerCallback`s and their extra loss terms through `extra_losses`.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from ..errors import ConfigError, DataError, LeanformerError
from ..training_clock import TrainingClock
from ..training import training_what_is_saved
from .capture import ActivationCapture
from .config import DistillationConfig
from .losses import IntermediatePair, default_intermediate_pairs, logit_loss, masked_mse

# Task-head outputs whose logits are distilled (QA models have two).
_LOGIT_FIELDS = ("logits", "start_logits", "end_logits")

ExtraLoss = Callable[[nn.Module], torch.Tensor]


def check_same_vocabulary(teacher: nn.Module, student: nn.Module, source: str | None = None) -> None:
    """Teacher and student must read the same token ids. `source`: where the student came from (for the message)."""
    t, s = getattr(teacher.config, "vocab_size", None), getattr(student.config, "vocab_size", None)
    if t != s:
        raise DataError(
            f"the student{f' {source!r}' if source else ''} has a vocabulary of {s} tokens but the teacher {t}: teacher and student must share "
            "one tokenizer (build the student from this teacher)"
        )


def check_compatible(student: nn.Module, teacher: nn.Module) -> None:
    """Teacher and student must read the same token ids and predict the same label set."""
    check_same_vocabulary(teacher, student)
    ns, nt = getattr(student.config, "num_labels", None), getattr(teacher.config, "num_labels", None)
    if not student.config.is_encoder_decoder and ns != nt:
        raise ConfigError(f"teacher predicts {nt} labels but the student {ns}: build the student from the fine-tuned teacher")


class NonFiniteLossError(LeanformerError):
    """Training produced a NaN or infinite loss."""


class DistillationTrainer(Trainer):
    def __init__(
        self,
        *args,
        teacher: nn.Module,
        distillation: DistillationConfig | None = None,
        intermediate: list[IntermediatePair] | None = None,
        extra_losses: dict[str, ExtraLoss] | None = None,
        learning_rates: dict[str, float] | None = None,
        log_values=None,
        **kwargs,
    ):
        self.learning_rates = dict(learning_rates or {})
        self.log_values = log_values
        super().__init__(*args, **kwargs)
        check_compatible(self.model, teacher)
        self.distillation = distillation or DistillationConfig()
        # no requires_grad_(False): the teacher runs under no_grad, and the caller's model stays as it was
        self.teacher = teacher.to(self.args.device).eval()
        self.pairs = intermediate if intermediate is not None else default_intermediate_pairs(self.model, teacher, self.distillation)
        # Hooks are registered once; they fire inside DDP/accelerate wrappers too (same module objects).
        self._student_capture = ActivationCapture(self.model, [p.student for p in self.pairs])
        self._teacher_capture = ActivationCapture(self.teacher, [p.teacher for p in self.pairs])
        self.extra_losses: dict[str, ExtraLoss] = dict(extra_losses or {})
        self._loss_sums: dict[str, float] = defaultdict(float)
        self._loss_steps = 0

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, plus one group per `learning_rates` suffix (no weight decay)."""
        if not self.learning_rates or self.optimizer is not None:
            return super().create_optimizer(model)
        model = model or self.model
        special = {suffix: [] for suffix in self.learning_rates}
        decay, no_decay = [], []
        decay_names = set(self.get_decay_parameter_names(model))
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            suffix = next((s for s in self.learning_rates if name.endswith(s)), None)
            if suffix is not None:
                special[suffix].append(param)
            else:
                (decay if name in decay_names else no_decay).append(param)
        groups = [{"params": decay, "weight_decay": self.args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        groups += [{"params": ps, "weight_decay": 0.0, "lr": self.learning_rates[s]} for s, ps in special.items() if ps]
        optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls([g for g in groups if g["params"]], **optimizer_kwargs)
        return self.optimizer

    def distillation_losses(self, model: nn.Module, inputs: dict) -> tuple[dict[str, torch.Tensor], object]:
        """Each loss component (unweighted) for one batch, and the student's outputs."""
        cfg = self.distillation
        self._student_capture.clear()
        self._teacher_capture.clear()
        with torch.no_grad():
            teacher_out = self.teacher(**inputs)
        student_out = model(**inputs)

        losses: dict[str, torch.Tensor] = {}
        if cfg.task_weight and getattr(student_out, "loss", None) is not None and _has_labels(inputs):
            losses["task"] = student_out.loss
        if cfg.logit_weight:
            token_mask = _label_mask(inputs) if self.model.config.is_encoder_decoder else None
            terms = [
                logit_loss(getattr(student_out, f), getattr(teacher_out, f), cfg.temperature, token_mask)
                for f in _LOGIT_FIELDS
                if getattr(student_out, f, None) is not None
            ]
            if terms:
                losses["logits"] = sum(terms) / len(terms)
        groups: dict[str, list[torch.Tensor]] = defaultdict(list)
        for pair in self.pairs:
            s = self._student_capture.values[pair.student]
            t = self._teacher_capture.values[pair.teacher]
            if pair.teacher_heads is not None:  # the student's heads are some of the teacher's
                t = t[:, list(pair.teacher_heads)]
            groups[pair.group].append(pair.weight * masked_mse(s, t, _pair_mask(inputs, pair, s)))
        for group, terms in groups.items():
            losses[group] = sum(terms) / len(terms)
        return losses, student_out

    def _weights(self) -> dict[str, float]:
        cfg = self.distillation
        # intermediate groups are averaged with their per-pair weights already applied
        return {"task": cfg.task_weight, "logits": cfg.logit_weight, "embeddings": 1.0, "hidden": 1.0, "attention": 1.0}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        losses, outputs = self.distillation_losses(model, inputs)
        unwrapped = self.accelerator.unwrap_model(model) if hasattr(self, "accelerator") else model
        for name, fn in self.extra_losses.items():
            losses[name] = fn(unwrapped)
        weights = self._weights()
        total = sum(weights.get(name, 1.0) * value for name, value in losses.items())
        if model.training and not torch.isfinite(total):
            # stop before the optimizer step: the last checkpoint on disk holds good weights
            bad = ", ".join(f"{n} = {float(v.detach()):g}" for n, v in losses.items() if not torch.isfinite(v))
            raise NonFiniteLossError(
                f"the training loss is not finite at step {self.state.global_step} ({bad}); the last good checkpoint is kept in "
                f"{self.args.output_dir!r}: lower the learning rate (--learning_rate) and run again with --resume"
            )
        if model.training:
            for name, value in losses.items():
                self._loss_sums[name] += float(value.detach())
            self._loss_steps += 1
        return (total, outputs) if return_outputs else total

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        # Add the mean of each loss component since the last training log line.
        if "loss" in logs and self._loss_steps:
            names = sorted(self._loss_sums)
            means = torch.tensor([self._loss_sums[n] / self._loss_steps for n in names], device=self.args.device)
            if self.args.world_size > 1:  # every process logs together, so this collective is safe
                means = self.accelerator.reduce(means, reduction="mean")
            for name, value in zip(names, means.tolist()):
                logs[f"loss_{name}"] = round(value, 6)
            self._loss_sums.clear()
            self._loss_steps = 0
        if "loss" in logs and self.log_values is not None:
            logs.update(self.log_values())
        super().log(logs, *args, **kwargs)


def _has_labels(inputs: dict) -> bool:
    """False when every label is ignored (-100): the model's mean loss over nothing would be NaN."""
    labels = inputs.get("labels")
    return labels is None or labels.dtype.is_floating_point or bool((labels != -100).any())


def _label_mask(inputs: dict) -> torch.Tensor | None:
    labels = inputs.get("labels")
    return None if labels is None else labels != -100


def _pair_mask(inputs: dict, pair: IntermediatePair, activation: torch.Tensor) -> torch.Tensor | None:
    def stream_mask(stream: str) -> torch.Tensor | None:
        if stream == "decoder":
            mask = inputs.get("decoder_attention_mask")
            return mask if mask is not None else _label_mask(inputs)
        return inputs.get("attention_mask")

    q_mask = stream_mask(pair.query_stream)
    if pair.student.kind == "output":
        return q_mask if q_mask is not None and q_mask.shape == activation.shape[:2] else None
    k_mask = stream_mask(pair.key_stream)
    if q_mask is None or k_mask is None:
        return None
    if q_mask.shape[1] != activation.shape[2] or k_mask.shape[1] != activation.shape[3]:
        return None
    return q_mask[:, :, None].bool() & k_mask[:, None, :].bool()


class _SameBudget(TrainerCallback):
    """A resumed run must have the step budget of the run that wrote the checkpoint: schedules
    (learning rate, pruning threshold and λ, quantization start) are functions of step / max_steps,
    so another budget would silently continue a different schedule."""

    def __init__(self, checkpoint: str):
        self.checkpoint = checkpoint
        self.max_steps = json.loads((Path(checkpoint) / "trainer_state.json").read_text())["max_steps"]

    def on_train_begin(self, args, state, control, **kwargs):
        if state.max_steps != self.max_steps:
            raise LeanformerError(
                f"the checkpoint {self.checkpoint!r} belongs to a run of {self.max_steps} steps and this run has {state.max_steps}: "
                "resume with the same --epochs, --batch_size and training data, or pass --overwrite without --resume to start again")


def _checkpoints_newest_first(run_dir: Path) -> list[Path]:
    found = [p for p in run_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]), reverse=True)


def checkpoint_damage(checkpoint: Path) -> str | None:
    """What is wrong with a checkpoint (a file cut short by a crash or a full disk, state a safe
    `weights_only` load refuses), or None when every file resuming reads is whole."""
    from safetensors import SafetensorError, safe_open
    from transformers.trainer_pt_utils import safe_globals

    try:
        json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError) as err:
        return f"trainer_state.json: {err}"
    weights = sorted(checkpoint.glob("*.safetensors"))
    if not weights:
        return "no model weights (.safetensors)"
    for file in weights:
        try:
            with safe_open(str(file), framework="pt") as f:
                f.keys()
        except (SafetensorError, OSError) as err:
            return f"{file.name}: {err}"
    for file in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        if (checkpoint / file).is_file():
            try:
                with safe_globals():
                    torch.load(checkpoint / file, map_location="cpu", weights_only=True)
            except Exception as err:  # any unreadable state (truncated zip, pickle a weights_only load refuses) is damage
                return f"{file}: {type(err).__name__}: {str(err).splitlines()[0][:120]}"
    return None


def _stages(config) -> list[tuple[str, dict]]:
    return [(s.get("method"), s.get("config")) for s in (getattr(config, "leanformer", None) or {}).get("recipe", [])]


def _check_same_recipe(checkpoint: Path, student: nn.Module) -> None:
    """Resuming continues the same student: checkpoints of another method or config would be read
    into the wrong structure (a traceback) or, worse, continue silently under another name."""
    try:
        saved = json.loads((checkpoint / "config.json").read_text())
    except (OSError, ValueError):
        return  # checked as damage where it matters: the weights
    theirs, ours = _stages(SimpleNamespace(**saved)), _stages(student.config)
    if theirs == ours:
        return
    methods = [[m for m, _ in stages] for stages in (theirs, ours)]
    if methods[0] != methods[1]:
        difference = " vs ".join(f"{' → '.join(m) or 'no compression'} ({who})" for m, who in zip(methods, ("checkpoints", "this run")))
    else:
        difference = "; ".join(
            f"{m} {key} {(a or {}).get(key)!r} (checkpoints) vs {(b or {}).get(key)!r} (this run)"
            for (m, a), (_, b) in zip(theirs, ours) for key in sorted(set(a or {}) | set(b or {})) if (a or {}).get(key) != (b or {}).get(key))
    raise LeanformerError(
        f"the checkpoints in {str(checkpoint.parent)!r} belong to another run ({difference}): resume with the same method and "
        "settings, or pass --overwrite without --resume to start again")


def resumable_checkpoint(run_dir: Path, student: nn.Module) -> str | None:
    """The newest whole checkpoint of this student's run in `run_dir` (None when there is none).
    A damaged newest checkpoint is skipped, with a line saying so, for the one before it."""
    checkpoints = _checkpoints_newest_first(run_dir) if run_dir.is_dir() else []
    damaged = []
    for checkpoint in checkpoints:
        problem = checkpoint_damage(checkpoint)
        if problem is not None:
            damaged.append(f"{checkpoint.name} ({problem})")
            continue
        _check_same_recipe(checkpoint, student)
        if damaged:
            print(f"leanformer: --resume: skipping the damaged checkpoint {', '.join(damaged)}; resuming from {str(checkpoint)!r}",
                  file=sys.stderr, flush=True)
        return str(checkpoint)
    if damaged:
        raise LeanformerError(
            f"every checkpoint in {str(run_dir)!r} is damaged ({'; '.join(damaged)}): pass --overwrite without --resume to start again")
    return None


def run_distillation(
    student: nn.Module,
    teacher: nn.Module,
    features,
    *,
    collator,
    tokenizer,
    train,
    distillation: DistillationConfig,
    output_dir,
    extras=None,
    resume: bool = False,
) -> DistillationTrainer:
    """Train `student` against `teacher`, checkpointing beside `output_dir` (in `<output_dir>.checkpoints`).

    Checkpoints of an earlier, interrupted run are continued with `resume=True`; otherwise they
    are an error (the caller decides whether to delete them: `checkpoint_dir`, `--overwrite`).
    """
    run_dir = checkpoint_dir(output_dir)
    last = get_last_checkpoint(str(run_dir)) if run_dir.is_dir() else None
    if last is not None and not resume:
        raise LeanformerError(
            f"{str(run_dir)!r} holds checkpoints of an interrupted run: pass --resume to continue it or --overwrite to start again"
        )
    if resume:
        last = resumable_checkpoint(run_dir, student)
    callbacks = list(extras.callbacks) if extras and extras.callbacks else []
    if resume and last is None:
        print(f"leanformer: --resume: no checkpoint in {str(run_dir)!r}, starting from the first step", file=sys.stderr, flush=True)
    if last is not None:
        callbacks.append(_SameBudget(last))
    callbacks.append(TrainingClock(last))
    with training_what_is_saved(student):
        trainer = DistillationTrainer(
            model=student,
            args=train.training_arguments(str(run_dir)),
            train_dataset=features,
            data_collator=collator,
            processing_class=tokenizer,
            teacher=teacher,
            distillation=distillation,
            callbacks=callbacks,
            extra_losses=extras.extra_losses if extras else None,
            learning_rates=extras.learning_rates if extras else None,
            log_values=extras.log_values if extras else None,
        )
        trainer.train(resume_from_checkpoint=last)
    return trainer


def checkpoint_dir(output_dir) -> Path:
    return Path(output_dir).with_name(Path(output_dir).name + ".checkpoints")
