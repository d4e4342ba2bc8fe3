"""What pruning kept, for tables and plots: heads and FFN width per layer, density, FLOP reduction.

The dense reference is the model's own config built on the meta device (no memory, no weights),
so the numbers compare the pruned model with the dense model it came from, counted the same way
(`leanformer.measure`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...architectures import get_architecture, iter_layers
from ...measure import flops_per_token, linear_parameters
from .layers import mask_density


def _dense_reference(model: nn.Module) -> nn.Module:
    config = copy.deepcopy(model.config)
    with torch.device("meta"):
        return type(model)(config)


def pruning_report(model: nn.Module, seq_len: int = 128) -> dict:
    """Per-layer heads and FFN dims kept, linear-parameter density and FLOP reduction vs dense.

    For a finalized (or dense) model. `mask_density` is the fraction of weights the current masks
    keep, 1.0 once the masks are baked.
    """
    spec = get_architecture(model)
    heads_total = getattr(model.config, spec.num_heads)
    ffn_total = getattr(model.config, spec.intermediate_size)
    layers = []
    for layer in iter_layers(model):
        (att,) = layer.stack.attentions
        heads = getattr(layer.module.get_submodule(att.module), att.num_heads_attr)
        ffn = layer.module.get_submodule(layer.stack.ffn.input).out_features
        layers.append({"layer": layer.index, "heads": heads, "heads_total": heads_total, "ffn_dims": ffn, "ffn_total": ffn_total})
    dense = _dense_reference(model)
    params, dense_params = linear_parameters(model), linear_parameters(dense)
    flops, dense_flops = flops_per_token(model, seq_len), flops_per_token(dense, seq_len)
    return {
        "layers": layers,
        "heads_kept": sum(row["heads"] for row in layers),
        "heads_total": heads_total * len(layers),
        "ffn_dims_kept": sum(row["ffn_dims"] for row in layers),
        "ffn_dims_total": ffn_total * len(layers),
        "linear_parameters": params,
        "dense_linear_parameters": dense_params,
        "density": params / dense_params,
        "mask_density": mask_density(model),
        "seq_len": seq_len,
        "flops_per_token": flops,
        "dense_flops_per_token": dense_flops,
        "flop_reduction": dense_flops / flops,
    }
