"""Full quantization: grid arithmetic, STE, EMA ranges, every matmul input quantized, save/load."""

import copy

import pytest
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

import leanformer
from leanformer.errors import ConfigError, LeanformerError, UnsupportedModelError
from leanformer.methods.quantization import (
    SUPPORTED_BITS,
    ActivationQuantizer,
    QuantizationConfig,
    WeightQuantizer,
    activation_quantizers,
    calibrate,
    grid,
    scale_and_zero_point,
    set_quantization_enabled,
)
from tiny_models import tiny_inputs, tiny_model


@settings(max_examples=40, deadline=None)
@given(bits=st.sampled_from([2, 4, 6, 8]), symmetric=st.booleans(), seed=st.integers(0, 10_000), shift=st.floats(-2, 2))
def test_quantize_dequantize_error_is_at_most_half_a_step_inside_the_range(bits, symmetric, seed, shift):
    x = torch.randn(64, generator=torch.Generator().manual_seed(seed)) + shift
    q = WeightQuantizer(bits, symmetric, per_row=False)
    scale, zero_point = q.qparams(x)
    err = (q(x) - x).abs().max().item()
    assert err <= scale.item() / 2 * (1 + 1e-5)
    lo, hi = grid(bits, symmetric)
    assert lo <= int(zero_point) <= hi


@pytest.mark.parametrize("symmetric", [False, True])
def test_zero_is_exactly_representable_for_any_range(symmetric):
    for lo, hi in [(-0.37, 1.91), (0.2, 3.0), (-5.0, -0.1), (-1e-3, 7.7)]:
        scale, zp = scale_and_zero_point(torch.tensor(lo), torch.tensor(hi), 4, symmetric)
        qmin, qmax = grid(4, symmetric)
        x = torch.tensor([0.0, lo, hi])
        out = torch.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)
        assert out[0].item() == 0.0


def test_straight_through_gradient_passes_inside_the_range_and_is_zero_outside():
    q = ActivationQuantizer(8, momentum=0.0)
    q.train()
    q(torch.tensor([-1.0, 2.0]))  # range [-1, 2]
    q.eval()
    x = torch.tensor([-3.0, -0.5, 0.0, 1.3, 2.0, 5.0], requires_grad=True)
    (q(x) * torch.arange(1.0, 7.0)).sum().backward()
    expected = torch.tensor([0.0, 2.0, 3.0, 4.0, 5.0, 0.0])  # clipped ends get no gradient
    assert torch.equal(x.grad, expected)


def test_ema_ranges_follow_the_formula():
    m = 0.9
    q = ActivationQuantizer(8, momentum=m)
    q.train()
    batches = [torch.randn(5, 7, generator=torch.Generator().manual_seed(i)) * (i + 1) for i in range(4)]
    lo, hi = batches[0].min(), batches[0].max()  # the first batch sets the range
    for b in batches[1:]:
        lo, hi = m * lo + (1 - m) * b.min(), m * hi + (1 - m) * b.max()
    for b in batches:
        q(b)
    assert torch.allclose(q.range_min, lo) and torch.allclose(q.range_max, hi)
    q.eval()  # frozen in eval
    q(torch.full((3,), 100.0))
    assert torch.allclose(q.range_max, hi)


def test_per_row_weight_ranges_are_per_output_row():
    w = torch.tensor([[0.1, -0.2, 0.3], [10.0, -20.0, 30.0]])
    scale, _ = WeightQuantizer(8, symmetric=True, per_row=True).qparams(w)
    assert torch.allclose(scale, torch.tensor([0.3, 30.0]) / 127)


# --- every matmul input is quantized -------------------------------------------------------------

MATMULS = {"mm", "bmm", "addmm", "baddbmm"}
FAKE_QUANT = {"fake_quantize_per_tensor_affine", "fake_quantize_per_channel_affine",
              "fake_quantize_per_tensor_affine_cachemask", "fake_quantize_per_channel_affine_cachemask",
              "_fake_quantize_per_tensor_affine_cachemask_tensor_qparams"}
# shape-only ops: their output carries the values of their input unchanged
VIEWS = {"view", "_unsafe_view", "t", "transpose", "permute", "expand", "reshape", "clone", "contiguous",
         "unsqueeze", "squeeze", "select", "slice", "detach", "alias", "as_strided", "_reshape_alias"}


