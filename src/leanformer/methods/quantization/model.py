"""Apply full quantization by module swap, calibrate ranges without training, switch on at a step.

`apply_quantization` swaps, in place, every plain `nn.Linear` for a `QuantizedLinear` and every
plain `nn.Embedding` for a `QuantizedEmbedding` (same Parameters: ties survive), attaches Q/K/V/
softmax quantizers to each attention module named in the architecture tables, and routes
attention through `attention.quantized_attention`.
"""

from __future__ import annotations

import itertools
from typing import Iterable

import torch
from torch import nn
from transformers import TrainerCallback

from ...architectures import ARCHITECTURES, get_architecture, iter_layers, replace_module
from ...errors import ConfigError, UnsupportedModelError
from ...registry import TrainingExtras
from ..kronecker.layers import KroneckerEmbedding, KroneckerLinear
from . import attention
from .config import QuantizationConfig
from .layers import QuantizedEmbedding, QuantizedKroneckerEmbedding, QuantizedKroneckerLinear, QuantizedLinear, attention_quantizers
from .quantizers import ActivationQuantizer, WeightQuantizer

def _swap_all(model: nn.Module, kind: type, make) -> int:
    """Replace every module whose type is exactly `kind`, under all the names it is reachable by."""
    replaced: dict[int, nn.Module] = {}
    for name, module in list(model.named_modules(remove_duplicate=False)):
        if type(module) is not kind or not name:
            continue
        if id(module) not in replaced:
            replaced[id(module)] = make(module)
        replace_module(model, name, replaced[id(module)])
    return len(replaced)


def apply_quantization(model: nn.Module, config: QuantizationConfig) -> nn.Module:
    spec = get_architecture(model)
    leftovers = sorted({type(m).__name__ for m in model.modules() if isinstance(m, nn.Linear) and type(m) is not nn.Linear})
    if config.quantize_linear and leftovers:
        raise ConfigError(
            f"quantization found linear layers it cannot quantize ({', '.join(leftovers)}): finalize the previous "
            "method first (e.g. pruning's masks are baked and removed by its finalize step)"
        )
    if config.quantize_attention and not spec.attention_interface:
        supported = ", ".join(name for name, arch in ARCHITECTURES.items() if arch.attention_interface)
        raise UnsupportedModelError(
            f"quantized attention matmuls need transformers' attention interface, which {spec.model_type!r} does not use "
            f"(supported: {supported}); set quantize_attention: false to quantize the rest"
        )
    if config.quantize_linear:
        _swap_all(model, nn.Linear, lambda m: QuantizedLinear(m, config))
        _swap_all(model, KroneckerLinear, lambda m: QuantizedKroneckerLinear(m, config))
    if config.quantize_embeddings:
        _swap_all(model, nn.Embedding, lambda m: QuantizedEmbedding(m, config))
        _swap_all(model, KroneckerEmbedding, lambda m: QuantizedKroneckerEmbedding(m, config))
    if config.quantize_attention:
        for layer in iter_layers(model):
            for att in layer.stack.attentions:
                layer.module.get_submodule(att.module).attention_quantizers = attention_quantizers(config)
        attention.register()
        model.set_attn_implementation(attention.NAME)
    return model.train(model.training)  # new quantizers take the model's mode (eval: ranges frozen)


def rebuild_quantization(model: nn.Module, config: QuantizationConfig, structure: dict | None) -> nn.Module:
    # Same modules; the saved state holds the ranges (buffers) and the weights.
    return apply_quantization(model, config)


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, WeightQuantizer) for m in model.modules())


def activation_quantizers(model: nn.Module) -> dict[str, ActivationQuantizer]:
    return {name: m for name, m in model.named_modules() if isinstance(m, ActivationQuantizer)}


def set_quantization_enabled(model: nn.Module, enabled: bool) -> None:
    """Switch fake quantization on or off everywhere (ranges keep being tracked in training)."""
    for m in model.modules():
        if isinstance(m, (ActivationQuantizer, WeightQuantizer)):
            m.enabled = enabled


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[dict]) -> nn.Module:
    """Post-training quantization: set activation ranges from `batches` (EMA), weights untouched.

    Quantizers observe in training mode; dropout is switched off by keeping every other module in
    eval mode, so the ranges are those of inference.
    """
    model.eval()
    quantizers = list(activation_quantizers(model).values())
    for q in quantizers:
        q.train()
    seen = 0
    for batch in batches:
        model(**batch)  # labels too: encoder-decoders derive their decoder inputs from them
        seen += 1
    for q in quantizers:
        q.eval()
    if seen == 0:
        raise ConfigError("calibration needs at least one batch of inputs")
    return model


def calibrate_before_training(model: nn.Module, config: QuantizationConfig, batches: Iterable[dict]) -> None:
    """Ranges from the first `calibration_batches` training batches, so QAT starts from PTQ's ranges."""
    calibrate(model, itertools.islice(batches, config.calibration_batches))


class QuantizationStartCallback(TrainerCallback):
    """Fake quantization off before `start_step` (ranges are tracked meanwhile), on from it."""

    def __init__(self, model: nn.Module, start_step: int):
        self.model, self.start_step = model, start_step

    def on_step_begin(self, args, state, control, **kwargs):
        set_quantization_enabled(self.model, state.global_step >= self.start_step)

    def on_train_end(self, args, state, control, **kwargs):
        set_quantization_enabled(self.model, True)


def quantization_training_extras(model: nn.Module, config: QuantizationConfig) -> TrainingExtras:
    callbacks = [QuantizationStartCallback(model, config.start_step)] if config.start_step > 0 else []
    return TrainingExtras(callbacks=callbacks)
