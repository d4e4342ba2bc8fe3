"""One contract for every registered method × every family in the architecture tables × the shipped
compositions, on tiny random models (PEFT's testing_common pattern).

What a method or family supports is read from them, not chosen here: `Method.unsupported(spec)`
says which pairs are refused (and the refusal must be that sentence), `Method.tiny_config(spec)`
gives the configuration, the compositions are the method sequences of the shipped recipes/*.yaml.
A new method folder or table entry is tested by this file without an edit to it (a new family
needs its tiny config in tiny_models.py).
"""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

import leanformer
from leanformer.api import finalize_stage
from leanformer.architectures import ARCHITECTURES
from leanformer.errors import ConfigError
from leanformer.recipe import Recipe, Stage
from leanformer.registry import method_by_name, registered_methods
from tiny_models import tiny_inputs, tiny_model

RECIPES = Path(__file__).parent.parent / "recipes"
METHODS = [m.name for m in registered_methods()]
FAMILIES = sorted(ARCHITECTURES)
COMPOSITIONS = sorted({tuple(s["method"] for s in yaml.safe_load(p.read_text())["stages"])
                       for p in RECIPES.glob("*.yaml") if "stages" in yaml.safe_load(p.read_text()) and len(yaml.safe_load(p.read_text())["stages"]) > 1})
SEQUENCES = [(m,) for m in METHODS] + COMPOSITIONS


def _refusal(sequence, family) -> str | None:
    spec = ARCHITECTURES[family]
    return next((r for r in (method_by_name(m).unsupported(spec) for m in sequence) if r), None)


def _supported(sequences):
    return [pytest.param(seq, fam, id=f"{'+'.join(seq)}-{fam}") for seq in sequences for fam in FAMILIES if not _refusal(seq, fam)]


def _refused(sequences):
    return [pytest.param(seq, fam, id=f"{'+'.join(seq)}-{fam}") for seq in sequences for fam in FAMILIES if _refusal(seq, fam)]


def _recipe(sequence, family) -> Recipe:
    spec = ARCHITECTURES[family]
    return Recipe([Stage(m, method_by_name(m).tiny_config(spec)) for m in sequence])


