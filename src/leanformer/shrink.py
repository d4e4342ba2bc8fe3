"""Physical surgery through the architecture tables: remove attention heads and FFN dimensions.

Removal slices Q/K/V rows (a fused [Q; K; V] linear's rows in each third), attention-output
columns, W1 rows (an up and a gate row per dim when gated) and W2 columns into plain `nn.Linear`s
and updates the attention module's head count, so the model stays its transformers class. What was
kept is recorded as
    {"heads": [kept per attention], "head_indices": [[kept head ids] per attention], "ffn_dims": [kept per layer]}
where the attentions are listed in layer order, each layer's in its table order: one per encoder
layer, then for encoder-decoders each decoder layer's self-attention and cross-attention.
`apply_structure` reproduces it on a freshly built model for `leanformer.load` (the weights are
read afterwards). Block pruning decides what to remove from learned masks, depth's narrowing from
measured importance; both remove it here.
"""

from __future__ import annotations

import functools
import inspect

import torch
from torch import nn

from .architectures import (ARCHITECTURES, AttentionSpec, LayerRef, attention_heads, get_architecture, iter_layers, replace_module,
                            set_attention_heads)
from .errors import LeanformerError

# After removing heads of a family whose attention takes a bias for all heads at once (the table's
# `shared_head_bias`, MPNet's relative position bias), a pre-hook hands each layer its kept heads' slice.
KEPT_HEADS_BUFFER = "pruned_head_index"


def sliced_linear(linear: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
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
        replace_module(layer.module, rel, sliced_linear(layer.module.get_submodule(rel), rows=_rows(kept, d, att.qkv_parts, heads, query.weight.device)))
    for rel in present:
        replace_module(layer.module, rel, sliced_linear(layer.module.get_submodule(rel), rows=rows))
    replace_module(layer.module, att.output, sliced_linear(layer.module.get_submodule(att.output), cols=rows))
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
    replace_module(layer.module, ffn.input, sliced_linear(ffn_in, rows=_rows(kept, 1, ffn.input_parts, dims, ffn_in.weight.device)))
    replace_module(layer.module, ffn.output, sliced_linear(ffn_out, cols=index))





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
    total = attention_heads(layer.module, att)
    if not isinstance(heads, list) or not all(_is_int(h) for h in heads) or heads != sorted(set(heads)) or any(not 0 <= h < total for h in heads):
        raise LeanformerError(f"the recorded pruning structure, {layer.stack.name} layer {layer.index} {att.module}: head_indices must be "
                              f"distinct increasing head ids in [0, {total}), got {heads!r:.80}; was config.json edited?")


def _check_recorded_ffn(layer: LayerRef, dims) -> None:
    total = layer.module.get_submodule(layer.stack.ffn.output).in_features
    if not _is_int(dims) or not 0 <= dims <= total:
        raise LeanformerError(f"the recorded pruning structure, {layer.stack.name} layer {layer.index}: ffn_dims must be a whole number "
                              f"in [0, {total}], got {dims!r:.80}; was config.json edited?")
