"""Knowledge distillation from a frozen teacher: the training every compression method uses."""

from .capture import ActivationCapture, CaptureTarget, attention_scores
from .config import DistillationConfig
from .losses import IntermediatePair, default_intermediate_pairs, layer_pairs, logit_loss, masked_mse
from .trainer import DistillationTrainer, check_compatible, run_distillation

__all__ = [
    "ActivationCapture",
    "CaptureTarget",
    "attention_scores",
    "DistillationConfig",
    "IntermediatePair",
    "default_intermediate_pairs",
    "layer_pairs",
    "logit_loss",
    "masked_mse",
    "DistillationTrainer",
    "check_compatible",
    "run_distillation",
]
