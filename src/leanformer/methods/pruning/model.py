"""Apply block pruning through the architecture tables, and what it adds to distillation training.

`apply_pruning` swaps every attention and FFN linear of the encoder for a `MaskedLinear` (scores
at 0, so the masked model starts equal to the dense one); `pruning_training_extras` gives the
schedule callback, the regulariser λ_t·R and the scores' learning rate; `rebuild_pruning` builds
the structure `leanformer.load` reads weights into: the shrunk dense model when the stage
recorded a structure (see `removal.py`), else the masked model at the end of its schedule.
"""

from __future__ import annotations

import torch
from torch import nn

from ...architectures import ARCHITECTURES, check_divides, get_architecture, iter_layers, replace_module
from ...errors import ConfigError
from ...registry import TrainingExtras
from .config import BlockPruningConfig
from .layers import SCORES, MaskedLinear, PruningState, find_state, mask_density, score_regularization
from .removal import apply_structure
from .schedule import PruningScheduleCallback, finish_state

ATTENTION_ROLES = ("query", "key", "value", "output")


def supported_model_types() -> list[str]:
    return sorted(name for name, spec in ARCHITECTURES.items() if not spec.is_encoder_decoder)


def unsupported_reason(spec) -> str | None:
    """Why block pruning cannot compress the family `spec` describes, or None."""
    if spec.is_encoder_decoder:
        return f"block pruning supports encoder models ({', '.join(supported_model_types())}); {spec.model_type!r} is an encoder-decoder"
    return None


def _check_supported(model: nn.Module) -> None:
    reason = unsupported_reason(get_architecture(model))
    if reason:
        raise ConfigError(reason)


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
    """Replace the encoder's attention and FFN linears by masked linears, in place."""
    _check_supported(model)
    state = PruningState(config.mask_method)
    for layer in iter_layers(model):
        (att,) = layer.stack.attentions
        names = dict(zip(ATTENTION_ROLES, (att.query, att.key, att.value, att.output)))
        names.update(ffn_in=layer.stack.ffn.input, ffn_out=layer.stack.ffn.output)
        full = {role: f"{layer.name}.{rel}" for role, rel in names.items()}
        linears = {role: _plain_linear(model, name) for role, name in full.items()}
        new: dict[str, MaskedLinear] = {}

        def masked(role: str, grid, group: str, owner=None, transposed=False) -> MaskedLinear:
            return MaskedLinear.from_linear(linears[role], grid, state, group, owner, transposed)

        if config.attention_structure == "block":
            for role in ATTENTION_ROLES:
                new[role] = masked(role, _block_grid(full[role], linears[role], config.block_shape), "attention")
        else:  # one score per head, shared by its Q, K, V rows and its attention-output columns
            heads = getattr(layer.module.get_submodule(att.module), att.num_heads_attr)
            owner = new["query"] = masked("query", (heads, 1), "attention")
            new["key"] = masked("key", (heads, 1), "attention", owner)
            new["value"] = masked("value", (heads, 1), "attention", owner)
            new["output"] = masked("output", (1, heads), "attention", owner, transposed=True)

        if config.ffn_structure == "block":
            for role in ("ffn_in", "ffn_out"):
                new[role] = masked(role, _block_grid(full[role], linears[role], config.block_shape), "ffn")
        else:  # one score per intermediate dim: W1's row and W2's column
            dims = linears["ffn_in"].out_features
            owner = new["ffn_in"] = masked("ffn_in", (dims, 1), "ffn")
            new["ffn_out"] = masked("ffn_out", (1, dims), "ffn", owner, transposed=True)

        for role, module in new.items():
            replace_module(model, full[role], module)
    return model


def rebuild_pruning(model: nn.Module, config: BlockPruningConfig, structure: dict | None = None) -> nn.Module:
    """The structure to load saved weights into: shrunk dense layers, or masked ones if never finalized."""
    if structure is not None:
        _check_supported(model)
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
