"""Drop layers through the architecture tables: each stack keeps a subset of its layers, in order.

The kept layers are the teacher's own modules (weights and all), renumbered; the config's layer
count shrinks with them, so `save_pretrained` writes an ordinary, shallower model that
transformers itself can load. The stage records `teacher_layers` (per stack, the teacher layer
each student layer came from): distillation pairs each student layer with that teacher layer.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Iterable

import torch
from torch import nn

from ...architectures import attention_heads, base_prefix, get_architecture, iter_layers
from ...errors import ConfigError, LeanformerError
from ...shrink import apply_structure, remove_ffn_dims, remove_heads
from .config import DepthConfig


def chosen_layers(n: int, keep: int, strategy: str) -> list[int]:
    """`keep` of `n` layer indices: uniform = round((i + 1)·n/keep) − 1 (ends with the last layer), or the first `keep`."""
    if keep > n:
        raise ConfigError(f"cannot keep {keep} layers of a stack of {n}")
    if strategy == "first":
        return list(range(keep))
    return [round((i + 1) * n / keep) - 1 for i in range(keep)]


def _explicit_and_count(stack_name: str, config: DepthConfig) -> tuple[list[int] | None, int | None]:
    return (config.layers, config.num_layers) if stack_name == "encoder" else (config.decoder_layers, config.decoder_num_layers)


def _kept(stack_name: str, n: int, config: DepthConfig) -> list[int]:
    explicit, count = _explicit_and_count(stack_name, config)
    if explicit is not None:
        if explicit[-1] >= n:
            raise ConfigError(f"layer {explicit[-1]} does not exist: the {stack_name} has {n} layers (0 to {n - 1})")
        return list(explicit)
    if count is not None and config.strategy == "importance":
        raise ConfigError("strategy 'importance' chooses layers from training data: run it through leanformer.distil or "
                          "`leanformer compress` (they measure it), or give the layers")
    return chosen_layers(n, count, config.strategy) if count is not None else list(range(n))


@torch.no_grad()
def drop_one_layer_losses(model: nn.Module, stack_name: str, batches: list[dict]) -> list[float]:
    """The model's training loss on `batches` with each layer of one stack removed in turn (its
    importance: FastFormers, Michel et al. 2019 measure heads the same way)."""
    spec = get_architecture(model)
    stack = next(s for s in spec.stacks if s.name == stack_name)
    n = len(model.get_submodule(base_prefix(model) + stack.layers))
    was_training = model.training
    model.eval()
    losses = []
    for dropped in range(n):
        without = keep_layers(copy.deepcopy(model), {stack_name: [i for i in range(n) if i != dropped]})
        losses.append(sum(float(without(**b).loss) for b in batches) / len(batches))
    model.train(was_training)
    return losses


def choose_important_layers(model: nn.Module, config: DepthConfig, batches: Iterable[dict]) -> DepthConfig:
    """`config` with every stack counted under strategy importance turned into explicit layers:
    the num_layers whose removal raises the loss most, in order."""
    if config.strategy != "importance" or (config.num_layers is None and config.decoder_num_layers is None):
        return config
    batches = list(itertools.islice(batches, config.importance_batches))
    if not batches or "labels" not in batches[0]:
        raise ConfigError("strategy 'importance' needs labelled training batches to measure the loss")
    chosen = {}
    for stack in get_architecture(model).stacks:
        explicit, count = _explicit_and_count(stack.name, config)
        if explicit is None and count is not None:
            losses = drop_one_layer_losses(model, stack.name, batches)
            if count > len(losses):
                raise ConfigError(f"cannot keep {count} layers of a stack of {len(losses)}")
            chosen[stack.name] = sorted(sorted(range(len(losses)), key=lambda i: -losses[i])[:count])
    fields = {"encoder": ("layers", "num_layers"), "decoder": ("decoder_layers", "decoder_num_layers")}
    explicit = {fields[name][0]: layers for name, layers in chosen.items()} | {fields[name][1]: None for name in chosen}
    return dataclasses.replace(config, **explicit)


def _renumber(layer: nn.Module, index: int) -> None:
    # attention modules of decoders know their position in the key/value cache
    for module in layer.modules():
        if isinstance(getattr(module, "layer_idx", None), int):
            module.layer_idx = index


def keep_layers(model: nn.Module, teacher_layers: dict[str, list[int]]) -> nn.Module:
    """Keep, in each stack named in `teacher_layers`, those layers (in order), in place."""
    spec = get_architecture(model)
    for stack in spec.stacks:
        if stack.name not in teacher_layers:
            continue
        path = base_prefix(model) + stack.layers
        layers = model.get_submodule(path)
        kept = [layers[i] for i in teacher_layers[stack.name]]
        for index, layer in enumerate(kept):
            _renumber(layer, index)
        parent, _, child = path.rpartition(".")
        setattr(model.get_submodule(parent), child, nn.ModuleList(kept))
        setattr(model.config, stack.num_layers_attr, len(kept))
        for attr in stack.per_layer_config:  # e.g. ModernBERT's layer_types: local/global per layer
            values = getattr(model.config, attr, None)
            if values is not None:
                setattr(model.config, attr, [values[i] for i in teacher_layers[stack.name]])
    return model


def _teacher_layers(model: nn.Module, config: DepthConfig) -> dict[str, list[int]]:
    spec = get_architecture(model)
    if (config.decoder_layers is not None or config.decoder_num_layers is not None) and not spec.is_encoder_decoder:
        raise ConfigError(f"decoder_layers/decoder_num_layers are for encoder-decoders; {spec.model_type!r} has no decoder")
    sizes = {stack.name: len(model.get_submodule(base_prefix(model) + stack.layers)) for stack in spec.stacks}
    teacher_layers = {name: _kept(name, n, config) for name, n in sizes.items()}
    for stack in spec.stacks:
        if stack.keeps_first_layer and teacher_layers[stack.name][0] != 0:
            raise ConfigError(f"{spec.model_type}: the {stack.name}'s first layer is built differently from the others (a saved model "
                              f"would not load its weights): keep layer 0, e.g. --strategy first or --layers 0 ...")
    return teacher_layers


def apply_depth(model: nn.Module, config: DepthConfig) -> tuple[nn.Module, dict]:
    """Keep the chosen layers; then, if the config narrows them, their chosen heads and FFN dims.
    The structure records the teacher layer of each student layer and, when narrowed, what
    `leanformer.shrink` kept (its format: heads and head ids per attention, FFN dims per layer)."""
    teacher_layers = _teacher_layers(model, config)
    model = keep_layers(model, teacher_layers)
    structure = {"teacher_layers": teacher_layers}
    if config.narrows:
        if (config.heads is not None and config.head_indices is None) or (config.ffn_dims is not None and config.ffn_indices is None):
            raise ConfigError("heads and ffn_dims are chosen from training data: run it through leanformer.distil or `leanformer compress` "
                              "(they measure it), or give head_indices / ffn_indices")
        structure.update(narrow(model, config.head_indices, config.ffn_indices))
    return model, structure


def narrow(model: nn.Module, head_indices: list[list[int]] | None, ffn_indices: list[list[int]] | None) -> dict:
    """Keep heads `head_indices[a]` of each attention a (layer order) and FFN dims `ffn_indices[l]` of
    each layer l (None: all), in place; the structure kept, in `leanformer.shrink`'s format."""
    layers = list(iter_layers(model))
    attentions = [(layer, att) for layer in layers for att in layer.stack.attentions]
    heads = [list(range(attention_heads(layer.module, att))) for layer, att in attentions] if head_indices is None else head_indices
    dims = [list(range(layer.module.get_submodule(layer.stack.ffn.output).in_features)) for layer in layers] if ffn_indices is None else ffn_indices
    if len(heads) != len(attentions) or len(dims) != len(layers):
        raise ConfigError(f"head_indices lists {len(heads)} attentions and ffn_indices {len(dims)} layers; the student has "
                          f"{len(attentions)} attentions in {len(layers)} layers")
    model_type = get_architecture(model).model_type
    for (layer, att), kept in zip(attentions, heads):
        total = attention_heads(layer.module, att)
        if kept[-1] >= total:
            raise ConfigError(f"head {kept[-1]} does not exist: {layer.stack.name} layer {layer.index} has {total} heads")
        remove_heads(layer, att, kept, model_type)
    for layer, kept in zip(layers, dims):
        total = layer.module.get_submodule(layer.stack.ffn.output).in_features
        if kept[-1] >= total:
            raise ConfigError(f"FFN dimension {kept[-1]} does not exist: {layer.stack.name} layer {layer.index} has {total}")
        remove_ffn_dims(layer, kept)
    return {"heads": [len(k) for k in heads], "head_indices": heads, "ffn_dims": [len(k) for k in dims]}