class MatmulAudit(TorchDispatchMode):
    """Counts matmul kernels and whether each operand comes from a fake-quantize op (through views)."""

    def __init__(self):
        super().__init__()
        self.quantized: set[int] = set()
        self.matmuls: list[tuple[str, bool]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if name in FAKE_QUANT or (name in VIEWS and isinstance(args[0], torch.Tensor) and id(args[0]) in self.quantized):
            self.quantized.update(id(o) for o in outs if isinstance(o, torch.Tensor))
        if name in MATMULS:
            operands = args[1:3] if name in ("addmm", "baddbmm") else args[:2]
            self.matmuls.append((name, all(id(t) in self.quantized for t in operands)))
        return out


def _count(model, inputs):
    audit = MatmulAudit()
    with torch.no_grad(), audit:
        model(**inputs)
    return audit.matmuls


@pytest.mark.parametrize("model_type", ["bert", "marian"])
def test_every_matmul_has_both_inputs_quantized(model_type):
    float_model = tiny_model(model_type)
    float_model.set_attn_implementation("eager")  # attention as explicit matmuls, to count them
    inputs = tiny_inputs(float_model)
    float_matmuls = _count(float_model, inputs)
    layers = float_model.config.num_hidden_layers if model_type == "bert" else float_model.config.encoder_layers + 2 * float_model.config.decoder_layers
    assert sum(1 for n, _ in float_matmuls if n in ("bmm",)) >= 2 * layers  # QKᵀ and PV per attention block

    student = leanformer.compress(copy.deepcopy(float_model), QuantizationConfig())
    calibrate(student, [inputs])
    quant_matmuls = _count(student, inputs)
    assert len(quant_matmuls) == len(float_matmuls)
    unquantized = [n for n, ok in quant_matmuls if not ok]
    assert not unquantized, f"{len(unquantized)} of {len(quant_matmuls)} matmuls have a float input: {unquantized}"


def test_disabled_quantizers_give_the_float_model():
    model = tiny_model("bert")
    inputs = tiny_inputs(model)
    with torch.no_grad():
        ref = model(**inputs).logits
    student = leanformer.compress(copy.deepcopy(model), QuantizationConfig(weight_bits=4, activation_bits=4))
    calibrate(student, [inputs])
    set_quantization_enabled(student, False)
    with torch.no_grad():
        assert torch.allclose(student(**inputs).logits, ref, atol=1e-6)
    set_quantization_enabled(student, True)
    with torch.no_grad():
        assert not torch.allclose(student(**inputs).logits, ref, atol=1e-4)


def test_uncalibrated_model_says_what_to_do():
    student = leanformer.compress(tiny_model("bert"), QuantizationConfig())
    with pytest.raises(LeanformerError, match="calibrate"):
        student(**tiny_inputs(student))


@pytest.mark.parametrize("model_type", ["bert", "marian"])
def test_save_load_gives_identical_outputs(tmp_path, model_type):
    model = tiny_model(model_type)
    inputs = tiny_inputs(model)
    student = leanformer.compress(model, QuantizationConfig(weight_bits=6, activation_bits=8))
    calibrate(student, [inputs])
    leanformer.save(student, tmp_path / "q")
    loaded = leanformer.load(tmp_path / "q")
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, student(**inputs).logits)
    assert set(activation_quantizers(loaded)) == set(activation_quantizers(student))
    if model_type == "marian":  # the shared embedding and the LM head are still one tensor
        assert loaded.lm_head.weight is loaded.model.shared.weight


def test_bad_bits_and_unsupported_attention_are_clear_errors():
    with pytest.raises(ConfigError, match="weight_bits = 9 is not supported; choose one of 2, 3, 4, 5, 6, 7, 8"):
        QuantizationConfig(weight_bits=9)
    with pytest.raises(UnsupportedModelError, match="quantize_attention: false"):
        leanformer.compress(tiny_model("mpnet"), QuantizationConfig())
    student = leanformer.compress(tiny_model("mpnet"), QuantizationConfig(quantize_attention=False))
    assert activation_quantizers(student)


