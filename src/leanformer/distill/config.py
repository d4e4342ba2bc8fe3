"""Distillation settings: which losses, with what weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import ConfigBase
from ..errors import ConfigError


@dataclass
class DistillationConfig(ConfigBase):
    """Loss = task_weight·task + logit_weight·T²·KL(teacher‖student) + Σ intermediate weights·MSE.

    Defaults follow Block Pruning (0.9·T²·KL + 0.1·CE, T = 2, no intermediate losses);
    KroneckerBERT sets every weight to 1 and turns the intermediate losses on.
    """

    temperature: float = field(default=2.0, metadata={"help": "Softmax temperature of the logit loss (T)."})
    logit_weight: float = field(default=0.9, metadata={"help": "Weight of T²·KL(teacher‖student) on logits (MSE for regression)."})
    task_weight: float = field(default=0.1, metadata={"help": "Weight of the task loss against the gold labels."})
    embedding_weight: float = field(default=0.0, metadata={"help": "Weight of the MSE between embedding-layer outputs."})
    hidden_weight: float = field(default=0.0, metadata={"help": "Weight of the MSE between every layer's output hidden states."})
    attention_weight: float = field(
        default=0.0, metadata={"help": "Weight of the MSE between every layer's pre-softmax attention scores QKᵀ/√d."}
    )
    sequence_level: bool = field(
        default=False,
        metadata={"help": "Translation: train on the teacher's own greedy translations instead of the references (sequence-level KD)."},
    )
    layer_map: Literal["uniform", "last"] = field(
        default="uniform",
        metadata={"help": "How student layers pick teacher layers when depths differ: 'uniform' (every k-th) or 'last'."},
    )

    def validate(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        weights = {k: getattr(self, k) for k in ("logit_weight", "task_weight", "embedding_weight", "hidden_weight", "attention_weight")}
        negative = [k for k, v in weights.items() if v < 0]
        if negative:
            raise ConfigError(f"{negative[0]} must be >= 0, got {weights[negative[0]]}")
        if not any(weights.values()):
            raise ConfigError("all distillation loss weights are 0: set at least one of " + ", ".join(weights))

    @property
    def uses_intermediate(self) -> bool:
        return bool(self.embedding_weight or self.hidden_weight or self.attention_weight)


@dataclass
class GeneralDistillationConfig(ConfigBase):
    """Stage 1 of KroneckerBERT (`distill.general`): distil the compressed pre-trained encoder on unlabelled text."""

    pretrained: str = field(default="minilm", metadata={"help": "The pre-trained encoder the teacher was fine-tuned from (packaged name or directory)."})
    corpus: str = field(default="vitaminc_wiki", metadata={"help": "Unlabelled text: 'vitaminc_wiki', 'general_en' (built-in) or a text file with one passage per line."})
    corpus_samples: int | None = field(default=None, metadata={"help": "Use at most this many passages (seeded)."})
