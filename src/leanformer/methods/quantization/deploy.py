"""Real int8 inference: export a fake-quantized model to ONNX with its learned ranges, run it in
onnxruntime's integer kernels.

The exporter turns each fake quantizer into QuantizeLinear → DequantizeLinear with the constant
scale and zero point the model trained with; weights are then stored as int8 initializers (one
DequantizeLinear each), so the file is about 4× smaller. onnxruntime's graph optimizer fuses the
DequantizeLinear → MatMul → QuantizeLinear patterns into integer matmuls (QLinearMatMul,
MatMulIntegerToFloat) on CPU.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ...errors import LeanformerError
from .quantizers import ActivationQuantizer, WeightQuantizer


@contextlib.contextmanager
def frozen_for_export(model: nn.Module):
    """Fix every quantizer's (scale, zero_point) as constants, computed outside the trace."""
    quantizers = [m for m in model.modules() if isinstance(m, (ActivationQuantizer, WeightQuantizer))]
    if not quantizers:
        raise LeanformerError("this model has no quantizers: compress it with QuantizationConfig before exporting it as int8")
    sources = {q: t for m in model.modules() if hasattr(m, "weight_sources") for q, t in m.weight_sources().items()}
    try:
        for q in quantizers:
            if isinstance(q, WeightQuantizer):
                q.frozen = tuple(t.clone() for t in q.qparams(sources[q]))
            else:
                if int(q.observed) == 0:
                    raise LeanformerError("an activation quantizer has no range yet: train or calibrate the model before exporting it")
                q.frozen = tuple(t.clone() for t in q.qparams())
        yield model
    finally:
        for q in quantizers:
            q.frozen = None


def fold_weight_quantization(model_proto: onnx.ModelProto) -> int:
    """QuantizeLinear applied to a float initializer → the integer initializer itself. Returns how many."""
    graph = model_proto.graph
    inits = {i.name: i for i in graph.initializer}
    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}

    def value(name: str):
        if name in inits:
            return numpy_helper.to_array(inits[name])
        if name in constants:
            return numpy_helper.to_array(constants[name].attribute[0].t)
        return None

    folded, keep = 0, []
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] in inits:
            x, scale, zero_point = (value(n) for n in node.input[:3])
            if scale is not None and zero_point is not None:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                if scale.ndim == 1:  # per-axis: broadcast along `axis`
                    shape = [1] * x.ndim
                    shape[axis] = -1
                    scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
                info = np.iinfo(zero_point.dtype)
                q = np.clip(np.rint(x / scale) + zero_point.astype(np.int32), info.min, info.max).astype(zero_point.dtype)
                graph.initializer.append(numpy_helper.from_array(q, node.output[0]))
                folded += 1
                continue
        keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    used = {i for n in graph.node for i in n.input}
    unused = [i for i in graph.initializer if i.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    return folded


def _fold_in_place(path: Path) -> None:
    proto = onnx.load(str(path))
    if fold_weight_quantization(proto) == 0:
        raise LeanformerError("the exported graph has no quantized weights to store as int8")
    onnx.save(proto, str(path))


def export_int8_seq2seq(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Encoder and cached decoder step of a fake-quantized encoder-decoder, as int8 ONNX graphs."""
    from ...onnx_generation import export_seq2seq_onnx

    with frozen_for_export(model), torch.no_grad():
        return export_seq2seq_onnx(model, directory, postprocess=_fold_in_place)


def export_int8_onnx(model: nn.Module, path: str | os.PathLike, *, seq_len: int = 16) -> Path:
    """Write the fake-quantized `model` as an int8 ONNX model (QDQ with int8 weights), atomically."""
    from ...export import export_onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        float_path = Path(tmp) / "qdq.onnx"
        with frozen_for_export(model), torch.no_grad():
            export_onnx(model, float_path, seq_len=seq_len)
        _fold_in_place(float_path)
        os.replace(float_path, path)
    return path
