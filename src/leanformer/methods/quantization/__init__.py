"""Full quantization (Fully Quantized Transformer): fake-quantized training of every matmul input,
then real int8 inference through ONNX Runtime."""

from ...distill import DistillationConfig
from ...registry import register_method
from .attention import quantized_attention
from .config import SUPPORTED_BITS, QuantizationConfig
from .layers import QuantizedEmbedding, QuantizedLinear
from .model import (
    QuantizationStartCallback,
    activation_quantizers,
    apply_quantization,
    calibrate,
    calibrate_before_training,
    is_quantized,
    quantization_training_extras,
    rebuild_quantization,
    set_quantization_enabled,
)
from .deploy import export_int8_onnx, export_int8_seq2seq, fold_weight_quantization, fold_weight_views, frozen_for_export
from .quantizers import ActivationQuantizer, WeightQuantizer, grid, scale_and_zero_point

register_method(
    "quantization",
    QuantizationConfig,
    apply=apply_quantization,
    rebuild=rebuild_quantization,
    description="Full quantization: every matmul input fake-quantized (8 bits and lower), int8 inference via ONNX (FullyQT)",
    training_extras=quantization_training_extras,
    demo_config=QuantizationConfig,
    # QAT starts from the teacher: a small learning rate and half an epoch keep what it knows
    # (and the demo's three quantized students within its ~10 minutes)
    demo_train={"learning_rate": 2e-5, "epochs": 0.5},
    default_distillation=DistillationConfig,
    calibrate=calibrate_before_training,
)

__all__ = [
    "QuantizationConfig", "SUPPORTED_BITS", "QuantizedLinear", "QuantizedEmbedding", "ActivationQuantizer", "WeightQuantizer",
    "apply_quantization", "rebuild_quantization", "calibrate", "activation_quantizers", "set_quantization_enabled",
    "quantization_training_extras", "QuantizationStartCallback", "quantized_attention", "grid", "scale_and_zero_point",
"is_quantized", "export_int8_onnx", "export_int8_seq2seq", "fold_weight_quantization", "fold_weight_views", "frozen_for_export",
]
