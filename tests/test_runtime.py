"""The deployment runtime: raw text in, labels / answers / translations out, from exported ONNX files,
without torch. Each answer is checked against the same graph driven by transformers' tokenizers,
or against the PyTorch model."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers

import leanformer
from leanformer.methods.quantization import QuantizationConfig, calibrate
from tiny_models import WORDS, tiny_config, tiny_inputs, tiny_model, tiny_tokenizer

TEXTS = ["w1 w2 w3", "w40 w41 w42 w43 w44 w45 w46 w47", "w9 unknownword w90", "w5"]


def _in_a_process_without_torch(code: str) -> dict:
    """Run `code` (which sets `result`) in a fresh interpreter; fail if torch or transformers got imported."""
    wrapped = f"import json, sys\n{code}\nprint(json.dumps({{'result': result, 'heavy': sorted(m for m in ('torch', 'transformers') if m in sys.modules)}}))"
    out = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["heavy"] == [], answer["heavy"]
    return answer["result"]


def test_an_int8_classifier_answers_labels_without_torch(tmp_path):
    tokenizer = tiny_tokenizer()
    config = tiny_config("bert", num_labels=3)
    config.id2label, config.label2id = {0: "neg", 1: "neutral", 2: "pos"}, {"neg": 0, "neutral": 1, "pos": 2}
    torch.manual_seed(0)
    teacher = transformers.BertForSequenceClassification(config).eval()
    student = leanformer.compress(teacher, QuantizationConfig())
    calibrate(student, [tiny_inputs(student)])
    leanformer.save(student, tmp_path / "student", tokenizer)
    leanformer.export(student, tmp_path / "student" / "model.onnx")

    got = _in_a_process_without_torch(f"from leanformer import runtime\nresult = runtime.load({str(tmp_path / 'student')!r})({TEXTS!r})")
    # the same int8 graph, fed by transformers' tokenizer
    from leanformer.deploy import OnnxClassifier

    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    probabilities = torch.softmax(OnnxClassifier(tmp_path / "student" / "model.onnx")(**batch).logits, -1)
    assert [g["label"] for g in got] == [config.id2label[int(i)] for i in probabilities.argmax(-1)]
    np.testing.assert_allclose([g["score"] for g in got], probabilities.max(-1).values.numpy(), atol=1e-5)


def test_sentence_pairs_and_regression(tmp_path):
    tokenizer = tiny_tokenizer()
    model = tiny_model("bert", num_labels=1)
    leanformer.save(model, tmp_path / "m", tokenizer)
    leanformer.export(model, tmp_path / "m" / "model.onnx")
    pairs = ["w7 w8", "w60", "w61 w62 w63", "w2"]
    got = _in_a_process_without_torch(f"from leanformer import runtime\nresult = runtime.load({str(tmp_path / 'm')!r})({TEXTS!r}, {pairs!r})")
    with torch.no_grad():
        expected = model(**tokenizer(TEXTS, pairs, padding=True, return_tensors="pt")).logits[:, 0]
    np.testing.assert_allclose([g["score"] for g in got], expected.numpy(), atol=1e-5)


def test_a_question_answerer_returns_the_best_span_of_the_context(tmp_path):
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    model = transformers.BertForQuestionAnswering(tiny_config("bert")).eval()
    leanformer.save(model, tmp_path / "qa", tokenizer)
    leanformer.export(model, tmp_path / "qa" / "model.onnx")
    question, context = "w3 w4", " ".join(WORDS[10:40])
    got = _in_a_process_without_torch(
        f"from leanformer import runtime\nresult = runtime.load({str(tmp_path / 'qa')!r})({question!r}, {context!r})")
    # independently: every (start, end) in the context, end - start < 30, from the PyTorch logits
    encoding = tokenizer(question, context, return_offsets_mapping=True, return_tensors="pt")
    offsets = encoding.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        out = model(**encoding)
    context_tokens = [i for i, s in enumerate(encoding.sequence_ids(0)) if s == 1]
    best = max(((out.start_logits[0, i] + out.end_logits[0, j]).item(), i, j)
               for i in context_tokens for j in context_tokens if i <= j < i + 30)
    start, end = offsets[best[1]][0], offsets[best[2]][1]
    assert (got["start"], got["end"], got["answer"]) == (start, end, context[start:end])
    assert 0 < got["score"] <= 1


@pytest.mark.parametrize("int8", [False, True])
def test_a_translator_returns_what_the_exported_pair_generates(tmp_path, int8):
    from leanformer.deploy import OnnxSeq2Seq
    from leanformer.translation_teacher import train_tokenizer

    words = "in the beginning god created the heaven and the earth and the earth was without form and void".split()
    sources = [" ".join(words[i:i + 6]) for i in range(12)] * 4
    tokenizer = train_tokenizer(sources, [" ".join(reversed(s.split())) for s in sources], 30, tmp_path / "spm")
    config = transformers.MarianConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id,
        forced_eos_token_id=tokenizer.eos_token_id, max_position_embeddings=64)
    torch.manual_seed(0)
    model = transformers.MarianMTModel(config).eval()
    if int8:
        model = leanformer.compress(model, QuantizationConfig())
        calibrate(model, [tiny_inputs(model)])
    leanformer.save(model, tmp_path / "mt", tokenizer)
    leanformer.export(model, tmp_path / "mt" / "onnx")
    texts = ["in the beginning", "the earth was without form and void", "god created zebras"]
    got = _in_a_process_without_torch(
        f"from leanformer import runtime\nresult = runtime.load({str(tmp_path / 'mt')!r})({texts!r}, max_new_tokens=12)")
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    ids = OnnxSeq2Seq(tmp_path / "mt" / "onnx").generate(batch.input_ids, batch.attention_mask, max_new_tokens=12)
    assert got == tokenizer.batch_decode(ids, skip_special_tokens=True) and any(got)


def test_a_directory_without_an_export_names_the_command(tmp_path):
    from leanformer import runtime
    from leanformer.errors import ConfigError

    leanformer.save(tiny_model("bert"), tmp_path / "m", tiny_tokenizer())
    with pytest.raises(ConfigError, match=r"no exported model at .*model.onnx'.*leanformer export --model .* --output .*model.onnx"):
        runtime.load(tmp_path / "m")
    with pytest.raises(ConfigError, match="is not a saved model"):
        runtime.load(tmp_path)


@pytest.mark.parametrize("head", ["classification", "qa"])
def test_the_model_cards_deploy_lines_run_as_written(tmp_path, head):
    """The card's export command and its runtime lines, executed with THIS_DIRECTORY filled in."""
    import re

    from leanformer.cli import main
    from leanformer.model_card import model_card

    torch.manual_seed(0)
    model = tiny_model("bert") if head == "classification" else transformers.BertForQuestionAnswering(tiny_config("bert")).eval()
    leanformer.save(model, tmp_path / "m", tiny_tokenizer())
    card = model_card(model, {}).replace("THIS_DIRECTORY", str(tmp_path / "m"))
    deploy = card[card.index("## Deploy"):]
    command = re.search(r"```bash\n(.*?)\n```", deploy, re.S).group(1).split("#")[0].split()
    assert command[0] == "leanformer" and main(command[1:]) == 0
    *setup, call = re.search(r"```python\n(.*?)\n```", deploy, re.S).group(1).splitlines()
    result = _in_a_process_without_torch("\n".join(setup) + "\nresult = " + call.split("   #")[0])
    if head == "classification":
        assert len(result) == 2 and {r["label"] for r in result} <= set(model.config.id2label.values())
    else:
        assert set(result) == {"answer", "score", "start", "end"}
