"""`QuantizationConfig`: which matmul inputs are fake-quantized during training, at how many bits.

What is quantized (Fully Quantized Transformer): the input and the weight of every linear map
(attention projections, FFN, pooler, classifier, LM head), Q and K before QKᵀ, the softmax output
and V before the weighted sum (encoder, decoder and cross-attention), and the embedding tables.

What stays float, and why: LayerNorm, softmax, GELU/ReLU and the residual additions (elementwise,
no matmul; quantizing the LayerNorm denominator is what makes naive full quantization diverge, so
LayerNorm computes in float and its *output* is quantized as the next linear's input); biases (int32
in integer kernels, a rounding error far below one activation step); the logits (the last matmul's
output, consumed by argmax or the loss).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...config import ConfigBase
from ...errors import ConfigError

SUPPORTED_BITS = (2, 3, 4, 5, 6, 7, 8)


@dataclass
class QuantizationConfig(ConfigBase):
    weight_bits: int = field(default=8, metadata={"help": "Bits of linear weights (2-8)."})
    activation_bits: int = field(default=8, metadata={"help": "Bits of linear inputs (2-8)."})
    attention_bits: int | None = field(default=None, metadata={"help": "Bits of Q, K, V and the softmax output (default: activation_bits)."})
    embedding_bits: int | None = field(default=None, metadata={"help": "Bits of the embedding tables (default: weight_bits)."})
    weight_ranges: Literal["row", "tensor"] = field(
        default="row", metadata={"help": "Weight range per bucket (one per output row) or one per tensor."}
    )
    symmetric_weights: bool = field(default=True, metadata={"help": "Weights on a grid symmetric around 0 (int8 kernels want it)."})
    symmetric_activations: bool = field(default=False, metadata={"help": "Activations on a symmetric grid (default: min/max, asymmetric)."})
    ema_momentum: float = field(default=0.99, metadata={"help": "Activation ranges: range ← m·range + (1−m)·batch min/max."})
    start_step: int = field(default=0, metadata={"help": "Optimizer step at which fake quantization switches on (ranges are tracked before)."})
    calibration_batches: int = field(
        default=8, metadata={"help": "Training batches that set the activation ranges before training (all that post-training quantization does)."}
    )
    quantize_linear: bool = field(default=True, metadata={"help": "Quantize inputs and weights of every linear map."})
    quantize_attention: bool = field(default=True, metadata={"help": "Quantize Q, K before QKᵀ and softmax, V before the weighted sum."})
    quantize_embeddings: bool = field(default=True, metadata={"help": "Quantize the embedding tables."})

    def validate(self) -> None:
        for name in ("weight_bits", "activation_bits", "attention_bits", "embedding_bits"):
            bits = getattr(self, name)
            if bits is not None and bits not in SUPPORTED_BITS:
                raise ConfigError(f"{name} = {bits} is not supported; choose one of {', '.join(map(str, SUPPORTED_BITS))}")
        if not 0.0 <= self.ema_momentum < 1.0:
            raise ConfigError(f"ema_momentum must be in [0, 1), got {self.ema_momentum}")
        if self.calibration_batches < 1:
            raise ConfigError(f"calibration_batches must be >= 1, got {self.calibration_batches}")
        if self.start_step < 0:
            raise ConfigError(f"start_step must be >= 0, got {self.start_step}")
        if not (self.quantize_linear or self.quantize_attention or self.quantize_embeddings):
            raise ConfigError("nothing to quantize: enable at least one of quantize_linear, quantize_attention, quantize_embeddings")

    @property
    def bits_attention(self) -> int:
        return self.attention_bits or self.activation_bits

    @property
    def bits_embedding(self) -> int:
        return self.embedding_bits or self.weight_bits

    @classmethod
    def fullyqt(cls, bits: int = 8, **overrides) -> "QuantizationConfig":
        """The paper's setting: everything at `bits`, row-bucketed weights, EMA activation ranges."""
        return cls(weight_bits=bits, activation_bits=bits, **overrides)
