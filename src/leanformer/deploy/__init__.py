"""The ONNX forms leanformer writes and runs: an encoder with its task head as one graph
(`encoder`), an encoder-decoder as an encoder graph and a cached decoder step with greedy
generation in onnxruntime (`seq2seq`). Both compute exactly what the PyTorch model does; a method
that deploys differently (int8) builds on them in its own folder (`methods/quantization/int8_export.py`).
`leanformer.export(model, path)` picks the right one."""

from .encoder import OnnxClassifier, export_onnx, onnx_session
from .seq2seq import OnnxSeq2Seq, export_seq2seq_onnx

__all__ = ["OnnxClassifier", "export_onnx", "onnx_session", "OnnxSeq2Seq", "export_seq2seq_onnx"]