def head_and_ffn_importance(model: nn.Module, batches: list[dict]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per attention (layer order) a (heads,) tensor, per layer an (FFN dims,) tensor: the mean over
    `batches` of |Σ x·∂L/∂x| over a head's context entries x (the attention output's input) or a
    dim's activations (W2's input): |∂L/∂m| for a mask m = 1 multiplying them (Michel et al. 2019;
    Molchanov et al. 2017), the first-order change of the training loss when the head or dim goes."""
    layers = list(iter_layers(model))
    attentions = [(layer, att) for layer in layers for att in layer.stack.attentions]
    inputs: dict[tuple[str, int], torch.Tensor] = {}

    def keep(key):
        def hook(module, args):
            args[0].retain_grad()
            inputs[key] = args[0]
        return hook

    handles = [layer.module.get_submodule(att.output).register_forward_pre_hook(keep(("head", i))) for i, (layer, att) in enumerate(attentions)]
    handles += [layer.module.get_submodule(layer.stack.ffn.output).register_forward_pre_hook(keep(("ffn", i))) for i, layer in enumerate(layers)]
    heads = [torch.zeros(attention_heads(layer.module, att)) for layer, att in attentions]
    dims = [torch.zeros(layer.module.get_submodule(layer.stack.ffn.output).in_features) for layer in layers]
    was_training = model.training
    model.eval()  # no dropout: the importance of the model as it is
    try:
        for batch in batches:
            model(**batch).loss.backward()
            for i, score in enumerate(heads):
                x = inputs[("head", i)]
                score += (x * x.grad).reshape(-1, len(score), x.shape[-1] // len(score)).sum(dim=(0, 2)).abs().detach().cpu()
            for i, score in enumerate(dims):
                x = inputs[("ffn", i)]
                score += (x * x.grad).reshape(-1, len(score)).sum(dim=0).abs().detach().cpu()
            model.zero_grad(set_to_none=True)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [s / len(batches) for s in heads], [s / len(batches) for s in dims]


def choose(model: nn.Module, config: DepthConfig, batches: Iterable[dict]) -> DepthConfig:
    """`config` with what data decides made explicit: the layers under strategy importance, then
    the `heads` most important heads of every kept attention and the `ffn_dims` most important FFN
    dims of every kept layer (measured on the shallower model)."""
    batches = list(itertools.islice(batches, config.importance_batches))
    config = choose_important_layers(model, config, batches)
    wants_heads = config.heads is not None and config.head_indices is None
    wants_dims = config.ffn_dims is not None and config.ffn_indices is None
    if not (wants_heads or wants_dims):
        return config
    if not batches or "labels" not in batches[0]:
        raise ConfigError("heads and ffn_dims are chosen from labelled training batches (the loss's gradient); none were given")
    shallow = keep_layers(copy.deepcopy(model), _teacher_layers(model, config))
    head_scores, dim_scores = head_and_ffn_importance(shallow, batches)

    def top(scores: list[torch.Tensor], k: int, what: str) -> list[list[int]]:
        if any(k > len(s) for s in scores):
            raise ConfigError(f"cannot keep {k} {what}: the layers have {min(len(s) for s in scores)}")
        return [sorted(s.topk(k).indices.tolist()) for s in scores]

    chosen = {}
    if wants_heads:
        chosen["head_indices"] = top(head_scores, config.heads, "heads")
    if wants_dims:
        chosen["ffn_indices"] = top(dim_scores, config.ffn_dims, "FFN dims")
    return dataclasses.replace(config, **chosen)


def check_rebuilt(model: nn.Module, structure: dict | None) -> nn.Module:
    """The saved config already has the smaller layer counts: the model is built shallow. Check the
    record agrees (a hand-edited config.json is one clear error)."""
    if structure is None:
        return model
    recorded = structure.get("teacher_layers") if isinstance(structure, dict) else None
    spec = get_architecture(model)
    for stack in spec.stacks:
        n = len(model.get_submodule(base_prefix(model) + stack.layers))
        kept = (recorded or {}).get(stack.name)
        if not isinstance(kept, list) or len(kept) != n or not all(isinstance(i, int) and i >= 0 for i in kept):
            raise LeanformerError(f"the recorded teacher_layers of the {stack.name} ({kept!r:.60}) do not describe its {n} layers; was config.json edited?")
    if "head_indices" in structure:  # narrowed: the config has the teacher's widths, the weights do not
        apply_structure(model, structure)
    return model
