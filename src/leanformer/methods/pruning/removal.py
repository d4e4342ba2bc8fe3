"""Physical removal: bake the masks, drop dead heads and FFN dims, leave a smaller dense model.

Rules (all exact: the smaller model computes what the masked one did):
- a head is removed when its V rows are empty (all-zero weights and bias), in particular when it
  is empty in all of Q, K and V: its values are then zero, so it adds nothing whatever Q and K
  hold. A head empty in Q or K alone still attends (uniformly) and passes its values on, so it
  stays (dropping it too would change the outputs). Each layer keeps at least one head (the one with the most
  surviving weight in Q, K, V and the attention output);
- an FFN dim is removed when its W1 row (weights and bias) or its W2 column is empty (exact for
  activations with act(0) = 0: GELU, ReLU, SiLU); each layer keeps at least one dim.
Removal slices Q/K/V rows, attention-output columns, W1 rows (and biases) and W2 columns into
plain `nn.Linear`s and updates the attention module's head count attributes, so the model stays
its transformers class. The kept structure is what `finalize_pruning` returns (saved in the recipe stage):
    {"heads": [kept per attention], "head_indices": [[kept head ids] per attention], "ffn_dims": [kept per layer]}
where the attentions are listed in layer order, each layer's in its table order: one per encoder
layer, then for encoder-decoders each decoder layer's self-attention and cross-attention.
`apply_structure` reproduces it on a freshly built dense model for `leanformer.load`.
"""

from __future__ import annotations

import functools
import inspect

import torch
from torch import nn

from ...architectures import (ARCHITECTURES, AttentionSpec, LayerRef, attention_heads, get_architecture, iter_layers, replace_module,
                              set_attention_heads)
from ...errors import ConfigError, LeanformerError
from .config import BlockPruningConfig
from .layers import MaskedLinear, find_state
from .schedule import finish_state

# After removing heads of a family whose attention takes a bias for all heads at once (the table's
# `shared_head_bias`, MPNet's relative position bias), a pre-hook hands each layer its kept heads' slice.
KEPT_HEADS_BUFFER = "pruned_head_index"


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


