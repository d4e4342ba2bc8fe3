"""Apply block pruning through the architecture tables, and what it adds to distillation training.

`apply_pruning` swaps every attention and FFN linear of every layer (encoder; decoder self- and
cross-attention) for a `MaskedLinear` (scores at 0, so the masked model starts equal to the dense one); `pruning_training_extras` gives the
schedule callback, the regulariser λ_t·R and the scores' learning rate; `rebuild_pruning` builds
the structure `leanformer.load` reads weights into: the shrunk dense model when the stage
recorded a structure (see `removal.py`), else the masked model at the end of its schedule.
"""

from __future__ import annotations

import torch
from torch import nn

from ...architectures import attention_heads, check_divides, iter_layers, replace_module
from ...errors import ConfigError
from ...registry import TrainingExtras
from ...shrink import apply_structure
from .config import BlockPruningConfig
from .layers import SCORES, MaskedLinear, PruningState, find_state, mask_density, score_regularization
from .schedule import PruningScheduleCallback, finish_state


def _plain_linear(model: nn.Module, name: str) -> nn.Linear:
    module = model.get_submodule(name)
    if isinstance(module, MaskedLinear):
        raise ConfigError(f"{name} is already masked: apply BlockPruningConfig once")
    if not isinstance(module, nn.Linear):
        raise ConfigError(f"{name} is a {type(module).__name__}, not an nn.Linear: apply block pruning before methods that replace linears")
    return module


def _block_grid(name: str, linear: nn.Linear, block_shape: list[int]) -> tuple[int, int]:
    check_divides("block_shape", block_shape, name, linear.out_features, linear.in_features)
    return linear.out_features // block_shape[0], linear.in_features // block_shape[1]


def apply_pruning(model: nn.Module, config: BlockPruningConfig) -> nn.Module:
    """Replace every layer's attention and FFN linears by masked linears, in place (the encoder's, and
    for encoder-decoders the decoder's self-attention, cross-attention and FFN too)."""
    state = PruningState(config.mask_method)
    for layer in iter_layers(model):
        new: dict[str, MaskedLinear] = {}
        for att in layer.stack.attentions:
            new.update(_masked_attention(model, layer, att, config, state))
        new.update(_masked_ffn(model, layer, config, state))
        for name, module in new.items():
            replace_module(model, name, module)
    return model


def _masked_attention(model, layer, att, config: BlockPruningConfig, state: PruningState) -> dict[str, MaskedLinear]:
    # a fused [Q; K; V] linear (att.fused_qkv) is one name for the three projections
    projections = list(dict.fromkeys(f"{layer.name}.{rel}" for rel in (att.query, att.key, att.value)))
    output = f"{layer.name}.{att.output}"
    if config.attention_structure == "block":
        return {name: MaskedLinear.from_linear(linear, _block_grid(name, linear, config.block_shape), state, "attention")
                for name in (*projections, output) for linear in (_plain_linear(model, name),)}
    # one score per head, shared by its Q, K, V rows and its attention-output columns
    heads = attention_heads(layer.module, att)
    owner = MaskedLinear.from_linear(_plain_linear(model, projections[0]), (heads, 1), state, "attention", parts=att.qkv_parts)
    masked = {projections[0]: owner}
    for name in projections[1:]:
        masked[name] = MaskedLinear.from_linear(_plain_linear(model, name), (heads, 1), state, "attention", owner)
    masked[output] = MaskedLinear.from_linear(_plain_linear(model, output), (1, heads), state, "attention", owner, transposed=True)
    return masked


def _masked_ffn(model, layer, config: BlockPruningConfig, state: PruningState) -> dict[str, MaskedLinear]:
    ffn = layer.stack.ffn
    full = [f"{layer.name}.{rel}" for rel in (ffn.input, ffn.output)]
    ffn_in, ffn_out = (_plain_linear(model, name) for name in full)
    if config.ffn_structure == "block":
        return {name: MaskedLinear.from_linear(linear, _block_grid(name, linear, config.block_shape), state, "ffn")
                for name, linear in zip(full, (ffn_in, ffn_out))}
    # one score per intermediate dim: W1's row (its up and gate rows when gated) and W2's column
    dims = ffn_out.in_features
    owner = MaskedLinear.from_linear(ffn_in, (dims, 1), state, "ffn", parts=ffn.input_parts)
    return {full[0]: owner, full[1]: MaskedLinear.from_linear(ffn_out, (1, dims), state, "ffn", owner, transposed=True)}


def rebuild_pruning(model: nn.Module, config: BlockPruningConfig, structure: dict | None = None) -> nn.Module:
    """The structure to load saved weights into: shrunk dense layers, or masked ones if never finalized."""
    if structure is not None:
        return apply_structure(model, structure)
    apply_pruning(model, config)
    finish_state(find_state(model), config)
    return model


class PruningRegularization:
    """The extra loss λ_t · R, R = Σ_groups weight_g · mean over the group's score matrices of mean(sigmoid(S))."""

    def __init__(self, state: PruningState, config: BlockPruningConfig):
        self.state = state
        self.weights = {"attention": config.attention_lambda, "ffn": config.ffn_lambda}

    def __call__(self, model: nn.Module) -> torch.Tensor:
        return self.state.regularization * score_regularization(model, self.weights)


def pruning_training_extras(model: nn.Module, config: BlockPruningConfig) -> TrainingExtras:
    state = find_state(model)
    if state is None:
        raise ConfigError("the model has no masked layers: compress it with BlockPruningConfig before training")
    extras = TrainingExtras(callbacks=[PruningScheduleCallback(state, config)])
    # the schedule and what the masks keep, on every log line (the report plots them)
    extras.log_values = lambda: {"threshold": state.threshold, "lambda": state.regularization, "mask_density": mask_density(model)}
    if config.uses_scores:
        extras.learning_rates = {SCORES: config.score_learning_rate}
    if config.mask_method == "sigmoid_threshold":
        extras.extra_losses = {"pruning_regularization": PruningRegularization(state, config)}
    return extras
