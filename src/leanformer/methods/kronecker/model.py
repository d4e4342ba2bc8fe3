"""Apply Kronecker factors to a model through the architecture tables, or rebuild them for loading."""

from __future__ import annotations

from torch import nn

from ...architectures import base_prefix, check_divides, divisors, get_architecture, iter_layers, linear_roles, replace_module
from ...errors import ConfigError, LeanformerError
from ...measure import count_parameters
from .config import ATTENTION_ROLES, KroneckerConfig
from .layers import KroneckerEmbedding, KroneckerLinear
from .search import Dimensions, search_shapes


def _dimensions(model: nn.Module) -> Dimensions:
    spec = get_architecture(model)
    kinds = count_parameters(model)
    h = getattr(model.config, spec.hidden_size)
    layers = list(iter_layers(model))
    # each layer's own FFN width, read from its module: a decoder's may differ from the encoder's
    widths = tuple(layer.module.get_submodule(layer.stack.ffn.input).out_features for layer in layers)
    word = model.get_submodule(base_prefix(model) + spec.word_embeddings)
    v = word.num_embeddings
    blocks = sum(len(layer.stack.attentions) for layer in layers)
    dense_linear = blocks * 4 * h * h + sum(2 * i * h for i in widths)
    # everything in the embeddings and the layers (LayerNorms included) that stays dense
    in_layers = sum(p.numel() for layer in layers for p in layer.module.parameters())
    other = kinds["embeddings"] + in_layers - dense_linear - v * h
    return Dimensions(hidden=h, ffn_widths=widths, vocab=v, attention_blocks=blocks, other_params=other)


def resolved_shapes(model: nn.Module, config: KroneckerConfig) -> tuple[list | None, list | None, int]:
    """The shapes `config` gives for this model (searched when `target_compression` is set)."""
    if config.target_compression is None:
        return config.attention_a, config.ffn_a, config.embedding_n
    return search_shapes(_dimensions(model), config.target_compression, config.terms, tuple(config.roles), config.search_objective)


def built_shapes(model: nn.Module, config: KroneckerConfig) -> dict:
    """The shapes `config` resolves to on this model, as saved with the student (`load` reads them
    back instead of searching again)."""
    attention_a, ffn_a, embedding_n = resolved_shapes(model, config)
    return {"attention_a": attention_a, "ffn_a": ffn_a, "embedding_n": embedding_n}


def apply_kronecker(model: nn.Module, config: KroneckerConfig, *, initialise: bool = True, shapes: dict | None = None) -> nn.Module:
    """Replace the configured linears and word embeddings by Kronecker factors, in place.

    `initialise=True` sets the factors by the nearest Kronecker product of the current weights;
    `False` only builds the structure (for loading saved factors). `shapes`: the resolved shapes
    (`built_shapes`) to build, instead of resolving `config` on this model.
    """
    spec = get_architecture(model)
    shapes = shapes if shapes is not None else built_shapes(model, config)
    attention_a, ffn_a, embedding_n = shapes["attention_a"], shapes["ffn_a"], shapes["embedding_n"]
    for name, role in linear_roles(model).items():
        if role not in config.roles:
            continue
        if role in ATTENTION_ROLES:
            shape, setting = attention_a, "attention_a"
        else:
            shape, setting = (ffn_a, "ffn_a") if role == "ffn_in" else (ffn_a[::-1] if ffn_a else None, "ffn_a (transposed for W2)")
        if shape is None:
            continue
        linear = model.get_submodule(name)
        if isinstance(linear, KroneckerLinear):
            raise ConfigError(f"{name} is already Kronecker-factored: apply KroneckerConfig once")
        check_divides(setting, shape, name, linear.out_features, linear.in_features)
        if initialise:
            new = KroneckerLinear.from_linear(linear, tuple(shape), config.terms, config.forward_mode)
        else:
            new = KroneckerLinear(linear.in_features, linear.out_features, tuple(shape), config.terms, linear.bias is not None, config.forward_mode)
            new = new.to(linear.weight.device, linear.weight.dtype)
        replace_module(model, name, new)

    if embedding_n and "embeddings" in config.roles:
        if model.config.is_encoder_decoder or getattr(model.config, "tie_word_embeddings", False) and model.get_output_embeddings() is not None:
            raise ConfigError(f"{spec.model_type}: its word embeddings are tied to the output layer; set embedding_n 0")
        name = base_prefix(model) + spec.word_embeddings
        embedding = model.get_submodule(name)
        d = embedding.embedding_dim
        if d % embedding_n:
            raise ConfigError(f"embedding_n {embedding_n} does not divide the embedding width {d}; choose one of {', '.join(map(str, divisors(d)))}")
        if initialise:
            new = KroneckerEmbedding.from_embedding(embedding, embedding_n, config.terms)
        else:
            new = KroneckerEmbedding(embedding.num_embeddings, d, embedding_n, config.terms, embedding.padding_idx)
            new = new.to(embedding.weight.device, embedding.weight.dtype)
        replace_module(model, name, new)
    return model


def rebuild_kronecker(model: nn.Module, config: KroneckerConfig, structure: dict | None = None) -> nn.Module:
    """The saved factor shapes, built empty. Students saved before shapes were recorded (leanformer
    0.1.0 without a structure) resolve `config` again, as they were built."""
    if structure is not None:
        missing = [k for k in ("attention_a", "ffn_a", "embedding_n") if k not in structure]
        if missing:
            raise LeanformerError(f"the recorded Kronecker structure lacks {', '.join(missing)}: {structure!r:.120}")
        # the shapes' types and ranges, checked as the config checks them (a hand-edited file is one clear error)
        KroneckerConfig.from_dict(structure, where="the recorded Kronecker structure")
    return apply_kronecker(model, config, initialise=False, shapes=structure)
