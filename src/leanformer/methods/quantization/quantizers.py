"""Fake quantizers: round to a k-bit grid and back, with a straight-through gradient.

Uniform affine quantization, x_q = clamp(round(x/s) + z, q_min, q_max), x̂ = (x_q − z)·s, through
torch's own `fake_quantize_per_tensor_affine` / `..._per_channel_affine`: their gradient is the
straight-through estimator (1 inside the range, 0 where the input was clipped), and the ONNX
exporter turns them into QuantizeLinear/DequantizeLinear pairs, which onnxruntime runs as int8.

Ranges always contain 0, so zero (padding, ReLU zeros, masked attention) is exactly representable.
Weights take their range from the current tensor (per output row: "buckets"); activations from an
exponential moving average of batch min/max, updated in training mode and frozen in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import LeanformerError


def grid(bits: int, symmetric: bool) -> tuple[int, int]:
    """(q_min, q_max): signed and symmetric, or unsigned."""
    if symmetric:
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _fake_quantize(x, scale, zero_point, bits: int, symmetric: bool, axis: int | None = None):
    q_min, q_max = grid(bits, symmetric)
    if axis is not None:
        return torch.fake_quantize_per_channel_affine(x, scale, zero_point, axis, q_min, q_max)
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, q_min, q_max)


def _export_quantize(x, frozen, axis: int | None = None):
    """ONNX export: QuantizeLinear/DequantizeLinear with constant parameters.

    `frozen` is a `StoredGrid` (deploy.frozen_for_export): the k-bit grid as stored in an 8-bit
    container (ONNX knows int8 and uint8 only), zero point moved with it, so the dequantized
    values are those of training. A per-tensor grid narrower than its container gets a Clip first.
    """
    scale, zero_point, q_min, q_max, c_min, c_max = frozen
    if axis is not None:  # weights: their own range is already on the k-bit grid, no clip needed
        return torch.fake_quantize_per_channel_affine(x, scale, zero_point, axis, c_min, c_max)
    s, z = float(scale), int(zero_point)
    if (q_min, q_max) != (c_min, c_max):
        x = torch.clamp(x, (q_min - z) * s, (q_max - z) * s)
    return torch.fake_quantize_per_tensor_affine(x, s, z, c_min, c_max)


def scale_and_zero_point(lo: torch.Tensor, hi: torch.Tensor, bits: int, symmetric: bool):
    """Step and zero point of the grid covering [lo, hi] ∪ {0}."""
    q_min, q_max = grid(bits, symmetric)
    lo = torch.clamp(lo, max=0.0)
    hi = torch.clamp(hi, min=0.0)
    tiny = torch.finfo(torch.float32).tiny
    if symmetric:
        scale = torch.maximum(hi, -lo) / q_max
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
    else:
        scale = (hi - lo) / (q_max - q_min)
        zero_point = torch.clamp(torch.round(q_min - lo / scale.clamp(min=tiny)), q_min, q_max).to(torch.int32)
    return scale.clamp(min=1e-8).float(), zero_point


class WeightQuantizer(nn.Module):
    """Range from the weight itself, per output row (bucket) or per tensor; no state."""

    def __init__(self, bits: int, symmetric: bool = True, per_row: bool = True):
        super().__init__()
        self.bits, self.symmetric, self.per_row = bits, symmetric, per_row
        self.enabled = True
        self.frozen = None  # the stored grid while exporting, see deploy.frozen_for_export

    def qparams(self, weight: torch.Tensor):
        w = weight.detach()
        if self.per_row:
            flat = w.reshape(w.shape[0], -1)
            return scale_and_zero_point(flat.amin(dim=1), flat.amax(dim=1), self.bits, self.symmetric)
        return scale_and_zero_point(w.amin(), w.amax(), self.bits, self.symmetric)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return weight
        axis = 0 if self.per_row else None
        if torch.onnx.is_in_onnx_export() and self.frozen is not None:
            return _export_quantize(weight, self.frozen, axis)
        scale, zero_point = self.qparams(weight)
        return _fake_quantize(weight, scale, zero_point, self.bits, self.symmetric, axis)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, symmetric={self.symmetric}, per_row={self.per_row}"


class ActivationQuantizer(nn.Module):
    """Per-tensor range tracked by EMA of batch min/max in training, frozen in eval.

    `fixed_range` pins the range instead (the softmax output lives in [0, 1]).
    """

    def __init__(self, bits: int, symmetric: bool = False, momentum: float = 0.99, fixed_range: tuple[float, float] | None = None):
        super().__init__()
        self.bits, self.symmetric, self.momentum = bits, symmetric, momentum
        self.fixed = fixed_range is not None
        lo, hi = fixed_range or (0.0, 0.0)
        self.register_buffer("range_min", torch.tensor(float(lo)))
        self.register_buffer("range_max", torch.tensor(float(hi)))
        # 0 until the first batch is seen: the first batch sets the range, later ones move it
        self.register_buffer("observed", torch.tensor(1 if self.fixed else 0))
        self.enabled = True
        self.frozen = None  # the stored grid while exporting, see deploy.frozen_for_export

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        lo, hi = x.detach().amin().float(), x.detach().amax().float()
        if int(self.observed) == 0:
            self.range_min.copy_(lo)
            self.range_max.copy_(hi)
        else:
            self.range_min.mul_(self.momentum).add_((1 - self.momentum) * lo)
            self.range_max.mul_(self.momentum).add_((1 - self.momentum) * hi)
        self.observed += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.fixed:
            self.observe(x)
        if not self.enabled:
            return x
        if int(self.observed) == 0:
            raise LeanformerError(
                "activation quantizer has no range yet: train or calibrate the model "
                "(leanformer.methods.quantization.calibrate) before evaluating it"
            )
        if torch.onnx.is_in_onnx_export() and self.frozen is not None:
            return _export_quantize(x, self.frozen)
        return _fake_quantize(x, *self.qparams(), self.bits, self.symmetric)

    def qparams(self):
        return scale_and_zero_point(self.range_min, self.range_max, self.bits, self.symmetric)

    def extra_repr(self) -> str:
        kind = "fixed" if self.fixed else f"ema={self.momentum}"
        return f"bits={self.bits}, symmetric={self.symmetric}, {kind}"
