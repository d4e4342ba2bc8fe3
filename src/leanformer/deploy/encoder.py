"""Export a (compressed) encoder model to ONNX, computed exactly as in PyTorch (factored layers stay factored).

Uses torch's TorchScript-based exporter (`dynamo=False`): it needs no extra package and traces
the method layers' Python control flow at their fixed shapes, with batch and sequence axes dynamic.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from ..measure import dummy_inputs
from ..runtime import onnx_session


def export_onnx(model: nn.Module, path: str | os.PathLike, *, seq_len: int = 16, opset: int = 17) -> Path:
    """Write `model` (an encoder with a task head) to `path`; inputs input_ids, attention_mask[, token_type_ids]."""
    path = Path(path)
    model = model.eval()
    inputs = dummy_inputs(model, 2, seq_len)
    names = list(inputs)
    output_names = ["start_logits", "end_logits"] if "QuestionAnswering" in type(model).__name__ else ["logits"]
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes.update({name: {0: "batch"} for name in output_names})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape logic are expected
            torch.onnx.export(
                _Positional(model, names).eval(), tuple(inputs[n] for n in names), tmp, input_names=names,
                output_names=output_names, dynamic_axes=axes, opset_version=opset, dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


class _Positional(nn.Module):
    """Positional-argument wrapper (the exporter passes inputs by position) returning plain tensors.

    Create it in eval mode: the exporter restores the wrapper's mode after tracing, recursively,
    and a fresh module's mode is training (that would turn dropout back on in the caller's model).
    """

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *args):
        out = self.model(**dict(zip(self.names, args)))
        if hasattr(out, "start_logits"):
            return out.start_logits, out.end_logits
        return out.logits


class OnnxClassifier:
    """An exported encoder run by onnxruntime, called like the PyTorch model (`out.logits`), so the
    same evaluation code scores the deployed file."""

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None, spinning: bool = True):
        self.session = onnx_session(path, threads=threads, spinning=spinning)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def parameters(self):  # evaluation asks for the device of the first parameter
        yield torch.zeros(())

    def eval(self):
        return self

    def __call__(self, **inputs):
        feed = {name: inputs[name].cpu().numpy() for name in self.input_names if name in inputs}
        if "token_type_ids" in self.input_names and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        outputs = self.session.run(None, feed)
        return SimpleNamespace(**{name: torch.from_numpy(value) for name, value in zip(self.output_names, outputs)})
