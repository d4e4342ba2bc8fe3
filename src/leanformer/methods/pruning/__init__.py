"""Block movement pruning (Block Pruning For Faster Transformers): masked blocks, heads and FFN dims
learned during distillation, then physically removed into a smaller dense model."""

from ...lazy import lazy_exports
from ...registry import Method, ReportFigure, register_method
from ...training import TrainConfig
from .config import BlockPruningConfig

# masks, removal and schedule need torch: imported by the hooks that run, so that the config (and
# `--help`) stays light


def demo_pruning_config() -> BlockPruningConfig:
    """Hybrid for a ~150-step demo: short warm-ups, fast scores and a strong regulariser so heads go."""
    return BlockPruningConfig.hybrid(final_lambda=20.0, score_learning_rate=0.05, initial_warmup=0.05, final_warmup=0.2)


class BlockPruningMethod(Method):
    """Block movement pruning: heads and FFN dims removed into a smaller dense model (Block Pruning).
    The default distillation is the paper's: 0.9·T²·KL(teacher‖student) with T = 2, plus 0.1·CE."""

    name = "pruning"
    config_class = BlockPruningConfig
    plotted_log_values = ("threshold", "mask_density")

    def apply(self, model, config):
        from .model import apply_pruning

        return apply_pruning(model, config), None  # what is kept is decided in training: see finalize

    def rebuild(self, model, config, structure):
        from .model import rebuild_pruning

        return rebuild_pruning(model, config, structure)

    def training_extras(self, model, config):
        from .model import pruning_training_extras

        return pruning_training_extras(model, config)

    def finalize(self, model, config):
        from .removal import finalize_pruning

        return finalize_pruning(model, config)

    def refine_train(self, config, train):
        # "hybrid filled": distil the finalized, smaller dense model again
        if not config.refine_epochs:
            return None
        return TrainConfig(**{**train.to_dict(), "epochs": float(config.refine_epochs), "max_steps": -1})

    def report_figures(self, students):
        from .figures import structure_figure

        return [ReportFigure("structure.png", "What pruning kept, per layer", structure_figure(students))]

    def tiny_config(self, spec):
        return BlockPruningConfig.hybrid(block_shape=[8, 8])

    def demo_config(self, spec):
        return demo_pruning_config()


register_method(BlockPruningMethod())

__getattr__, __dir__, _lazy = lazy_exports(__name__, {
    ".layers": ("MaskedLinear", "PruningState", "expand_blocks", "find_state", "score_regularization"),
    ".model": ("apply_pruning", "pruning_training_extras", "rebuild_pruning"),
    ".removal": ("bake_masks", "fill_zeros", "finalize_pruning", "remove_pruned_structure", "surviving_ffn_dims", "surviving_heads"),
    ".summary": ("pruning_report",),
    ".schedule": ("PruningScheduleCallback", "cubic_threshold_schedule", "finish_state", "regularization_lambda", "update_state"),
    ".figures": ("structure_figure",),
})
__all__ = ["BlockPruningConfig", "BlockPruningMethod", "demo_pruning_config", *_lazy]
