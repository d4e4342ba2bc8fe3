"""Training settings shared by fine-tuning and distillation, mapped onto `transformers.TrainingArguments`."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .config import ConfigBase
from .errors import ConfigError

if TYPE_CHECKING:
    from transformers import TrainingArguments


@dataclass
class TrainConfig(ConfigBase):
    """The few settings people change; everything else is the Trainer's default."""

    epochs: float = field(default=3.0, metadata={"help": "Training epochs (ignored when max_steps > 0); 0 with max_steps -1: no training (e.g. post-training quantization)."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimizer steps (-1: use epochs)."})
    batch_size: int = field(default=32, metadata={"help": "Training batch size per process."})
    eval_batch_size: int = field(default=64, metadata={"help": "Batch size for evaluation."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate (AdamW, linear decay)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(default=0.06, metadata={"help": "Fraction of steps spent warming the learning rate up."})
    max_length: int = field(default=128, metadata={"help": "Maximum tokens per example (longer inputs are truncated)."})
    seed: int = field(default=0, metadata={"help": "Random seed (data order, initialisation, dropout)."})
    logging_steps: int = field(default=25, metadata={"help": "Log losses every N steps."})
    save_steps: int = field(default=500, metadata={"help": "Write a resumable checkpoint every N steps."})
    report_to: str = field(default="tensorboard", metadata={"help": "Where the Trainer logs: 'tensorboard' or 'none'."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})
    precision: Literal["fp32", "bf16", "fp16"] = field(
        default="fp32", metadata={"help": "Training arithmetic: fp32, or the Trainer's mixed precision (bf16 on recent GPUs and CPUs; fp16 on GPUs)."})
    device: Literal["auto", "cpu"] = field(
        default="auto", metadata={"help": "auto: the GPU when there is one (several with accelerate launch / torchrun), else the CPU; cpu: the CPU always."})

    def validate(self) -> None:
        for name in ("batch_size", "eval_batch_size", "max_length", "logging_steps", "save_steps"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.max_steps <= 0 and self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if not 0 <= self.warmup_ratio < 1:  # passed on as a ratio only below 1 (training_arguments)
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.seed < 2**32:  # numpy's seed range
            raise ConfigError(f"seed must be in [0, 2^32), got {self.seed}")

    @property
    def trains(self) -> bool:
        return self.max_steps > 0 or self.epochs > 0

    def training_arguments(self, output_dir: str, **overrides) -> TrainingArguments:
        from transformers import TrainingArguments  # here: this module is import-light for the CLI

        kwargs = dict(
            output_dir=str(output_dir),
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            per_device_train_batch_size=self.batch_size,
            per_device_eval_batch_size=self.eval_batch_size,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            warmup_steps=self.warmup_ratio,  # transformers 5 takes a float < 1 as a ratio here
            seed=self.seed,
            data_seed=self.seed,
            logging_steps=self.logging_steps,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=2,
            report_to=[] if self.report_to == "none" else [self.report_to],
            disable_tqdm=not self.progress,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,  # CPU first; pinning only helps with an accelerator
            bf16=self.precision == "bf16",
            fp16=self.precision == "fp16",
            use_cpu=self.device == "cpu",
        )
        kwargs.update(overrides)
        return TrainingArguments(**kwargs)


@contextmanager
def training_what_is_saved(model):
    """Build and run a Trainer inside this, so that the model saved afterwards is the model trained:
    - parameters the model does not save (transformers' `_keys_to_ignore_on_save`, e.g. Marian's
      sinusoidal position tables, recomputed when loaded) are frozen while it trains: loaded with
      `from_pretrained` they require grad, and a trained table would be lost by saving, so the
      model scored after training would not be the model loaded later;
    - transformers 5's Trainer sets `model.config.use_cache` to `TrainingArguments.use_cache`
      (False) when it is built, which training wants; afterwards the model gets its own value back
      (a translation model saved with use_cache False is rebuilt to generate without its key/value
      cache: quadratic decoding)."""
    use_cache = getattr(model.config, "use_cache", None)
    unsaved = set(getattr(model, "_keys_to_ignore_on_save", None) or ())
    frozen = [p for name, p in model.named_parameters(remove_duplicate=False) if name in unsaved and p.requires_grad]
    for param in frozen:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in frozen:
            param.requires_grad_(True)
        if use_cache is not None:
            model.config.use_cache = use_cache
