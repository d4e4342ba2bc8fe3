"""Kronecker decomposition (KroneckerBERT): embeddings and every attention/FFN linear as A⊗B factors,
initialised by the nearest Kronecker product and trained by intermediate-layer distillation."""

from ...distill import DistillationConfig
from ...registry import register_method
from .config import KroneckerConfig
from .layers import KroneckerEmbedding, KroneckerLinear
from .model import apply_kronecker, rebuild_kronecker, resolved_shapes
from .nearest import nearest_kronecker_product


def kronecker_distillation() -> DistillationConfig:
    """The paper's losses, all weight 1: embeddings, attention scores, hidden states, logits, task."""
    return DistillationConfig(temperature=1.0, logit_weight=1.0, task_weight=1.0, embedding_weight=1.0, hidden_weight=1.0, attention_weight=1.0)


register_method(
    "kronecker",
    KroneckerConfig,
    apply=apply_kronecker,
    rebuild=rebuild_kronecker,
    description="Kronecker factors for embeddings, attention and FFN (KroneckerBERT)",
    default_distillation=kronecker_distillation,
    demo_config=lambda: KroneckerConfig(target_compression=8.0),
    # factors start far from the trained weights at 8x: they need a larger step than fine-tuning
    # (SST-2, 125 steps: lr 1e-4 -> 51.7%, 5e-4 -> 74.3%, 2e-3 -> 74.1%)
    demo_train={"learning_rate": 5e-4},
)

__all__ = ["KroneckerConfig", "KroneckerLinear", "KroneckerEmbedding", "apply_kronecker", "rebuild_kronecker", "resolved_shapes", "nearest_kronecker_product", "kronecker_distillation"]
