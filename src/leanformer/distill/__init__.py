"""Knowledge distillation from a frozen teacher: the training every compression method uses."""

from ..lazy import lazy_exports

# `.config` is import-light (the CLI builds flags from it); the rest needs torch, imported on first use
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".capture": ("ActivationCapture", "CaptureTarget", "attention_scores"),
    ".config": ("DistillationConfig",),
    ".losses": ("IntermediatePair", "default_intermediate_pairs", "layer_pairs", "logit_loss", "masked_mse"),
    ".trainer": ("DistillationTrainer", "check_compatible", "run_distillation"),
})
