"""Drop layers through the architecture tables: each stack keeps a subset of its layers, in order.

The kept layers are the teacher's own modules (weights and all), renumbered; the config's layer
count shrinks with them, so `save_pretrained` writes an ordinary, shallower model that
transformers itself can load. The stage records `teacher_layers` (per stack, the teacher layer
each student layer came from): distillation pairs each student layer with that teacher layer.
"""

from __future__ import annotations

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


def _kept(stack_name: str, n: int, config: DepthConfig) -> list[int]:
    explicit, count = (config.layers, config.num_layers) if stack_name == "encoder" else (config.decoder_layers, config.decoder_num_layers)
    if explicit is not None:
        if explicit[-1] >= n:
            raise ConfigError(f"layer {explicit[-1]} does not exist: the {stack_name} has {n} layers (0 to {n - 1})")
        return list(explicit)
    return chosen_layers(n, count, config.strategy) if count is not None else list(range(n))


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
    return model


def apply_depth(model: nn.Module, config: DepthConfig) -> tuple[nn.Module, dict]:
    spec = get_architecture(model)
    if (config.decoder_layers is not None or config.decoder_num_layers is not None) and not spec.is_encoder_decoder:
        raise ConfigError(f"decoder_layers/decoder_num_layers are for encoder-decoders; {spec.model_type!r} has no decoder")
    sizes = {stack.name: len(model.get_submodule(base_prefix(model) + stack.layers)) for stack in spec.stacks}
    teacher_layers = {name: _kept(name, n, config) for name, n in sizes.items()}
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
