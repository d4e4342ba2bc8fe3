"""Quantized drop-ins that keep the float module's parameters (same objects, same state-dict names).

They subclass `nn.Linear` / `nn.Embedding` and take over the original `weight`/`bias` Parameters,
so tied weights (Marian's shared embedding and LM head) stay tied and checkpoints keep their keys;
the quantizers add only `*.input_quantizer.range_*` buffers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..kronecker.layers import KroneckerEmbedding, KroneckerLinear
from .config import QuantizationConfig
from .quantizers import ActivationQuantizer, WeightQuantizer


def _activation_quantizer(config: QuantizationConfig, bits: int) -> ActivationQuantizer:
    return ActivationQuantizer(bits, config.symmetric_activations, config.ema_momentum)


class QuantizedLinear(nn.Linear):
    """y = x̂ Ŵᵀ + b with x̂, Ŵ fake-quantized; the bias stays float (int32 in integer kernels)."""

    def __init__(self, linear: nn.Linear, config: QuantizationConfig):
        nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.input_quantizer = _activation_quantizer(config, config.activation_bits)
        self.weight_quantizer = WeightQuantizer(config.weight_bits, config.symmetric_weights, per_row=config.weight_ranges == "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.input_quantizer(x), self.weight_quantizer(self.weight), self.bias)

    def weight_sources(self) -> dict[nn.Module, torch.Tensor]:
        """What each weight quantizer quantizes (export fixes their ranges from these)."""
        return {self.weight_quantizer: self.weight}


class QuantizedEmbedding(nn.Embedding):
    """Lookup in the fake-quantized table (one range per row: per token).

    Only plain `nn.Embedding` tables are swapped; subclasses with their own forward (Marian's
    sinusoidal positions, computed not stored; BART's offset positions) stay float: they are added
    elementwise, never a matmul input.
    """

    def __init__(self, embedding: nn.Embedding, config: QuantizationConfig):
        nn.Module.__init__(self)
        for name in ("num_embeddings", "embedding_dim", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse"):
            setattr(self, name, getattr(embedding, name))
        self.weight = embedding.weight
        self.weight_quantizer = WeightQuantizer(config.bits_embedding, config.symmetric_weights, per_row=config.weight_ranges == "row")

    def weight_sources(self) -> dict[nn.Module, torch.Tensor]:
        return {self.weight_quantizer: self.weight}

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids, self.weight_quantizer(self.weight), self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse)


def attention_quantizers(config: QuantizationConfig) -> nn.ModuleDict:
    bits = config.bits_attention
    return nn.ModuleDict(
        {
            "query": _activation_quantizer(config, bits),
            "key": _activation_quantizer(config, bits),
            "value": _activation_quantizer(config, bits),
            # softmax output ∈ [0, 1]: a fixed unsigned grid with zero at q = 0
            "probs": ActivationQuantizer(bits, symmetric=False, fixed_range=(0.0, 1.0)),
        }
    )


def _rows(factor: torch.Tensor) -> torch.Tensor:
    return factor.reshape(-1, factor.shape[-1])


class _FactorQuantizer(WeightQuantizer):
    """A (terms, rows, cols) factor quantized with one range per row of each term (per tensor if
    `per_row` is off), so small factors keep their own scale."""

    def forward(self, factor: torch.Tensor) -> torch.Tensor:
        return super().forward(_rows(factor)).reshape(factor.shape)


class QuantizedKroneckerLinear(KroneckerLinear):
    """Kronecker layer with every matmul input quantized: the input and B (first contraction), the
    activation between the contractions and A (second), or, on the dense path, the input and the
    materialised weight."""

    def __init__(self, layer: KroneckerLinear, config: QuantizationConfig):
        nn.Module.__init__(self)
        for name in ("in_features", "out_features", "terms", "a_shape", "b_shape", "forward_mode"):
            setattr(self, name, getattr(layer, name))
        self.A, self.B, self.bias = layer.A, layer.B, layer.bias
        per_row = config.weight_ranges == "row"
        self.input_quantizer = _activation_quantizer(config, config.activation_bits)
        self.between_quantizer = _activation_quantizer(config, config.activation_bits)
        self.a_quantizer = _FactorQuantizer(config.weight_bits, config.symmetric_weights, per_row)
        self.b_quantizer = _FactorQuantizer(config.weight_bits, config.symmetric_weights, per_row)
        self.weight_quantizer = WeightQuantizer(config.weight_bits, config.symmetric_weights, per_row)

    stateless_forward = False  # the activation quantizers' EMA ranges move in train mode

    def candidate_plans(self) -> tuple[str, ...]:
        # The activation quantized between the contractions depends on which factor goes first,
        # and the dense path has none: only the layout of the A contraction is free.
        rule = self.rule_plan()
        return (rule,) if rule == "dense" else (rule, rule.replace("/tokens", "/rows"))

    def _input(self, x):
        return self.input_quantizer(x)

    def _factors(self):
        return self.a_quantizer(self.A), self.b_quantizer(self.B)

    def _between(self, z):
        return self.between_quantizer(z)

    def _dense_weight(self):
        return self.weight_quantizer(self.weight)

    def weight_sources(self) -> dict[nn.Module, torch.Tensor]:
        return {self.a_quantizer: _rows(self.A), self.b_quantizer: _rows(self.B), self.weight_quantizer: self.weight}


class QuantizedKroneckerEmbedding(KroneckerEmbedding):
    """Kronecker token table with both factors quantized (A per token row)."""

    def __init__(self, layer: KroneckerEmbedding, config: QuantizationConfig):
        nn.Module.__init__(self)
        for name in ("num_embeddings", "embedding_dim", "n", "terms", "padding_idx"):
            setattr(self, name, getattr(layer, name))
        self.A, self.B = layer.A, layer.B
        per_row = config.weight_ranges == "row"
        self.a_quantizer = _FactorQuantizer(config.bits_embedding, config.symmetric_weights, per_row)
        self.b_quantizer = _FactorQuantizer(config.bits_embedding, config.symmetric_weights, per_row)

    def _factors(self):
        return self.a_quantizer(self.A), self.b_quantizer(self.B)

    def weight_sources(self) -> dict[nn.Module, torch.Tensor]:
        return {self.a_quantizer: _rows(self.A), self.b_quantizer: _rows(self.B)}