def _outputs(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def _student(sequence, family):
    """The untrained student of `sequence`, through the lifecycle the spine runs (calibrate, training
    extras, finalize): each stage compresses the previous stage's finalized student."""
    teacher = tiny_model(family)
    inputs = tiny_inputs(teacher)
    batch = {**inputs, "labels": inputs["decoder_input_ids"]} if "decoder_input_ids" in inputs else inputs
    student = teacher
    for stage in _recipe(sequence, family).stages:
        method = method_by_name(stage.method)
        student = leanformer.compress(student, stage.config)
        method.calibrate(student, stage.config, iter([batch]))
        method.training_extras(student, stage.config)
        student = finalize_stage(student, stage.config).eval()
    return teacher, student, inputs


def test_the_contract_covers_every_method_family_and_composition():
    folders = [p for p in (Path(leanformer.__file__).parent / "methods").iterdir() if (p / "__init__.py").is_file()]
    assert len(METHODS) == len(folders)  # every method folder registers itself, found by listing the folder
    assert set(METHODS) >= {"kronecker", "pruning", "quantization"}
    assert {("pruning", "quantization"), ("kronecker", "quantization")} <= set(COMPOSITIONS)
    for family in FAMILIES:
        tiny_model(family)  # every family in the tables has a tiny model to test on


def _check_refusal(sequence, family):
    reason = _refusal(sequence, family)
    assert family in reason  # the sentence names the family
    with pytest.raises(ConfigError) as err:
        leanformer.compress(tiny_model(family), _recipe(sequence, family))
    assert str(err.value) == reason


if _refused(SEQUENCES):  # (no pair is refused when every method supports every family)
    @pytest.mark.parametrize("sequence, family", _refused(SEQUENCES))
    def test_an_unsupported_pair_fails_with_the_documented_error(sequence, family):
        _check_refusal(sequence, family)


def test_a_refusal_a_method_declares_is_the_error_compress_gives(monkeypatch):
    """The mechanism, whatever the tables support today: a method's `unsupported` sentence for a
    family is what compressing that family with it raises, in a composition too."""
    method = method_by_name("pruning")
    monkeypatch.setattr(type(method), "unsupported", lambda self, spec: f"pruning refuses {spec.model_type!r} (this test)" if spec.model_type == "bert" else None)
    for sequence in (("pruning",), ("pruning", "quantization")):
        _check_refusal(sequence, "bert")
    assert _refusal(("pruning",), "roberta") is None


@pytest.mark.parametrize("sequence, family", _supported(SEQUENCES))
def test_compress_leaves_the_input_untouched_and_records_every_stage(sequence, family):
    teacher = tiny_model(family)
    inputs = tiny_inputs(teacher)
    before, state = _outputs(teacher, inputs), {k: v.clone() for k, v in teacher.state_dict().items()}
    student = leanformer.compress(teacher, _recipe(sequence, family))
    assert [s["method"] for s in leanformer.recipe_of(student)] == list(sequence)
    assert leanformer.recipe_of(teacher) == []
    assert teacher.state_dict().keys() == state.keys() and all(torch.equal(v, state[k]) for k, v in teacher.state_dict().items())
    assert torch.equal(_outputs(teacher, inputs), before)


@pytest.mark.parametrize("sequence, family", _supported(SEQUENCES))
def test_save_then_load_gives_the_same_model(tmp_path, sequence, family):
    _, student, inputs = _student(sequence, family)
    if student.can_generate():  # generation settings of its own, and config.use_cache off as training leaves it
        student.generation_config.update(max_length=17, num_beams=2, use_cache=True)
        student.config.use_cache = False
    leanformer.save(student, tmp_path / "student")
    loaded = leanformer.load(tmp_path / "student")
    assert leanformer.recipe_of(loaded) == leanformer.recipe_of(student)
    assert loaded.state_dict().keys() == student.state_dict().keys()
    torch.testing.assert_close(_outputs(loaded, inputs), _outputs(student, inputs), rtol=0, atol=0)
    if student.can_generate():  # rebuilt from config.json alone it would generate without its cache
        assert loaded.generation_config.to_diff_dict() == student.generation_config.to_diff_dict()
        assert loaded.generation_config.use_cache and loaded.generation_config.num_beams == 2


@pytest.mark.parametrize("sequence, family", _supported(SEQUENCES))
def test_the_recipe_round_trips_through_yaml(sequence, family):
    recipe = _recipe(sequence, family)
    assert Recipe.from_dict(yaml.safe_load(recipe.to_yaml())).to_dict() == recipe.to_dict()


ENCODERS = [f for f in FAMILIES if not ARCHITECTURES[f].is_encoder_decoder]


@pytest.mark.parametrize("sequence, family", [p for p in _supported(SEQUENCES) if p.values[1] in ENCODERS])
def test_the_onnx_export_computes_what_the_model_does(tmp_path, sequence, family):
    """Float exports to float rounding; int8 exports too (measured: 1e-7 of the logits' scale on AVX2),
    as the int8 file stores the grid the fake-quant model simulates (methods/quantization/README.md)."""
    _, student, inputs = _student(sequence, family)
    path = leanformer.api.export(student, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path))
    feed = {i.name: inputs[i.name].numpy() for i in session.get_inputs() if i.name in inputs}
    feed.update({i.name: np.zeros_like(feed["input_ids"]) for i in session.get_inputs() if i.name not in feed})
    got = session.run(None, feed)[0]
    expected = _outputs(student, inputs).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("sequence, family", [p for p in _supported(SEQUENCES) if p.values[1] not in ENCODERS])
def test_the_encoder_decoder_export_computes_what_the_model_does(tmp_path, sequence, family):
    """Encoder + cached decoder step, two steps (the second reads the cache the first grew): next-token
    logits as the model computes them, to float rounding in fp32 and int8 alike (as above)."""
    from leanformer.deploy.seq2seq import OnnxSeq2Seq

    _, student, inputs = _student(sequence, family)
    onnx_model = OnnxSeq2Seq(leanformer.api.export(student, tmp_path / "onnx"))
    ids, mask = inputs["input_ids"].numpy(), inputs["attention_mask"].numpy()
    states, *cross = onnx_model.encoder.run(None, {"input_ids": ids, "attention_mask": mask})
    meta, names = onnx_model.meta, [i.name for i in onnx_model.decoder.get_inputs()]
    past = [np.zeros((len(ids), h, 0, meta["head_dim"]), np.float32) for h in meta["self_attention_heads"] for _ in "kv"]
    tokens = inputs["decoder_input_ids"][:, :2].clone()
    tokens[:, 0] = meta["decoder_start_token_id"]
    for step in range(2):
        got, *past = onnx_model.decoder.run(None, dict(zip(names, [tokens[:, step:step + 1].numpy(), states, mask, *past, *cross])))
        with torch.no_grad():
            expected = student(**{k: inputs[k] for k in ("input_ids", "attention_mask")}, decoder_input_ids=tokens[:, :step + 1]).logits[:, -1].numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_readme_shows_the_support_table_the_declarations_give():
    from leanformer.registry import support_table

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert support_table() in readme, "README's supported-architectures table is stale; paste:\n" + support_table()
