"""Full quantization (Fully Quantized Transformer): fake-quantized training of every matmul input,
then real int8 inference through ONNX Runtime."""

from dataclasses import dataclass, field
from typing import Literal

from ...config import ConfigBase
from ...lazy import lazy_exports
from ...registry import Method, ReportFigure, register_method
from .config import SUPPORTED_BITS, QuantizationConfig

# fake quantization and the int8 exporter need torch and onnx: imported by the hooks that run, so
# that the configs (and `--help`) stay light


@dataclass
class Int8ExportOptions(ConfigBase):
    """How a quantized model is written as int8 ONNX (`leanformer export` flags)."""

    portable: bool = field(
        default=False,
        metadata={"help": "Quantized models: write the plain QDQ graph (any ONNX runtime) instead of onnxruntime's optimized int8 graph."},
    )
    int8_kernels: Literal["any", "vnni"] = field(
        default="any",
        metadata={"help": "Quantized models: 'any' stores 8-bit weights as uint8, exact on every x86 CPU; 'vnni' as int8, faster "
                          "on CPUs with AVX512_VNNI/AVX_VNNI/AMX (1.7x at batch 32 on a VNNI EPYC) but wrong (saturating) on "
                          "AVX2-only CPUs. Students trained with --weight_bits 7 are stored as int8 either way: exact and fast everywhere."},
    )


class QuantizationMethod(Method):
    """Full quantization: every matmul input fake-quantized (8 bits and lower), int8 inference via ONNX (FullyQT)."""

    name = "quantization"
    config_class = QuantizationConfig
    export_options = Int8ExportOptions
    deployed_runtime = "onnxruntime int8"  # fake quantization in PyTorch is slower than float: time the real form
    export_note = "int8 weights and activations, integer kernels"
    # QAT starts from the teacher: a small learning rate and half an epoch keep what it knows
    # (and the demo's quantized students within its ~10 minutes)
    demo_train = {"learning_rate": 2e-5, "epochs": 0.5}
    demo_stacks_on_others = True  # int8 deploys last: the demo quantizes every other method's student too

    def apply(self, model, config):
        from .model import apply_quantization

        return apply_quantization(model, config), None  # ranges and weights are in the saved state

    def rebuild(self, model, config, structure):
        from .model import rebuild_quantization

        return rebuild_quantization(model, config, structure)

    def calibrate(self, model, config, batches):
        from .model import calibrate_before_training

        calibrate_before_training(model, config, batches)

    def training_extras(self, model, config):
        from .model import quantization_training_extras

        return quantization_training_extras(model, config)

    def export_onnx(self, model, output, *, seq2seq, opset, options):
        from .int8_export import export_int8_onnx, export_int8_seq2seq

        options = options or Int8ExportOptions()
        export = export_int8_seq2seq if seq2seq else export_int8_onnx
        return export(model, output, optimize=not options.portable, kernels=options.int8_kernels)

    def report_figures(self, students):
        from .figures import ranges_figure

        return [ReportFigure("activation_ranges.png", "Activation ranges of the quantized students", ranges_figure(students))]

    def tiny_config(self, spec):
        # attention matmuls are quantized through transformers' attention interface (not MPNet's own attention)
        return QuantizationConfig(quantize_attention=spec.attention_interface)

    def demo_config(self, spec):
        return self.tiny_config(spec)  # every matmul where the family's attention allows it


register_method(QuantizationMethod())

__getattr__, __dir__, _lazy = lazy_exports(__name__, {
    ".attention": ("quantized_attention",),
    ".int8_export": ("export_int8_onnx", "export_int8_seq2seq", "fold_weight_quantization", "fold_weight_views", "frozen_for_export"),
    ".figures": ("activation_ranges", "ranges_figure"),
    ".layers": ("QuantizedEmbedding", "QuantizedLinear"),
    ".model": (
        "QuantizationStartCallback", "activation_quantizers", "apply_quantization", "calibrate", "calibrate_before_training",
        "is_quantized", "quantization_training_extras", "rebuild_quantization", "set_quantization_enabled",
    ),
    ".quantizers": ("ActivationQuantizer", "WeightQuantizer", "grid", "scale_and_zero_point"),
})
__all__ = ["QuantizationConfig", "SUPPORTED_BITS", "QuantizationMethod", "Int8ExportOptions", *_lazy]
