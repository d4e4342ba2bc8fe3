"""compress / save / load through the registry, with a test-only method (the real ones live in methods/)."""

from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

import leanformer
from leanformer.architectures import linear_roles
from leanformer.config import ConfigBase
from leanformer.errors import ConfigError, LeanformerError
from leanformer.registry import _METHODS, Method, method_by_name, register_method
from tiny_models import tiny_inputs, tiny_model


class ScaledLinear(nn.Module):
    """A stand-in for a method layer: its own parameter names, so loading must rebuild it."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight_t = nn.Parameter(linear.weight.detach().T.clone())
        self.bias = nn.Parameter(linear.bias.detach().clone())
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.scale * (x @ self.weight_t) + self.bias


@dataclass
class TransposeFFNConfig(ConfigBase):
    roles: list[str] = field(default_factory=lambda: ["ffn_in"])


def _swap(model, config):
    for name, role in linear_roles(model).items():
        if role in config.roles:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, ScaledLinear(model.get_submodule(name)))
    return model


class TransposeFFN(Method):
    """The smallest method: required hooks only."""

    name = "transpose_ffn"
    config_class = TransposeFFNConfig

    def apply(self, model, config):
        return _swap(model, config), None

    def rebuild(self, model, config, structure):
        return _swap(model, config)


@pytest.fixture
def test_method():
    register_method(TransposeFFN())
    yield
    _METHODS.pop("transpose_ffn", None)


def test_compress_dispatches_on_config_class_and_records_the_recipe(test_method):
    model = tiny_model("bert")
    inputs = tiny_inputs(model)
    with torch.no_grad():
        before = model(**inputs).logits
    student = leanformer.compress(model, TransposeFFNConfig())
    assert isinstance(student.bert.encoder.layer[0].intermediate.dense, ScaledLinear)
    assert leanformer.recipe_of(student) == [{"method": "transpose_ffn", "config": {"roles": ["ffn_in"]}}]
    with torch.no_grad():
        torch.testing.assert_close(student(**inputs).logits, before)


def test_save_then_load_rebuilds_the_structure_with_identical_outputs(test_method, tmp_path):
    student = leanformer.compress(tiny_model("bert"), TransposeFFNConfig(roles=["ffn_in", "query"]))
    with torch.no_grad():
        student.bert.encoder.layer[0].attention.self.query.scale.fill_(1.5)
    leanformer.save(student, tmp_path / "student")
    loaded = leanformer.load(tmp_path / "student")
    assert isinstance(loaded.bert.encoder.layer[1].attention.self.query, ScaledLinear)
    assert loaded.bert.encoder.layer[0].attention.self.query.scale.item() == 1.5
    inputs = tiny_inputs(student)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, student.eval()(**inputs).logits, rtol=0, atol=0)
    assert leanformer.recipe_of(loaded) == leanformer.recipe_of(student)


def test_plain_transformers_models_load_unchanged(tmp_path):
    for model_type in ("bert", "marian"):
        model = tiny_model(model_type)
        leanformer.save(model, tmp_path / model_type)
        loaded = leanformer.load(tmp_path / model_type)
        inputs = tiny_inputs(model)
        with torch.no_grad():
            torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)


def test_unknown_method_and_config_errors():
    with pytest.raises(ConfigError, match="unknown compression method 'nope'"):
        method_by_name("nope")

    @dataclass
    class NotAMethod(ConfigBase):
        x: int = 1

    with pytest.raises(ConfigError, match="NotAMethod is not a registered method config"):
        leanformer.compress(tiny_model("bert"), NotAMethod())


def test_config_from_yaml_reads_text_or_a_file_and_a_bad_file_is_named(tmp_path):
    assert TransposeFFNConfig.from_yaml("roles: [ffn_out]\n") == TransposeFFNConfig(roles=["ffn_out"])
    good = tmp_path / "good.yaml"
    good.write_text("roles: [ffn_out]\n")
    assert TransposeFFNConfig.from_yaml(good) == TransposeFFNConfig.from_yaml(str(good)) == TransposeFFNConfig(roles=["ffn_out"])

    # a mistyped path was parsed as the YAML text 'typo.yaml' and failed as "expected a mapping"
    with pytest.raises(ConfigError, match="TransposeFFNConfig file 'typo.yaml' does not exist"):
        TransposeFFNConfig.from_yaml("typo.yaml")
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(ConfigError, match="folder.yaml' cannot be read"):
        TransposeFFNConfig.from_yaml(tmp_path / "folder.yaml")
    broken = tmp_path / "broken.yml"
    broken.write_text("roles: [ffn_out\n")
    with pytest.raises(ConfigError, match="broken.yml': invalid YAML"):
        TransposeFFNConfig.from_yaml(broken)
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text("role: [ffn_out]\n")
    with pytest.raises(ConfigError, match="misspelt.yaml': TransposeFFNConfig: unknown key 'role'"):
        TransposeFFNConfig.from_yaml(misspelt)


def test_load_errors(tmp_path):
    with pytest.raises(LeanformerError, match="not a saved model: no config.json"):
        leanformer.load(tmp_path)
    model = tiny_model("bert")
    leanformer.save(model, tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(LeanformerError):
        leanformer.load(tmp_path / "m")


def test_save_refuses_to_overwrite_when_asked(tmp_path):
    model = tiny_model("bert")
    leanformer.save(model, tmp_path / "m")
    with pytest.raises(LeanformerError, match="exists: pass --overwrite"):
        leanformer.save(model, tmp_path / "m", overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary directories left behind


@dataclass
class StructuredConfig(ConfigBase):
    roles: list[str] = field(default_factory=lambda: ["ffn_in"])


def test_structures_from_apply_and_finalize_reach_rebuild(tmp_path):
    seen = {}

    class Structured(Method):
        name, config_class = "structured", StructuredConfig

        def apply(self, model, config):
            return _swap(model, config), {"built": 1}

        def finalize(self, model, config):
            return model, {"heads": [4, 3]}

        def rebuild(self, model, config, structure):
            seen["structure"] = structure
            return _swap(model, config)

    register_method(Structured())
    try:
        student = leanformer.api.finalize_stage(leanformer.compress(tiny_model("bert"), StructuredConfig()), StructuredConfig())
        leanformer.save(student, tmp_path / "s")
        leanformer.load(tmp_path / "s")
        assert seen["structure"] == {"built": 1, "heads": [4, 3]}
        with pytest.raises(LeanformerError, match="needs a model made by leanformer.compress"):
            leanformer.api.finalize_stage(tiny_model("bert"), StructuredConfig())
    finally:
        _METHODS.pop("structured", None)


def test_compress_leaves_its_input_untouched_so_one_teacher_serves_many_students(test_method):
    teacher = tiny_model("bert")
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    first = leanformer.compress(teacher, TransposeFFNConfig())
    second = leanformer.compress(teacher, TransposeFFNConfig())  # was: "already replaced", teacher gone
    assert first is not teacher and second is not first
    assert leanformer.recipe_of(teacher) == [] and not hasattr(teacher.config, "leanformer")
    assert teacher.state_dict().keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())


def test_a_model_saved_by_a_newer_leanformer_names_both_versions(tmp_path, test_method):
    import json

    student = leanformer.compress(tiny_model("bert"), TransposeFFNConfig())
    leanformer.save(student, tmp_path / "s")
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    config["leanformer"]["version"] = "99.0"
    config["leanformer"]["recipe"][0]["config"]["new_knob"] = 3  # a key this version does not know
    (tmp_path / "s" / "config.json").write_text(json.dumps(config))
    with pytest.raises(LeanformerError, match=rf"saved by leanformer 99.0, newer than this leanformer {leanformer.__version__}.*new_knob"):
        leanformer.load(tmp_path / "s")
    config["leanformer"]["version"] = leanformer.__version__  # same version: the plain config error
    (tmp_path / "s" / "config.json").write_text(json.dumps(config))
    with pytest.raises(LeanformerError, match="new_knob") as err:
        leanformer.load(tmp_path / "s")
    assert "newer than this" not in str(err.value)
