"""Fewer layers (DistilBERT, TinyBERT, FastFormers): the student keeps some of the teacher's layers,
initialised from them, and learns from the teacher layers they came from by distillation."""

from ...distill.config import DistillationConfig
from ...registry import Method, register_method
from .config import DepthConfig
from .model import apply_depth, check_rebuilt, chosen_layers, keep_layers


class DepthMethod(Method):
    """Keep fewer of the teacher's layers: a plain, shallower model of the same family."""

    name = "depth"
    config_class = DepthConfig

    def apply(self, model, config):
        return apply_depth(model, config)

    def rebuild(self, model, config, structure):
        return check_rebuilt(model, structure)

    def default_distillation(self):
        # TinyBERT's set: embeddings, each kept layer's hidden states and attention scores against
        # the teacher layer it came from, and the logits
        return DistillationConfig(temperature=1.0, logit_weight=1.0, task_weight=1.0, embedding_weight=1.0, hidden_weight=1.0, attention_weight=1.0)

    def tiny_config(self, spec):
        return DepthConfig(num_layers=1, decoder_num_layers=1 if spec.is_encoder_decoder else None)

    def demo_config(self):
        return DepthConfig(num_layers=3)


register_method(DepthMethod())

__all__ = ["DepthConfig", "DepthMethod", "apply_depth", "keep_layers", "chosen_layers"]
