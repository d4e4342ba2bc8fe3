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

from ...architectures import base_prefix, get_architecture
from ...errors import ConfigError, LeanformerError
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
    if config.strategy != "importance":
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


def apply_depth(model: nn.Module, config: DepthConfig) -> tuple[nn.Module, dict]:
    spec = get_architecture(model)
    if (config.decoder_layers is not None or config.decoder_num_layers is not None) and not spec.is_encoder_decoder:
        raise ConfigError(f"decoder_layers/decoder_num_layers are for encoder-decoders; {spec.model_type!r} has no decoder")
    sizes = {stack.name: len(model.get_submodule(base_prefix(model) + stack.layers)) for stack in spec.stacks}
    teacher_layers = {name: _kept(name, n, config) for name, n in sizes.items()}
    for stack in spec.stacks:
        if stack.keeps_first_layer and teacher_layers[stack.name][0] != 0:
            raise ConfigError(f"{spec.model_type}: the {stack.name}'s first layer is built differently from the others (a saved model "
                              f"would not load its weights): keep layer 0, e.g. --strategy first or --layers 0 ...")
    return keep_layers(model, teacher_layers), {"teacher_layers": teacher_layers}


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
    return model