def _select(linear: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    """A new `nn.Linear` with the chosen output rows (and bias entries) and input columns."""
    weight = linear.weight.detach()
    bias = linear.bias.detach() if linear.bias is not None else None
    if rows is not None:
        weight = weight.index_select(0, rows)
        bias = bias.index_select(0, rows) if bias is not None else None
    if cols is not None:
        weight = weight.index_select(1, cols)
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def _select_bias_heads(module: nn.Module, args: tuple, kwargs: dict, *, name: str, index: int):
    heads = getattr(module, KEPT_HEADS_BUFFER)
    if kwargs.get(name) is not None:
        kwargs = {**kwargs, name: kwargs[name].index_select(1, heads)}
    elif len(args) > index and args[index] is not None:
        args = (*args[:index], args[index].index_select(1, heads), *args[index + 1:])
    return args, kwargs


def _install_bias_selector(attention: nn.Module, kept: list[int], argument: str) -> None:
    index = torch.tensor(kept, dtype=torch.long, device=next(attention.parameters()).device)
    if hasattr(attention, KEPT_HEADS_BUFFER):  # already pruned once: compose the selections
        setattr(attention, KEPT_HEADS_BUFFER, getattr(attention, KEPT_HEADS_BUFFER).index_select(0, index))
        return
    attention.register_buffer(KEPT_HEADS_BUFFER, index, persistent=False)
    position = list(inspect.signature(attention.forward).parameters).index(argument)
    attention.register_forward_pre_hook(functools.partial(_select_bias_heads, name=argument, index=position), with_kwargs=True)


def _has_submodule(module: nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True


def _rows(kept: list[int], size: int, parts: int, total: int, device) -> torch.Tensor:
    """Row ids of blocks `kept` (each `size` rows) in each of `parts` stacked parts of `total` blocks."""
    return torch.tensor([p * total * size + h * size + i for p in range(parts) for h in kept for i in range(size)],
                        dtype=torch.long, device=device)


def remove_heads(layer: LayerRef, att: AttentionSpec, kept: list[int], model_type: str) -> None:
    """Keep only heads `kept` (ids in the current numbering) of the layer's attention `att`."""
    attention = layer.module.get_submodule(att.module)
    heads = attention_heads(layer.module, att)
    if list(kept) == list(range(heads)):
        return
    query = layer.module.get_submodule(att.query)
    d = query.out_features // att.qkv_parts // heads
    rows = _rows(kept, d, 1, heads, query.weight.device)
    present = [rel for rel in att.head_projections if _has_submodule(layer.module, rel)]
    for rel in dict.fromkeys((att.query, att.key, att.value)):  # one name when fused: its [Q; K; V] rows
        replace_module(layer.module, rel, _select(layer.module.get_submodule(rel), rows=_rows(kept, d, att.qkv_parts, heads, query.weight.device)))
    for rel in present:
        replace_module(layer.module, rel, _select(layer.module.get_submodule(rel), rows=rows))
    replace_module(layer.module, att.output, _select(layer.module.get_submodule(att.output), cols=rows))
    set_attention_heads(layer.module, att, len(kept), d)
    argument = ARCHITECTURES[model_type].shared_head_bias
    if argument is not None:
        _install_bias_selector(attention, list(kept), argument)


def remove_ffn_dims(layer: LayerRef, kept: list[int]) -> None:
    ffn = layer.stack.ffn
    ffn_in, ffn_out = layer.module.get_submodule(ffn.input), layer.module.get_submodule(ffn.output)
    dims = ffn_out.in_features
    if list(kept) == list(range(dims)):
        return
    index = torch.tensor(kept, dtype=torch.long, device=ffn_in.weight.device)
    replace_module(layer.module, ffn.input, _select(ffn_in, rows=_rows(kept, 1, ffn.input_parts, dims, ffn_in.weight.device)))
    replace_module(layer.module, ffn.output, _select(ffn_out, cols=index))


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
        q, k, v = (_select(fused, rows=torch.arange(i * third, (i + 1) * third, device=fused.weight.device)) for i in range(3))
        return [q, k, v, get(att.output)]
    return [get(rel) for rel in (att.query, att.key, att.value, att.output)]


def _layer_linears(layer: LayerRef) -> list[nn.Linear]:
    """Every linear of the layer's attentions and FFN, once each."""
    rels = [rel for att in layer.stack.attentions for rel in (att.query, att.key, att.value, att.output)]
    return [layer.module.get_submodule(rel) for rel in dict.fromkeys((*rels, layer.stack.ffn.input, layer.stack.ffn.output))]


def _head_count(layer: LayerRef, att: AttentionSpec) -> int:
    return attention_heads(layer.module, att)


def remove_pruned_structure(model: nn.Module) -> dict:
    """Remove dead heads of every attention and dead FFN dims of every layer (masks already baked);
    returns the structure kept."""
    model_type = get_architecture(model).model_type
    structure: dict[str, list] = {"heads": [], "head_indices": [], "ffn_dims": []}
    for layer in iter_layers(model):
        for att in layer.stack.attentions:
            heads = surviving_heads(*_attention_linears(layer, att), _head_count(layer, att))
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


def apply_structure(model: nn.Module, structure: dict) -> nn.Module:
    """Slice a dense model to a recorded structure (values are replaced by the loaded weights)."""
    layers = list(iter_layers(model))
    attentions = [(layer, att) for layer in layers for att in layer.stack.attentions]
    try:
        head_indices, ffn_dims = structure["head_indices"], structure["ffn_dims"]
    except (KeyError, TypeError):
        raise LeanformerError(f"the recorded pruning structure has no head_indices/ffn_dims: {structure!r}") from None
    if len(head_indices) != len(attentions) or len(ffn_dims) != len(layers):
        raise LeanformerError(
            f"the recorded pruning structure describes {len(head_indices)} attentions (head_indices) and {len(ffn_dims)} layers "
            f"(ffn_dims) but the model has {len(attentions)} and {len(layers)}; was config.json edited?"
        )
    model_type = get_architecture(model).model_type
    for (layer, att), heads in zip(attentions, head_indices):
        _check_recorded_heads(layer, att, heads)
        remove_heads(layer, att, heads, model_type)
    for layer, dims in zip(layers, ffn_dims):
        _check_recorded_ffn(layer, dims)
        remove_ffn_dims(layer, list(range(dims)))
    return model


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# A recorded structure that the dense model can be sliced to: distinct head ids in range, in order, and
# an FFN width within the dense one (else a hand-edited config.json would be a traceback or, worse, a
# silently different model).
def _check_recorded_heads(layer: LayerRef, att: AttentionSpec, heads) -> None:
    total = _head_count(layer, att)
    if not isinstance(heads, list) or not all(_is_int(h) for h in heads) or heads != sorted(set(heads)) or any(not 0 <= h < total for h in heads):
        raise LeanformerError(f"the recorded pruning structure, {layer.stack.name} layer {layer.index} {att.module}: head_indices must be "
                              f"distinct increasing head ids in [0, {total}), got {heads!r:.80}; was config.json edited?")


def _check_recorded_ffn(layer: LayerRef, dims) -> None:
    total = layer.module.get_submodule(layer.stack.ffn.output).in_features
    if not _is_int(dims) or not 0 <= dims <= total:
        raise LeanformerError(f"the recorded pruning structure, {layer.stack.name} layer {layer.index}: ffn_dims must be a whole number "
                              f"in [0, {total}], got {dims!r:.80}; was config.json edited?")
