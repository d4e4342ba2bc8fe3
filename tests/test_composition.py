"""Methods composed: Kronecker then quantization, pruning then quantization. Every matmul input of
the composed model is quantized, it saves and loads exactly, and exports to int8 ONNX."""

import copy

import numpy as np
import onnxruntime as ort
import pytest
import torch

import leanformer
from leanformer.measure import dummy_inputs
from leanformer.methods.kronecker import KroneckerConfig, KroneckerLinear
from leanformer.api import finalize_stage
from leanformer.methods.pruning import BlockPruningConfig, find_state, finish_state
from leanformer.methods.quantization import QuantizationConfig, calibrate, export_int8_onnx
from test_quantization import _count
from tiny_models import tiny_inputs, tiny_model

TINY_KRON = KroneckerConfig(attention_a=[4, 2], ffn_a=[8, 4], embedding_n=4, forward_mode="factored")


def _kronecker_then_int8():
    model = tiny_model("bert")
    model.set_attn_implementation("eager")
    kron = leanformer.compress(model, TINY_KRON)
    return kron, leanformer.compress(copy.deepcopy(kron), QuantizationConfig())


def _pruned_then_int8():
    model = leanformer.compress(tiny_model("bert", seed=2), BlockPruningConfig.struct())
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("mask_scores"):
                p.copy_(torch.randn(p.shape, generator=g) * 3)
    finish_state(find_state(model), BlockPruningConfig.struct())
    pruned = finalize_stage(model, BlockPruningConfig.struct())
    pruned.set_attn_implementation("eager")
    return pruned, leanformer.compress(copy.deepcopy(pruned), QuantizationConfig())


@pytest.mark.parametrize("build", [_kronecker_then_int8, _pruned_then_int8], ids=["kronecker", "pruning"])
def test_composed_model_quantizes_every_matmul_and_round_trips(tmp_path, build):
    float_model, student = build()
    inputs = tiny_inputs(student, batch=3, seq=12)
    calibrate(student, [inputs])
    assert [s["method"] for s in leanformer.recipe_of(student)][-1] == "quantization"
    float_matmuls, quant_matmuls = _count(float_model, inputs), _count(student, inputs)
    assert len(quant_matmuls) == len(float_matmuls)
    assert all(ok for _, ok in quant_matmuls), [n for n, ok in quant_matmuls if not ok]

    leanformer.save(student, tmp_path / "s")
    loaded = leanformer.load(tmp_path / "s")
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, student(**inputs).logits)

    path = export_int8_onnx(student, tmp_path / "s.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = dummy_inputs(student, 2, 10, seed=4)
    got = session.run(None, {k: v.numpy() for k, v in x.items()})[0]
    with torch.no_grad():
        want = student(**x).logits.numpy()
    head = student.classifier
    step = float(head.input_quantizer.qparams()[0]) * head.weight_quantizer(head.weight).abs().sum(dim=1).max().item()
    assert np.abs(got - want).max() <= step


def test_kronecker_factors_are_quantized_not_materialised():
    _, student = _kronecker_then_int8()
    layers = [m for m in student.modules() if isinstance(m, KroneckerLinear)]
    assert layers and all(hasattr(m, "between_quantizer") and m.uses_factored_path() for m in layers)


def test_quantized_kronecker_measures_only_plans_with_the_same_quantized_activations(monkeypatch):
    from leanformer.methods.kronecker import layers as kron_layers
    from leanformer.methods.quantization.layers import QuantizedKroneckerLinear

    monkeypatch.setattr(kron_layers, "_MEASURED_PLANS", {})
    torch.manual_seed(0)
    layer = QuantizedKroneckerLinear(KroneckerLinear(32, 16, (4, 2)), QuantizationConfig())
    assert layer.forward_mode == "auto" and layer.rule_plan() == "b_first/tokens"
    assert layer.candidate_plans() == ("b_first/tokens", "b_first/rows")  # the between-activation is the same tensor
    x = torch.randn(6, 32)
    layer.train()(x).sum().backward()  # train mode: the EMA ranges move once per call, so no measuring
    ranges = [b.clone() for b in layer.between_quantizer.buffers()]
    assert kron_layers._MEASURED_PLANS == {}
    with torch.no_grad():
        got = layer.eval()(x)
    assert set(kron_layers._MEASURED_PLANS.values()) <= set(layer.candidate_plans())
    assert all(torch.equal(a, b) for a, b in zip(ranges, layer.between_quantizer.buffers()))
    with torch.no_grad():
        torch.testing.assert_close(got, layer.run_plan(x, "b_first/tokens"), rtol=1e-5, atol=1e-5)


def test_int8_kronecker_factors_run_on_integer_kernels_and_stay_exact(tmp_path):
    """Each factor reaches its matmul through views (term slice, transpose); they are folded into
    the int8 weight, with the same result, so onnxruntime can fuse the product into an integer kernel."""
    import onnx

    from leanformer.deploy.encoder import export_onnx
    from leanformer.methods.quantization import fold_weight_quantization, fold_weight_views, frozen_for_export

    _, student = _kronecker_then_int8()
    calibrate(student, [tiny_inputs(student, batch=3, seq=12)])
    with frozen_for_export(student), torch.no_grad():
        export_onnx(student, tmp_path / "qdq.onnx")
    proto = onnx.load(str(tmp_path / "qdq.onnx"))
    fold_weight_quantization(proto)
    onnx.save(proto, str(tmp_path / "reference.onnx"))
    assert fold_weight_views(proto) == 2 * 6 * len(student.bert.encoder.layer)  # A and B of Q, K, V, output, W1, W2
    onnx.save(proto, str(tmp_path / "folded.onnx"))

    x = {k: v.numpy() for k, v in dummy_inputs(student, 3, 11, seed=5).items()}
    run = lambda path: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, x)[0]  # noqa: E731
    assert np.array_equal(run(tmp_path / "folded.onnx"), run(tmp_path / "reference.onnx"))

    # onnxruntime: every B product (the large one) on integer kernels; the A product (A on the left,
    # per-row ranges: not fused by its QDQ rules) multiplies the dequantized int8 operands
    fast = onnx.load(str(export_int8_onnx(student, tmp_path / "fast.onnx"))).graph
    producer = {o: n for n in fast.node for o in n.output}
    ops = [n.op_type for n in fast.node]
    layers = len(student.bert.encoder.layer)
    assert ops.count("MatMulIntegerToFloat") + ops.count("QLinearMatMul") >= (6 + 2) * layers and "FusedMatMul" not in ops
    float_matmuls = [n for n in fast.node if n.op_type == "MatMul"]
    assert len(float_matmuls) <= 6 * layers
    assert all(producer[i].op_type == "DequantizeLinear" for n in float_matmuls for i in n.input)
