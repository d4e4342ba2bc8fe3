"""Block movement pruning (Block Pruning For Faster Transformers): masked blocks, heads and FFN dims
learned during distillation, then physically removed into a smaller dense model."""

from ...distill import DistillationConfig
from ...registry import register_method
from .config import BlockPruningConfig
from .layers import MaskedLinear, PruningState, expand_blocks, find_state, score_regularization
from .model import apply_pruning, pruning_training_extras, rebuild_pruning
from .removal import apply_structure, bake_masks, fill_zeros, finalize_pruning, remove_pruned_structure, surviving_ffn_dims, surviving_heads
from .report import pruning_report
from .schedule import PruningScheduleCallback, cubic_threshold_schedule, finish_state, regularization_lambda, update_state


def demo_pruning_config() -> BlockPruningConfig:
    """Hybrid for a ~150-step demo: short warm-ups, fast scores and a strong regulariser so heads go."""
    return BlockPruningConfig.hybrid(final_lambda=20.0, score_learning_rate=0.05, initial_warmup=0.05, final_warmup=0.2)


register_method(
    "pruning",
    BlockPruningConfig,
    apply=apply_pruning,
    rebuild=rebuild_pruning,
    description="Block movement pruning: heads and FFN dims removed into a smaller dense model (Block Pruning)",
    training_extras=pruning_training_extras,
    finalize=finalize_pruning,
    demo_config=demo_pruning_config,
    # the paper's loss: 0.9·T²·KL(teacher‖student) with T = 2, plus 0.1·CE
    default_distillation=DistillationConfig,
)

__all__ = [
    "BlockPruningConfig", "MaskedLinear", "PruningState", "PruningScheduleCallback",
    "apply_pruning", "rebuild_pruning", "pruning_training_extras", "finalize_pruning", "apply_structure",
    "bake_masks", "remove_pruned_structure", "fill_zeros", "surviving_heads", "surviving_ffn_dims",
    "cubic_threshold_schedule", "regularization_lambda", "update_state", "finish_state",
    "expand_blocks", "find_state", "score_regularization", "pruning_report", "demo_pruning_config",
]
