"""ONNX export runs in onnxruntime with the same outputs, dense and Kronecker-factored."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

import leanformer
from leanformer.deploy.encoder import export_onnx
from leanformer.measure import dummy_inputs
from leanformer.methods.kronecker import KroneckerConfig, KroneckerLinear
from tiny_models import tiny_model


@pytest.mark.parametrize("compressed", [False, True])
def test_onnx_outputs_match_pytorch_at_other_batch_and_length(tmp_path, compressed):
    model = tiny_model("bert")
    if compressed:
        model = leanformer.compress(model, KroneckerConfig(attention_a=[4, 2], ffn_a=[8, 4], embedding_n=4, forward_mode="factored"))
        assert any(isinstance(m, KroneckerLinear) for m in model.modules())
    path = export_onnx(model, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path))
    inputs = dummy_inputs(model, 3, 23, seed=5)  # not the export shape: axes are dynamic
    inputs["attention_mask"][0, 15:] = 0
    onnx_logits = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    with torch.no_grad():
        torch_logits = model(**inputs).logits.numpy()
    np.testing.assert_allclose(onnx_logits, torch_logits, rtol=1e-4, atol=1e-5)
    assert not list(tmp_path.glob(".model.onnx.*"))  # no temporary file left


def test_export_from_the_command_line(tmp_path):
    from leanformer.cli import main

    leanformer.save(tiny_model("bert"), tmp_path / "m")
    assert main(["export", "--model", str(tmp_path / "m"), "--output", str(tmp_path / "m.onnx")]) == 0
    assert (tmp_path / "m.onnx").stat().st_size > 10_000


def test_export_leaves_the_model_in_eval_mode(tmp_path):
    # the exporter restores its wrapper's mode recursively; a training-mode wrapper would turn
    # dropout (and quantizer range tracking) back on in the caller's model
    from leanformer.deploy.seq2seq import export_seq2seq_onnx

    model = tiny_model("bert", dropout=0.1)
    export_onnx(model, tmp_path / "m.onnx")
    assert not any(m.training for m in model.modules())
    seq2seq = tiny_model("marian", dropout=0.1)
    export_seq2seq_onnx(seq2seq, tmp_path / "mt")
    assert not any(m.training for m in seq2seq.modules())
