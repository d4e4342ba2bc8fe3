"""What pruning kept, for tables and plots: heads and FFN width per layer, density, FLOP reduction.

The dense reference is the model's own config built on the meta device (no memory, no weights),
so the numbers compare the pruned model with the dense model it came from, counted the same way
(`leanformer.measure`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...architectures import attention_heads, iter_layers
from ...measure import flops_per_token, linear_parameters
from .layers import mask_density


def _dense_reference(model: nn.Module) -> nn.Module:
    config = copy.deepcopy(model.config)
    with torch.device("meta"):
        return type(model)(config)


def _attention_heads(model: nn.Module) -> list[list[int]]:
    """Heads of each attention (self, then cross where the layer has one), per layer."""
    return [[attention_heads(layer.module, att) for att in layer.stack.attentions]
            for layer in iter_layers(model)]


def pruning_report(model: nn.Module, seq_len: int = 128) -> dict:
    """Per-layer heads and FFN dims kept, linear-parameter density and FLOP reduction vs dense.

    For a finalized (or dense) model. A row per layer of each stack (encoder, then decoder):
    `heads` is its self-attention's, `cross_heads` its cross-attention's where it has one.
    `mask_density` is the fraction of weights the current masks keep, 1.0 once the masks are baked.
    """
    dense = _dense_reference(model)
    layers = []
    for layer, heads, dense_heads in zip(iter_layers(model), _attention_heads(model), _attention_heads(dense)):
        ffn = layer.stack.ffn.output  # its columns are the FFN dims (a gated W1 has two rows per dim)
        row = {"stack": layer.stack.name, "layer": layer.index, "heads": heads[0], "heads_total": dense_heads[0],
               "ffn_dims": layer.module.get_submodule(ffn).in_features, "ffn_total": dense.get_submodule(layer.name).get_submodule(ffn).in_features}
        if len(heads) > 1:
            row.update(cross_heads=heads[1], cross_heads_total=dense_heads[1])
        layers.append(row)
    params, dense_params = linear_parameters(model), linear_parameters(dense)
    flops, dense_flops = flops_per_token(model, seq_len), flops_per_token(dense, seq_len)
    return {
        "layers": layers,
        "heads_kept": sum(sum(h) for h in _attention_heads(model)),
        "heads_total": sum(sum(h) for h in _attention_heads(dense)),
        "ffn_dims_kept": sum(row["ffn_dims"] for row in layers),
        "ffn_dims_total": sum(row["ffn_total"] for row in layers),
        "linear_parameters": params,
        "dense_linear_parameters": dense_params,
        "density": params / dense_params,
        "mask_density": mask_density(model),
        "seq_len": seq_len,
        "flops_per_token": flops,
        "dense_flops_per_token": dense_flops,
        "flop_reduction": dense_flops / flops,
    }