# --- int8 deployment through onnxruntime -----------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 4])
def test_int8_onnx_matches_the_fake_quant_model_within_one_step(tmp_path, bits):
    import onnx
    import onnxruntime as ort

    from leanformer.deploy.encoder import export_onnx
    from leanformer.measure import dummy_inputs
    from leanformer.methods.quantization import export_int8_onnx

    model = tiny_model("bert")
    student = leanformer.compress(copy.deepcopy(model), QuantizationConfig(weight_bits=bits, activation_bits=bits))
    calibrate(student, [dummy_inputs(student, 4, 12, seed=s) for s in range(3)])
    path = export_int8_onnx(student, tmp_path / "int8.onnx")
    graph = onnx.load(str(path)).graph
    # 8-bit weights are stored as uint8 (u8×u8 kernels, exact on every x86 CPU); 4-bit ones fit int8
    # without saturating a u8·s8 pair (|q| ≤ 63), so they keep the faster u8×s8 kernels
    stored = onnx.TensorProto.UINT8 if bits == 8 else onnx.TensorProto.INT8
    int8_weights = [i for i in graph.initializer if i.data_type == stored and len(i.dims) == 2]
    linears = [m for m in student.modules() if isinstance(m, torch.nn.Linear)]
    embeddings = [m for m in student.modules() if isinstance(m, torch.nn.Embedding)]
    assert len(int8_weights) == len(linears) + len(embeddings)

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = dummy_inputs(student, 3, 20, seed=7)  # not the export shape
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    with torch.no_grad():
        want = student(**inputs).logits.numpy()
    # one step of the classifier's input, propagated through its weight: the logit quantum
    head = student.classifier
    step = float(head.input_quantizer.qparams()[0])
    bound = step * head.weight_quantizer(head.weight).abs().sum(dim=1).max().item()
    assert abs(got - want).max() <= bound

    # stored tensors (weights, scales, zero points): a quarter of fp32 plus the per-row scales
    # (the file of a 32-wide toy model is mostly graph structure, so compare tensor bytes)
    export_onnx(model, tmp_path / "fp32.onnx")
    assert _tensor_bytes(tmp_path / "int8.onnx") < 0.4 * _tensor_bytes(tmp_path / "fp32.onnx")


def test_int8_graph_rewrites_are_exact_and_take_effect(tmp_path):
    import onnx
    import onnxruntime as ort

    from leanformer.deploy.encoder import export_onnx
    from leanformer.measure import dummy_inputs
    from leanformer.methods.quantization import export_int8_onnx, fold_weight_quantization, frozen_for_export

    student = leanformer.compress(tiny_model("bert"), QuantizationConfig())
    calibrate(student, [dummy_inputs(student, 4, 12, seed=s) for s in range(3)])
    # reference: the QDQ graph with int8 weights and nothing else rewritten
    with frozen_for_export(student), torch.no_grad():
        export_onnx(student, tmp_path / "qdq.onnx")
    proto = onnx.load(str(tmp_path / "qdq.onnx"))
    fold_weight_quantization(proto)
    onnx.save(proto, str(tmp_path / "reference.onnx"))
    plain = export_int8_onnx(student, tmp_path / "plain.onnx", optimize=False)
    fast = export_int8_onnx(student, tmp_path / "fast.onnx")

    inputs = {k: v.numpy() for k, v in dummy_inputs(student, 3, 20, seed=7).items()}
    run = lambda path: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, inputs)[0]  # noqa: E731
    want = run(tmp_path / "reference.onnx")
    assert np.abs(run(plain) - want).max() <= 1e-6
    assert np.abs(run(fast) - want).max() <= 1e-5

    def nodes(path):
        graph = onnx.load(str(path)).graph
        return graph, {n.output[0]: n for n in graph.node}

    graph, producer = nodes(plain)  # embedding lookups read int8 rows: no table is dequantized whole
    gathers = [n for n in graph.node if n.op_type == "Gather" and n.input[0] in {i.name for i in graph.initializer}]
    assert {n.input[0] for n in gathers} >= {i.name for i in graph.initializer if i.data_type in _EIGHT_BIT and len(i.dims) == 2 and "embeddings" in i.name}
    assert not any(n.op_type == "Gather" and producer.get(n.input[0], n).op_type == "DequantizeLinear" for n in graph.node)
    kept = {v.name for v in graph.input} | {v.name for v in graph.output}  # names: weights and graph I/O keep theirs, the rest are short
    assert not any(n.name for n in graph.node) and {v.name for v in graph.input} == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(len(o) <= 6 for n in graph.node for o in n.output if o not in kept)
    graph, producer = nodes(fast)  # integer matmuls carry their bias
    integer = [n for n in graph.node if n.op_type == "MatMulIntegerToFloat"]
    # Q, K, V, attention output and FFN output; the FFN input's bias goes into the fused BiasGelu
    assert integer and sum(len(n.input) == 7 for n in integer) >= len(student.bert.encoder.layer) * 5
    assert not any(n.op_type == "Add" and any(producer.get(i) in integer for i in n.input) and any(i in {x.name for x in graph.initializer} for i in n.input) for n in graph.node)


