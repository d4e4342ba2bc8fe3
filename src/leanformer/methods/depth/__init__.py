"""Fewer layers (DistilBERT, TinyBERT, FastFormers): the student keeps some of the teacher's layers,
initialised from them, and learns from the teacher layers they came from by distillation."""

from ...distill.config import DistillationConfig
from ...lazy import lazy_exports
from ...registry import Method, register_method
from .config import DepthConfig

# `.model` needs torch: imported by the hooks that run, so that the config (and `--help`) stays light


class DepthMethod(Method):
    """Keep fewer of the teacher's layers: a plain, shallower model of the same family."""

    name = "depth"
    config_class = DepthConfig

    def apply(self, model, config):
        from .model import apply_depth

        return apply_depth(model, config)

    def choose(self, model, config, batches):
        from .model import choose

        return choose(model, config, batches)

    def rebuild(self, model, config, structure):
        from .model import check_rebuilt

        return check_rebuilt(model, structure)

    def default_distillation(self):
        # TinyBERT's set: embeddings, each kept layer's hidden states and attention scores against
        # the teacher layer it came from, and the logits
        return DistillationConfig(temperature=1.0, logit_weight=1.0, task_weight=1.0, embedding_weight=1.0, hidden_weight=1.0, attention_weight=1.0)

    def tiny_config(self, spec):
        first = any(stack.keeps_first_layer for stack in spec.stacks)  # ModernBERT: layer 0 stays
        return DepthConfig(num_layers=1, decoder_num_layers=1 if spec.is_encoder_decoder else None, strategy="first" if first else "uniform")

    def demo_config(self, spec):
        first = any(stack.keeps_first_layer for stack in spec.stacks)
        return DepthConfig(num_layers=3, strategy="first" if first else "uniform")


register_method(DepthMethod())

__getattr__, __dir__, _lazy = lazy_exports(__name__, {
    ".model": ("apply_depth", "keep_layers", "chosen_layers", "drop_one_layer_losses", "choose_important_layers", "head_and_ffn_importance",
               "narrow", "choose"),
})
__all__ = ["DepthConfig", "DepthMethod", *_lazy]
