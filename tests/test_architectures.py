import pytest
from torch import nn

from leanformer.architectures import get_architecture, iter_layers, linear_roles, embedding_module_names
from leanformer.errors import UnsupportedModelError
from tiny_models import tiny_model

FAMILIES = ["bert", "roberta", "mpnet", "distilbert", "marian", "bart"]


@pytest.mark.parametrize("model_type", FAMILIES)
def test_table_paths_exist_and_have_the_right_shapes(model_type):
    model = tiny_model(model_type)
    spec = get_architecture(model)
    roles = linear_roles(model)
    n_layers = sum(1 for _ in iter_layers(model))
    assert n_layers == 2 * len(spec.stacks)
    attn_blocks = sum(len(s.attentions) for s in spec.stacks) * 2
    assert sum(r == "query" for r in roles.values()) == attn_blocks
    for name, role in roles.items():
        linear = model.get_submodule(name)
        assert isinstance(linear, nn.Linear), name
        expected = {"ffn_in": (64, 32), "ffn_out": (32, 64)}.get(role, (32, 32))
        assert tuple(linear.weight.shape) == expected, (name, role)
    for layer in iter_layers(model):
        for att in layer.stack.attentions:
            assert getattr(layer.module.get_submodule(att.module), att.num_heads_attr) == 4
    assert isinstance(model.get_submodule(f"{embedding_module_names(model)[0]}"), nn.Module)
    # every config attribute the table names exists
    for attr, size in ((spec.hidden_size, 32), (spec.num_heads, 4), (spec.intermediate_size, 64)):
        assert getattr(model.config, attr) == size, attr


def test_unknown_family_lists_the_supported_ones():
    config = type("C", (), {"model_type": "gpt2"})()
    with pytest.raises(UnsupportedModelError, match="gpt2.*supported: bart, bert, distilbert, marian, mpnet, roberta"):
        get_architecture(config)