def test_int8_decoder_lm_head_runs_on_integer_kernels_and_stays_exact(tmp_path):
    """The tied LM head: one int8 copy of the table, no per-step dequantization, same logits."""
    import onnx
    import onnxruntime as ort

    from leanformer.methods.quantization import export_int8_seq2seq, fold_weight_quantization, frozen_for_export
    from leanformer.deploy.seq2seq import DECODER, export_seq2seq_onnx

    student = leanformer.compress(tiny_model("marian"), QuantizationConfig())
    calibrate(student, [tiny_inputs(student, seed=s) for s in range(3)])

    def fold_only(path):
        proto = onnx.load(str(path))
        fold_weight_quantization(proto)
        onnx.save(proto, str(path))

    with frozen_for_export(student), torch.no_grad():
        export_seq2seq_onnx(student, tmp_path / "reference", postprocess=fold_only)
    plain = export_int8_seq2seq(student, tmp_path / "plain", optimize=False) / DECODER
    fast = export_int8_seq2seq(student, tmp_path / "fast") / DECODER

    config, rng = student.config, np.random.default_rng(0)
    heads, head_dim = config.decoder_attention_heads, config.d_model // config.decoder_attention_heads
    b, s, t = 3, 9, 4
    session = lambda path: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # noqa: E731
    names = [i.name for i in session(plain).get_inputs()]
    values = [rng.integers(3, config.vocab_size, (b, 1)), rng.standard_normal((b, s, config.d_model)).astype(np.float32),
              np.ones((b, s), np.int64)]
    values += [rng.standard_normal((b, heads, t if n.startswith("past") else s, head_dim)).astype(np.float32) for n in names[3:]]
    inputs = dict(zip(names, values))
    want = session(tmp_path / "reference" / DECODER).run(None, inputs)[0]
    assert np.abs(session(plain).run(None, inputs)[0] - want).max() <= 1e-6
    got = session(fast).run(None, inputs)[0]
    assert np.abs(got - want).max() <= 1e-5

    # and the int8 decoder step is the fake-quant PyTorch step, within one logit quantum
    from leanformer.deploy.seq2seq import _DecoderStep

    with torch.no_grad():
        torch_logits = _DecoderStep(student, config.decoder_layers)(*(torch.from_numpy(v) for v in values))[0].numpy()
    head = student.lm_head
    bound = float(head.input_quantizer.qparams()[0]) * head.weight_quantizer(head.weight).abs().sum(dim=1).max().item()
    assert np.abs(got - torch_logits).max() <= bound

    graph = onnx.load(str(fast)).graph
    ops = [n.op_type for n in graph.node]
    assert "DequantizeLinear" not in ops and "Gemm" not in ops and "MatMul" not in ops
    tables = [i.dims for i in graph.initializer if i.data_type in _EIGHT_BIT and len(i.dims) == 2 and config.vocab_size in i.dims]
    assert tables == [[config.d_model, config.vocab_size]]  # stored once, transposed for the LM head


