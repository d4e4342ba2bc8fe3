"""Encoder-decoder ONNX export with a key/value cache: the greedy loop in onnxruntime reproduces
transformers' generate(), in fp32 exactly and in int8 within a logit step."""

import copy

import numpy as np
import pytest
import torch

import leanformer
from leanformer.errors import LeanformerError
from leanformer.methods.quantization import QuantizationConfig, calibrate, export_int8_seq2seq
from leanformer.deploy.seq2seq import OnnxSeq2Seq, export_seq2seq_onnx
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
    past = [np.zeros((4, h, 0, m["head_dim"]), np.float32) for h in m["self_attention_heads"] for _ in ("key", "value")]
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


def _marian(vocab_size=256, d_model=32, layers=2, heads=4, ffn=64):
    import transformers

    config = transformers.MarianConfig(
        vocab_size=vocab_size, d_model=d_model, encoder_layers=layers, decoder_layers=layers, encoder_attention_heads=heads,
        decoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn, pad_token_id=2, eos_token_id=1,
        decoder_start_token_id=2, forced_eos_token_id=1, max_position_embeddings=512)
    torch.manual_seed(0)
    return transformers.MarianMTModel(config).eval()


@pytest.mark.parametrize("int8", [False, True])
def test_the_tables_both_graphs_hold_are_stored_once(tmp_path, int8):
    """Token table and sinusoidal positions: one copy in shared.data, read by both graphs."""
    import onnx

    from leanformer.deploy.seq2seq import DECODER, ENCODER, SHARED

    model = _marian()
    if int8:
        model = leanformer.compress(model, QuantizationConfig())
        calibrate(model, [tiny_inputs(model, batch=3, seq=9)])
        directory = export_int8_seq2seq(model, tmp_path / "onnx")
    else:
        directory = export_seq2seq_onnx(model, tmp_path / "onnx")
    graphs = [onnx.load(str(directory / name), load_external_data=False).graph for name in (ENCODER, DECODER)]
    external = [{(e.key, e.value) for i in g.initializer if i.data_location == onnx.TensorProto.EXTERNAL for e in i.external_data} for g in graphs]
    table = model.config.vocab_size * model.config.d_model * (1 if int8 else 4)
    positions = 512 * model.config.d_model * 4  # float sinusoids, the same in both graphs
    for g in graphs:
        shared = [i for i in g.initializer if i.data_location == onnx.TensorProto.EXTERNAL]
        lengths = sorted(int(dict((e.key, e.value) for e in i.external_data)["length"]) for i in shared)
        assert table in lengths and positions in lengths
    assert external[0] & external[1]  # the same places in the same file
    assert (directory / SHARED).stat().st_size < table + positions + 2 * 4096  # once, plus alignment
    inputs = tiny_inputs(model, batch=2, seq=7, seed=4)
    got = OnnxSeq2Seq(directory).generate(inputs["input_ids"], inputs["attention_mask"], max_new_tokens=5)
    if not int8:
        with torch.no_grad():
            want = model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], max_new_tokens=5, num_beams=1, do_sample=False)
        assert torch.equal(got, want)


@pytest.mark.slow
def test_int8_translation_pair_is_over_3_5x_smaller_than_its_checkpoint(tmp_path):
    """The default scratch translation model (Bible EN→FR teacher shape: 7.8M parameters): sizes depend
    on shapes only, so an untrained copy measures what the trained one ships."""
    from leanformer.translation_teacher import ScratchTranslationConfig

    c = ScratchTranslationConfig()
    model = _marian(c.vocab_size, c.d_model, c.encoder_layers, c.attention_heads, c.ffn_dim)
    model.save_pretrained(tmp_path / "fp32")
    checkpoint = (tmp_path / "fp32" / "model.safetensors").stat().st_size
    student = leanformer.compress(model, QuantizationConfig())
    calibrate(student, [tiny_inputs(student, batch=2, seq=9)])
    directory = export_int8_seq2seq(student, tmp_path / "int8")
    deployed = sum(f.stat().st_size for f in directory.iterdir())
    assert checkpoint / deployed >= 3.5  # measured: 30.36 MB / 8.36 MB = 3.63×
