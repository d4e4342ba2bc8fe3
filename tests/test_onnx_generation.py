"""Encoder-decoder ONNX export with a key/value cache: the greedy loop in onnxruntime reproduces
transformers' generate(), in fp32 exactly and in int8 within a logit step."""

import copy

import numpy as np
import pytest
import torch

import leanformer
from leanformer.errors import LeanformerError
from leanformer.methods.quantization import QuantizationConfig, calibrate, export_int8_seq2seq
from leanformer.onnx_generation import OnnxSeq2Seq, export_seq2seq_onnx
from tiny_models import tiny_inputs, tiny_model


@pytest.mark.parametrize("model_type", ["marian", "bart"])
def test_fp32_onnx_greedy_generation_equals_transformers_generate(tmp_path, model_type):
    model = tiny_model(model_type)
    export_seq2seq_onnx(model, tmp_path / "onnx")
    onnx_model = OnnxSeq2Seq(tmp_path / "onnx")
    inputs = tiny_inputs(model, batch=4, seq=13, seed=3)  # not the export shapes; one row padded
    with torch.no_grad():
        want = model.generate(**{k: inputs[k] for k in ("input_ids", "attention_mask")}, max_new_tokens=9, num_beams=1, do_sample=False)
    got = onnx_model.generate(inputs["input_ids"], inputs["attention_mask"], max_new_tokens=9)
    assert torch.equal(got, want)


def test_int8_decoder_step_matches_the_fake_quant_model_within_one_logit_step(tmp_path):
    model = tiny_model("marian")
    student = leanformer.compress(copy.deepcopy(model), QuantizationConfig())
    inputs = tiny_inputs(student, batch=4, seq=12, seed=2)
    calibrate(student, [inputs])
    export_int8_seq2seq(student, tmp_path / "int8")
    onnx_model = OnnxSeq2Seq(tmp_path / "int8")

    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    states, *cross = onnx_model.encoder.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    m = onnx_model.meta
    past = [np.zeros((4, m["heads"], 0, m["head_dim"]), np.float32) for _ in range(2 * m["layers"])]
    start = np.full((4, 1), m["decoder_start_token_id"], np.int64)
    names = [i.name for i in onnx_model.decoder.get_inputs()]
    got = onnx_model.decoder.run(None, dict(zip(names, [start, states, mask.numpy(), *past, *cross])))[0]
    with torch.no_grad():
        want = student(input_ids=ids, attention_mask=mask, decoder_input_ids=torch.from_numpy(start)).logits[:, -1].numpy()
    head = student.lm_head
    step = float(head.input_quantizer.qparams()[0]) * head.weight_quantizer(head.weight).abs().sum(dim=1).max().item()
    assert np.abs(got - want).max() <= step
    assert onnx_model.generate(ids, mask, max_new_tokens=6).shape[0] == 4


def test_encoder_only_models_are_refused_with_a_pointer():
    with pytest.raises(LeanformerError, match="export_onnx"):
        export_seq2seq_onnx(tiny_model("bert"), "unused")