@pytest.mark.parametrize("kernels", ["any", "vnni"])
def test_int8_export_stays_exact_where_u8_s8_pairs_saturate(tmp_path, kernels):
    """Activations at the top of their uint8 grid times 8-bit weights at ±127: one pair of u8·s8
    products is 255·127·2 = 64770, past the int16 that onnxruntime adds them in on CPUs without VNNI
    (VPMADDUBSW). The default file ("any": uint8 weights) is exact on every CPU; the "vnni" file
    (int8 weights) only where the CPU sums in 32 bits, and on others this input shows it is not."""
    import onnxruntime as ort

    from leanformer.measure import dummy_inputs, int8_path
    from leanformer.methods.quantization import export_int8_onnx

    student = leanformer.compress(tiny_model("bert"), QuantizationConfig())
    calibrate(student, [dummy_inputs(student, 4, 12, seed=s) for s in range(3)])
    # the last FFN: its input at the top of its range, its weights at ±127, its output straight into
    # the residual sum and the float head (no later quantizer clips the difference away)
    ffn = student.bert.encoder.layer[-1]
    top = float(torch.nn.functional.gelu(torch.tensor(3.0)))
    with torch.no_grad():
        ffn.intermediate.dense.weight.zero_()
        ffn.intermediate.dense.bias.fill_(3.0)  # GELU(3) everywhere
        ffn.output.dense.input_quantizer.range_min.fill_(-top)
        ffn.output.dense.input_quantizer.range_max.fill_(top)
        signs = torch.tensor([1.0, -1.0]).repeat(ffn.output.dense.out_features // 2)[:, None]
        ffn.output.dense.weight.copy_(0.03 * signs.expand_as(ffn.output.dense.weight))  # rows of +127 and −127
    step = float(ffn.output.dense.input_quantizer.qparams()[0])
    assert torch.equal(ffn.output.dense.input_quantizer(torch.tensor([top])), torch.tensor([(255 - 128) * step]))  # q = 255 (zero point 128)
    inputs = dummy_inputs(student, 3, 20, seed=7)
    with torch.no_grad():
        want = student(**inputs).logits.numpy()
    head = student.classifier
    bound = float(head.input_quantizer.qparams()[0]) * head.weight_quantizer(head.weight).abs().sum(dim=1).max().item()  # one logit quantum

    path = export_int8_onnx(student, tmp_path / f"{kernels}.onnx", kernels=kernels)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    error = np.abs(got - want).max()
    if kernels == "any" or int8_path() in ("vnni", "amx"):
        assert error <= bound
    else:  # this CPU adds u8·s8 pairs in 16 bits: the constructed input does saturate them
        assert error > 5 * bound, (error, bound)  # measured on an AVX2 EPYC: 14× (the exact file: 1e-9)


def test_int8_storage_rule_keeps_every_grid_and_picks_the_container():
    """The export stores a grid in uint8 or int8 with its zero point moved along: same real values."""
    from leanformer.methods.quantization.int8_export import stored_grid

    scale, zero = torch.tensor(0.1), torch.tensor(0, dtype=torch.int32)
    for bits in SUPPORTED_BITS:
        for kernels in ("any", "vnni"):
            w = stored_grid(WeightQuantizer(bits, symmetric=True), scale, zero, kernels)
            signed = kernels == "vnni" or bits <= 7
            assert (w.c_min, w.c_max) == ((-128, 127) if signed else (0, 255))
            lo, hi = grid(bits, True)
            assert (w.q_min - int(w.zero_point), w.q_max - int(w.zero_point)) == (lo, hi)  # the same grid, shifted
            assert w.c_min <= w.q_min and w.q_max <= w.c_max
            for symmetric in (False, True):  # activations: always uint8, so every matmul of two activations is u8×u8
                a = stored_grid(ActivationQuantizer(bits, symmetric), scale, torch.tensor(3 if not symmetric else 0), kernels)
                assert (a.c_min, a.c_max) == (0, 255)
                assert (a.q_min - int(a.zero_point), a.q_max - int(a.zero_point)) == tuple(x - (3 if not symmetric else 0) for x in grid(bits, symmetric))
    with pytest.raises(LeanformerError, match="kernels must be one of any, vnni"):
        stored_grid(WeightQuantizer(8), scale, zero, "avx2")


_EIGHT_BIT = (3, 2)  # onnx.TensorProto.INT8, UINT8: the containers of stored integer weights


def _tensor_bytes(path) -> int:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    tensors = list(graph.initializer) + [n.attribute[0].t for n in graph.node if n.op_type == "Constant" and n.attribute[0].t.dims]
    return sum(numpy_helper.to_array(t).nbytes for t in tensors)


# --- end to end: QAT by distillation, post-training quantization, translation --------------------

def test_qat_student_and_post_training_baseline_from_the_pipeline(tmp_path):
    from leanformer.distill import DistillationConfig
    from leanformer.student import distil_student
    from leanformer.data import TaskConfig
    from leanformer.teacher import teacher_metrics
    from leanformer.training import TrainConfig
    from tiny_models import write_tiny_task

    write_tiny_task(tmp_path, rows=24)
    task = TaskConfig(task=str(tmp_path / "data.csv")).load()
    common = dict(batch_size=8, max_length=16, report_to="none", progress=False, save_steps=100)
    config = QuantizationConfig(weight_bits=4, activation_bits=8, calibration_batches=2)
    qat = distil_student(tmp_path / "teacher", config, task, TrainConfig(epochs=1, **common), DistillationConfig(), tmp_path / "qat")
    ptq = distil_student(tmp_path / "teacher", config, task, TrainConfig(epochs=0, **common), DistillationConfig(), tmp_path / "ptq")
    teacher = leanformer.load(tmp_path / "teacher")
    trained, calibrated = leanformer.load(qat), leanformer.load(ptq)
    for student in (trained, calibrated):
        assert all(int(q.observed) > 0 for q in activation_quantizers(student).values())
    # PTQ leaves the weights alone; QAT moved them
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(calibrated.state_dict()[name], teacher.state_dict()[name])
    assert not torch.equal(trained.state_dict()[name], teacher.state_dict()[name])
    assert "accuracy" in teacher_metrics(qat)["metrics"]["test"]

    # benchmarked as deployed: the quantized student runs as int8 ONNX, the teacher in PyTorch
    from leanformer.benchmark import Candidate, benchmark

    rows = benchmark(Candidate("teacher", tmp_path / "teacher"), [Candidate("ptq", ptq)], task, seq_len=16, batch_sizes=(1, 2),
                     repeats=1, warmup=1, max_length=16, progress=False)
    assert [r.extra["runtime"] for r in rows] == ["pytorch", "onnxruntime int8"]
    assert 0 <= rows[1].metric <= 100 and rows[1].latency_b1_ms > 0


@pytest.mark.slow  # trains a translation teacher from scratch, then its student (~25 s)
def test_translation_teacher_from_scratch_and_its_quantized_student(tmp_path, monkeypatch):
    from leanformer.distill import DistillationConfig
    from leanformer.student import distil_student
    from leanformer.data import TaskConfig
    from leanformer.teacher import FinetuneConfig, finetune, teacher_metrics
    from tiny_models import write_tiny_translation_task

    monkeypatch.setenv("LEANFORMER_CACHE", str(tmp_path / "cache"))
    task_config, train, size = write_tiny_translation_task(tmp_path)
    teacher = finetune(FinetuneConfig(model="scratch"), task_config, train, scratch=size)
    record = teacher_metrics(teacher)
    assert set(record["metrics"]) == {"validation", "test", "test_beam4"} and "bleu" in record["metrics"]["test"]
    assert finetune(FinetuneConfig(model="scratch"), task_config, train, scratch=size) == teacher  # cached

    student = distil_student(teacher, QuantizationConfig(calibration_batches=2), task_config.load(), train, DistillationConfig(), tmp_path / "q")
    loaded = leanformer.load(student)

    # sequence-level KD: the targets become the teacher's own greedy translations
    from leanformer.student import teacher_translations

    task = task_config.load()
    model = leanformer.load(teacher)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(teacher)
    replaced = teacher_translations(model, tokenizer, task, train)
    first = tokenizer(task.splits["train"]["source"][:1], return_tensors="pt")
    expected = tokenizer.batch_decode(model.generate(**first, num_beams=1, do_sample=False, max_new_tokens=train.max_length), skip_special_tokens=True)
    assert replaced["target"][0] == expected[0] and replaced["source"] == task.splits["train"]["source"]
    distil_student(teacher, QuantizationConfig(calibration_batches=2), task, train, DistillationConfig(sequence_level=True), tmp_path / "seq")
    assert type(loaded).__name__ == "MarianMTModel" and activation_quantizers(loaded)
    assert "bleu" in teacher_metrics(student)["metrics"]["test"]

    # the benchmark scores the deployed form: the ONNX greedy loop gives the PyTorch model's BLEU exactly
    from leanformer.evaluation import evaluate_model
    from leanformer.deploy.seq2seq import OnnxSeq2Seq, export_seq2seq_onnx

    onnx_model = OnnxSeq2Seq(export_seq2seq_onnx(model, tmp_path / "onnx"))
    assert evaluate_model(onnx_model, tokenizer, task, "test", max_length=12, progress=False) == evaluate_model(
        model, tokenizer, task, "test", max_length=12, progress=False)

    with pytest.raises(ConfigError, match="translation models only"):
        finetune(FinetuneConfig(model="scratch"), TaskConfig(task=str(tmp_path / "pairs.jsonl"), kind="classification", text_columns=["source"], label_column="target"), train)


def test_too_large_vocabulary_is_a_clear_error(tmp_path):
    from leanformer.translation_teacher import train_tokenizer

    with pytest.raises(ConfigError, match=r"vocab_size 5000 is more than the training text supports \(at most \d+\)"):
        train_tokenizer(["a small text"] * 3, ["un petit texte"] * 3, 5000, tmp_path)


def test_cli_exports_a_quantized_student_as_int8(tmp_path, capsys):
    import onnx

    from leanformer.cli import main

    model = tiny_model("bert")
    student = leanformer.compress(model, QuantizationConfig())
    calibrate(student, [tiny_inputs(student)])
    leanformer.save(student, tmp_path / "q")
    assert main(["export", "--model", str(tmp_path / "q"), "--output", str(tmp_path / "q.onnx")]) == 0
    printed = capsys.readouterr()
    assert printed.out == f"{tmp_path / 'q.onnx'}\n" and "runs on onnxruntime int8" in printed.err
    graph = onnx.load(str(tmp_path / "q.onnx")).graph
    assert any(i.data_type in _EIGHT_BIT and len(i.dims) == 2 for i in graph.initializer)
    assert any(n.op_type == "MatMulIntegerToFloat" for n in graph.node)  # onnxruntime's int8 kernels, stored
    # --portable: standard QDQ operators only, for runtimes other than onnxruntime
    assert main(["export", "--model", str(tmp_path / "q"), "--output", str(tmp_path / "p.onnx"), "--portable"]) == 0
    graph = onnx.load(str(tmp_path / "p.onnx")).graph
    assert {n.domain for n in graph.node} <= {"", "ai.onnx"} and any(n.op_type == "DequantizeLinear" for n in graph.node)
    # --int8_kernels: uint8 weights by default (exact on every x86 CPU), int8 ones for VNNI CPUs on request
    weight_types = lambda path: {i.data_type for i in onnx.load(str(path)).graph.initializer if len(i.dims) == 2 and i.data_type in _EIGHT_BIT}  # noqa: E731
    assert weight_types(tmp_path / "q.onnx") == {onnx.TensorProto.UINT8}
    assert main(["export", "--model", str(tmp_path / "q"), "--output", str(tmp_path / "v.onnx"), "--int8_kernels", "vnni"]) == 0
    assert weight_types(tmp_path / "v.onnx") == {onnx.TensorProto.INT8}
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--model", str(tmp_path / "q"), "--output", str(tmp_path / "w.onnx"), "--int8_kernels", "avx2"])
    assert exit_info.value.code == 2 and not (tmp_path / "w.onnx").exists()


def test_quantization_switches_on_at_its_start_step_and_tracks_ranges_before():
    from types import SimpleNamespace

    from leanformer.methods.quantization import QuantizationStartCallback, quantization_training_extras

    model = tiny_model("bert")
    inputs = tiny_inputs(model)
    with torch.no_grad():
        reference = model(**inputs).logits
    config = QuantizationConfig(weight_bits=4, activation_bits=4, start_step=3)
    student = leanformer.compress(copy.deepcopy(model), config)
    (callback,) = quantization_training_extras(student, config).callbacks
    assert isinstance(callback, QuantizationStartCallback)
    for step, quantized in [(0, False), (2, False), (3, True), (7, True)]:
        callback.on_step_begin(None, SimpleNamespace(global_step=step), None)
        student.train()
        with torch.no_grad():
            out = student(**inputs).logits  # training mode: ranges observed at every step
        student.eval()
        assert torch.allclose(out, reference, atol=1e-6) != quantized
    assert all(int(q.observed) == 4 for q in activation_quantizers(student).values() if not q.fixed)  # softmax: fixed [0, 1]
    assert quantization_training_extras(student, QuantizationConfig()).callbacks == []  # start at 0: nothing to switch
