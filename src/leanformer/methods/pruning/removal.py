"""Physical removal: bake the masks, drop dead heads and FFN dims, leave a smaller dense model.

Rules (all exact: the smaller model computes what the masked one did):
- a head is removed when its V rows are empty (all-zero weights and bias), in particular when it
  is empty in all of Q, K and V: its values are then zero, so it adds nothing whatever Q and K
  hold. A head empty in Q or K alone still attends (uniformly) and passes its values on, so it
  stays (dropping it too would change the outputs). Each layer keeps at least one head (the one with the most
  surviving weight in Q, K, V and the attention output);
- an FFN dim is removed when its W1 row (weights and bias) or its W2 column is empty (exact for
  activations with act(0) = 0: GELU, ReLU, SiLU); each layer keeps at least one dim.
The slicing itself is `leanformer.shrink` (shared with depth's narrowing); the kept structure,
in its format, is what `finalize_pruning` returns (saved in the recipe stage) and what
`leanformer.shrink.apply_structure` reproduces on a freshly built dense model for `leanformer.load`.
"""

from __future__ import annotations

import torch
from torch import nn

from ...architectures import AttentionSpec, LayerRef, attention_heads, get_architecture, iter_layers, replace_module
from ...errors import ConfigError
from ...shrink import remove_ffn_dims, remove_heads, sliced_linear
from .config import BlockPruningConfig
from .layers import MaskedLinear, find_state
from .schedule import finish_state

def _alive_rows(linear: nn.Linear) -> torch.Tensor:
    alive = (linear.weight != 0).any(dim=1)
    return alive | (linear.bias != 0) if linear.bias is not None else alive


def surviving_heads(query: nn.Linear, key: nn.Linear, value: nn.Linear, output: nn.Linear, num_heads: int) -> list[int]:
    """Heads whose removal would change the output: those with a non-empty V slice (rows or bias).

    A head whose V slice is empty outputs exactly zero whatever Q and K hold, so it goes; that
    covers heads empty in all of Q, K and V. A head empty in Q or K only still averages V
    uniformly (softmax of constant scores), which is not zero, so it stays: removal is exact.
    At least one head per layer is kept (the one with the most weight left).
    """
    d = query.out_features // num_heads
    keep = _alive_rows(value).reshape(num_heads, d).any(dim=1)
    if not keep.any():
        mass = sum(lin.weight.abs().reshape(num_heads, -1).sum(dim=1) for lin in (query, key, value))
        mass = mass + output.weight.abs().reshape(output.out_features, num_heads, d).sum(dim=(0, 2))
        keep[mass.argmax()] = True
    return keep.nonzero().flatten().tolist()


def surviving_ffn_dims(ffn_in: nn.Linear, ffn_out: nn.Linear, parts: int = 1) -> list[int]:
    """Intermediate dims whose W1 row(s) and W2 column are all non-empty (at least one). A gated W1
    (`parts` = 2, rows [up; gate]) gives act(up)·gate: zero when either row is empty."""
    dims = ffn_out.in_features
    keep = _alive_rows(ffn_in).reshape(parts, dims).all(dim=0) & (ffn_out.weight != 0).any(dim=0)
    if not keep.any():
        mass = ffn_in.weight.abs().sum(dim=1).reshape(parts, dims).sum(dim=0) + ffn_out.weight.abs().sum(dim=0)
        keep[mass.argmax()] = True
    return keep.nonzero().flatten().tolist()


def bake_masks(model: nn.Module) -> None:
    """Replace every `MaskedLinear` by a plain `nn.Linear` holding its masked weight and bias."""
    masked = [(name, m) for name, m in model.named_modules() if isinstance(m, MaskedLinear)]
    baked = [(name, m.to_linear()) for name, m in masked]  # every mask first: layers share scores
    for name, linear in baked:
        replace_module(model, name, linear)


def _attention_linears(layer: LayerRef, att: AttentionSpec) -> list[nn.Linear]:
    """Q, K, V and output projections (a fused [Q; K; V] linear cut into its three row blocks)."""
    get = layer.module.get_submodule
    if att.fused_qkv:
        fused = get(att.query)
        third = fused.out_features // 3
        q, k, v = (sliced_linear(fused, rows=torch.arange(i * third, (i + 1) * third, device=fused.weight.device)) for i in range(3))
        return [q, k, v, get(att.output)]
    return [get(rel) for rel in (att.query, att.key, att.value, att.output)]


def _layer_linears(layer: LayerRef) -> list[nn.Linear]:
    """Every linear of the layer's attentions and FFN, once each."""
    rels = [rel for att in layer.stack.attentions for rel in (att.query, att.key, att.value, att.output)]
    return [layer.module.get_submodule(rel) for rel in dict.fromkeys((*rels, layer.stack.ffn.input, layer.stack.ffn.output))]


def remove_pruned_structure(model: nn.Module) -> dict:
    """Remove dead heads of every attention and dead FFN dims of every layer (masks already baked);
    returns the structure kept."""
    model_type = get_architecture(model).model_type
    structure: dict[str, list] = {"heads": [], "head_indices": [], "ffn_dims": []}
    for layer in iter_layers(model):
        for att in layer.stack.attentions:
            heads = surviving_heads(*_attention_linears(layer, att), attention_heads(layer.module, att))
            remove_heads(layer, att, heads, model_type)
            structure["heads"].append(len(heads))
            structure["head_indices"].append(heads)
        ffn = layer.stack.ffn
        dims = surviving_ffn_dims(layer.module.get_submodule(ffn.input), layer.module.get_submodule(ffn.output), ffn.input_parts)
        remove_ffn_dims(layer, dims)
        structure["ffn_dims"].append(len(dims))
    return structure


def fill_zeros(model: nn.Module, std: float, generator: torch.Generator | None = None) -> None:
    """Hybrid filled: the zeros left in the layers' linears (inside kept heads and dims) become N(0, std²) noise."""
    with torch.no_grad():
        for layer in iter_layers(model):
            for linear in _layer_linears(layer):
                zeros = linear.weight == 0
                noise = torch.randn(linear.weight.shape, generator=generator, dtype=linear.weight.dtype).to(linear.weight.device)
                linear.weight.copy_(torch.where(zeros, noise * std, linear.weight))


def finalize_pruning(model: nn.Module, config: BlockPruningConfig) -> tuple[nn.Module, dict]:
    """Bake the end-of-schedule masks, remove dead heads and FFN dims; the model and the structure kept."""
    state = find_state(model)
    if state is None:
        raise ConfigError("the model has no masked layers: compress it with BlockPruningConfig before finalizing")
    finish_state(state, config)
    bake_masks(model)
    structure = remove_pruned_structure(model)
    if config.fill_noise_std > 0:
        fill_zeros(model, config.fill_noise_std)
    return model, structure


