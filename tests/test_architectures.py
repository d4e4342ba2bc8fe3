import pytest
import torch
import transformers
from torch import nn

from leanformer.architectures import (ARCHITECTURES, attention_heads, embedding_module_names, get_architecture, iter_layers, linear_roles,
                                      max_sequence_length)
from leanformer.errors import UnsupportedModelError
from tiny_models import tiny_model

# families with learned absolute positions: an input one token longer than the table fails
FAMILIES = ["bert", "roberta", "mpnet", "distilbert", "marian", "bart", "electra", "xlm-roberta"]


@pytest.mark.parametrize("model_type", sorted(ARCHITECTURES))
def test_table_paths_exist_and_have_the_right_shapes(model_type):
    model = tiny_model(model_type)
    spec = get_architecture(model)
    roles = linear_roles(model)
    n_layers = sum(1 for _ in iter_layers(model))
    assert n_layers == 2 * len(spec.stacks)
    attn_blocks = sum(len(s.attentions) for s in spec.stacks) * 2
    assert sum(r in ("query", "qkv") for r in roles.values()) == attn_blocks
    gated = spec.stacks[0].ffn.gated  # W1 rows [up; gate]
    for name, role in roles.items():
        linear = model.get_submodule(name)
        assert isinstance(linear, nn.Linear), name
        expected = {"ffn_in": (128 if gated else 64, 32), "ffn_out": (32, 64), "qkv": (96, 32)}.get(role, (32, 32))
        assert tuple(linear.weight.shape) == expected, (name, role)
    for layer in iter_layers(model):
        for att in layer.stack.attentions:
            assert attention_heads(layer.module, att) == 4
    assert isinstance(model.get_submodule(f"{embedding_module_names(model)[0]}"), nn.Module)
    # every config attribute the table names exists
    for attr, size in ((spec.hidden_size, 32), (spec.num_heads, 4), (spec.intermediate_size, 64)):
        assert getattr(model.config, attr) == size, attr


@pytest.mark.parametrize("model_type", FAMILIES)
def test_max_sequence_length_is_the_longest_input_the_model_runs(model_type):
    model = tiny_model(model_type)  # 64 positions; RoBERTa, XLM-R and MPNet start theirs after pad_token_id 1
    decoder = {"decoder_input_ids": torch.full((1, 3), 5)} if model.config.is_encoder_decoder else {}

    def run(length):
        with torch.no_grad():
            model(input_ids=torch.full((1, length), 5), **decoder)

    limit = max_sequence_length(model.config)
    assert limit == (62 if model_type in ("roberta", "mpnet", "xlm-roberta") else 64)
    run(limit)
    with pytest.raises((IndexError, RuntimeError)):
        run(limit + 1)


def test_max_sequence_length_of_a_family_outside_the_tables_is_its_position_count():
    assert max_sequence_length(transformers.ElectraConfig(max_position_embeddings=64)) == 64


def test_unknown_family_lists_the_supported_ones():
    config = type("C", (), {"model_type": "gpt2"})()
    with pytest.raises(UnsupportedModelError, match="gpt2.*supported: bart, bert, deberta-v2, distilbert, electra, marian, modernbert, mpnet, roberta, xlm-roberta"):
        get_architecture(config)
