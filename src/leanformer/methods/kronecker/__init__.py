"""Kronecker decomposition (KroneckerBERT): embeddings and every attention/FFN linear as A⊗B factors,
initialised by the nearest Kronecker product and trained by intermediate-layer distillation."""

from ...distill.config import DistillationConfig
from ...lazy import lazy_exports
from ...registry import Method, register_method
from .config import KroneckerConfig

# the layers and the search need torch: imported by the hooks that run, so that the config (and
# `--help`) stays light


def kronecker_distillation() -> DistillationConfig:
    """The paper's losses, all weight 1: embeddings, attention scores, hidden states, logits, task."""
    return DistillationConfig(temperature=1.0, logit_weight=1.0, task_weight=1.0, embedding_weight=1.0, hidden_weight=1.0, attention_weight=1.0)


class KroneckerMethod(Method):
    """Kronecker factors for embeddings, attention and FFN (KroneckerBERT)."""

    name = "kronecker"
    config_class = KroneckerConfig
    # factors start far from the trained weights at 8x: they need a larger step than fine-tuning
    # (SST-2, 125 steps: lr 1e-4 -> 51.7%, 5e-4 -> 74.3%, 2e-3 -> 74.1%)
    demo_train = {"learning_rate": 5e-4}

    def unsupported(self, spec):
        # the factor shapes, their search and the parameter budget assume separate hidden x hidden
        # Q, K, V and an ungated FFN; factoring a fused [Q; K; V] or a gated [up; gate] W1 as one
        # matrix would tie the projections together (a different method, not the paper's)
        fused = [what for stack in spec.stacks for what, found in
                 (("fuses Q, K and V into one linear", any(a.fused_qkv for a in stack.attentions)), ("gates its FFN", stack.ffn.gated)) if found]
        if fused:
            return f"Kronecker factors separate Q, K, V and ungated FFN weights; {spec.model_type!r} {' and '.join(dict.fromkeys(fused))}: not supported yet"
        return None

    def apply(self, model, config):
        from .model import apply_kronecker, built_shapes

        shapes = built_shapes(model, config)  # searched once, here, and saved: `load` never searches
        return apply_kronecker(model, config, shapes=shapes), shapes

    def rebuild(self, model, config, structure):
        from .model import rebuild_kronecker

        return rebuild_kronecker(model, config, structure)

    def default_distillation(self):
        return kronecker_distillation()

    def tiny_config(self, spec):
        # encoder-decoders tie the word table to the output layer: it stays dense there
        return KroneckerConfig(attention_a=[4, 2], ffn_a=[8, 4], embedding_n=0 if spec.is_encoder_decoder else 4)

    def demo_config(self, spec):
        return KroneckerConfig(target_compression=8.0)


register_method(KroneckerMethod())

__getattr__, __dir__, _lazy = lazy_exports(__name__, {
    ".layers": ("KroneckerEmbedding", "KroneckerLinear"),
    ".model": ("apply_kronecker", "built_shapes", "rebuild_kronecker", "resolved_shapes"),
    ".nearest": ("nearest_kronecker_product",),
})
__all__ = ["KroneckerConfig", "KroneckerMethod", "kronecker_distillation", *_lazy]
