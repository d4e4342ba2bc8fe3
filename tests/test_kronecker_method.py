"""KroneckerConfig applied to whole models: exactness, parameter counts, search, save/load, errors."""

import pytest
import torch
import transformers

import leanformer
from leanformer.architectures import linear_roles
from leanformer.errors import ConfigError
from leanformer.measure import count_parameters
from leanformer.methods.kronecker import KroneckerConfig, KroneckerEmbedding, KroneckerLinear, rebuild_kronecker, resolved_shapes
from tiny_models import tiny_inputs, tiny_model

TINY = KroneckerConfig(attention_a=[4, 2], ffn_a=[8, 4], embedding_n=4)  # hidden 32, FFN 64


def _make_weights_exact_kronecker(model, config):
    """Overwrite every weight the config decomposes with an exact Kronecker product."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, role in linear_roles(model).items():
            w = model.get_submodule(name).weight
            a = config.attention_a if role in ("query", "key", "value", "attention_output") else (config.ffn_a if role == "ffn_in" else config.ffn_a[::-1])
            b = (w.shape[0] // a[0], w.shape[1] // a[1])
            w.copy_(torch.kron(torch.randn(*a, generator=g), torch.randn(*b, generator=g)) * 0.3)
        emb = model.get_input_embeddings().weight
        n = config.embedding_n
        emb.copy_(torch.kron(torch.randn(emb.shape[0], emb.shape[1] // n, generator=g), torch.randn(1, n, generator=g)))


@pytest.mark.parametrize("model_type", ["bert", "roberta", "mpnet", "distilbert"])
def test_exact_kronecker_model_is_reproduced_logit_for_logit(model_type):
    model = tiny_model(model_type).double()
    _make_weights_exact_kronecker(model, TINY)
    inputs = tiny_inputs(model)
    with torch.no_grad():
        before = model(**inputs).logits
    student = leanformer.compress(model, TINY)
    kron_layers = [m for m in student.modules() if isinstance(m, KroneckerLinear)]
    assert len(kron_layers) == 2 * 6 and any(isinstance(m, KroneckerEmbedding) for m in student.modules())
    with torch.no_grad():
        torch.testing.assert_close(student(**inputs).logits, before, rtol=1e-8, atol=1e-8)


def test_marian_linears_are_decomposed_and_tied_embeddings_refused():
    model = tiny_model("marian")
    student = leanformer.compress(model, KroneckerConfig(attention_a=[4, 4], ffn_a=[4, 4]))
    assert sum(isinstance(m, KroneckerLinear) for m in student.modules()) == 2 * 6 + 2 * 10
    with pytest.raises(ConfigError, match="tied to the output layer"):
        leanformer.compress(tiny_model("marian"), KroneckerConfig(embedding_n=4))


def test_paper_presets_on_bert_base_match_the_analytic_counts():
    base = transformers.BertConfig()  # hidden 768, FFN 3072, 12 layers, vocab 30522
    counts = {}
    for preset in ("kronecker8", "kronecker21"):
        model = transformers.AutoModelForSequenceClassification.from_config(base)
        counts[preset] = count_parameters(rebuild_kronecker(model, KroneckerConfig.preset(preset)))["total"]

    def analytic(att, ffn, n):
        h, i, v, layers = 768, 3072, 30522, 12
        attention = 4 * (att[0] * att[1] + (h // att[0]) * (h // att[1]))
        ffn_params = 2 * (ffn[0] * ffn[1] + (i // ffn[0]) * (h // ffn[1]))
        dense_per_layer = 4 * h + i + h + 4 * h  # biases (4 attention, W1, W2) and two LayerNorms
        embeddings = v * h // n + n + 512 * h + 2 * h + 2 * h  # word A, B; positions; types; LayerNorm
        head = h * h + h + 2 * h + 2  # pooler + 2-way classifier
        return layers * (attention + ffn_params + dense_per_layer) + embeddings + head

    assert counts["kronecker8"] == analytic((384, 384), (8, 2), 8) == 14_655_754  # paper: 14.3M
    assert counts["kronecker21"] == analytic((384, 48), (16, 2), 16) == 5_229_810  # paper: 5.2M


def _minilm_like():
    # the real MiniLM-L6 shapes (hidden 384, FFN 1536, vocab 30522, 6 layers), random weights
    config = transformers.BertConfig(hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=12)
    return transformers.AutoModelForSequenceClassification.from_config(config)


def _head_params(model):
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(("bert.pooler", "classifier")))


@pytest.mark.parametrize("objective", ["flops", "capacity"])
@pytest.mark.parametrize("target", [8.0, 20.0])
def test_target_compression_search_is_balanced_full_rank_and_best_for_its_objective(target, objective):
    from itertools import product

    from leanformer.architectures import divisors

    dense = _minilm_like()
    config = KroneckerConfig(target_compression=target, search_objective=objective)
    att, ffn, n = resolved_shapes(dense, config)
    student = rebuild_kronecker(_minilm_like(), config)
    ratio = (count_parameters(dense)["total"] - _head_params(dense)) / (count_parameters(student)["total"] - _head_params(student))
    assert target <= ratio <= 1.15 * target

    # independent check, with real layers: no balanced full-rank alternative that meets the budget has fewer
    # FLOPs (objective flops) or more attention + FFN parameters (objective capacity)
    low, high = 0.99 * target / 2, 1.01 * 2 * target  # the search's 1% slack on the balance bounds
    def options(rows, cols):
        out = []
        for m1, n1 in product(divisors(rows), divisors(cols)):
            layer = KroneckerLinear(cols, rows, (m1, n1))
            rank = min(m1, n1) * min(rows // m1, cols // n1)
            c = rows * cols / (layer.A.numel() + layer.B.numel())
            if rank == min(rows, cols) and low <= c <= high:
                out.append(((m1, n1), layer.A.numel() + layer.B.numel(), layer.flops_per_token()))
        return out

    att_opts, ffn_opts = options(384, 384), options(1536, 384)
    def emb_compression(k):
        layer = KroneckerEmbedding(30522, 384, k)
        return 30522 * 384 / (layer.A.numel() + layer.B.numel())

    emb_opts = [(k, 30522 * 384 // k + k, 384) for k in divisors(384) if k > 1 and low <= emb_compression(k) <= high]
    assert tuple(att) in [o[0] for o in att_opts] and tuple(ffn) in [o[0] for o in ffn_opts] and n in [o[0] for o in emb_opts]
    fixed = count_parameters(dense)["total"] - _head_params(dense) - 24 * 384 * 384 - 12 * 1536 * 384 - 30522 * 384
    dense_params = count_parameters(dense)["total"] - _head_params(dense)
    chosen_flops = 24 * dict((o[0], o[2]) for o in att_opts)[tuple(att)] + 12 * dict((o[0], o[2]) for o in ffn_opts)[tuple(ffn)]
    chosen_encoder = 24 * dict((o[0], o[1]) for o in att_opts)[tuple(att)] + 12 * dict((o[0], o[1]) for o in ffn_opts)[tuple(ffn)]
    for a, f, e in product(att_opts, ffn_opts, emb_opts):
        params = fixed + 24 * a[1] + 12 * f[1] + e[1]
        if target <= dense_params / params <= 1.15 * target:
            if objective == "flops":
                assert 24 * a[2] + 12 * f[2] >= chosen_flops, (a, f, e)
            else:
                assert 24 * a[1] + 12 * f[1] <= chosen_encoder, (a, f, e)


def test_save_and_load_give_identical_logits(tmp_path):
    student = leanformer.compress(tiny_model("bert"), TINY)
    assert not any(m.training for m in student.modules())  # the new layers keep the eval mode
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # trained factors differ from the SVD init
    leanformer.save(student, tmp_path / "s")
    loaded = leanformer.load(tmp_path / "s")
    assert any(isinstance(m, KroneckerEmbedding) for m in loaded.modules())
    inputs = tiny_inputs(student)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, student(**inputs).logits, rtol=0, atol=0)
    assert count_parameters(loaded) == count_parameters(student)


def test_searched_shapes_are_saved_and_load_never_searches_again(tmp_path, monkeypatch):
    config = KroneckerConfig(target_compression=2.0)
    student = leanformer.compress(tiny_model("bert"), config)
    (stage,) = leanformer.recipe_of(student)
    att, ffn, n = resolved_shapes(tiny_model("bert"), config)
    assert stage["structure"] == {"attention_a": att, "ffn_a": ffn, "embedding_n": n}
    leanformer.save(student, tmp_path / "s")

    def search_changed(*args, **kwargs):  # a later version's search: old students must not care
        raise AssertionError("load searched the shapes again")

    monkeypatch.setattr("leanformer.methods.kronecker.model.search_shapes", search_changed)
    loaded = leanformer.load(tmp_path / "s")
    inputs = tiny_inputs(student)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, student(**inputs).logits, rtol=0, atol=0)


def test_a_student_saved_without_shapes_still_loads_by_resolving_its_config(tmp_path):
    """Students saved by 0.1.0 before shapes were recorded: same search, same result."""
    import json

    student = leanformer.compress(tiny_model("bert"), KroneckerConfig(target_compression=2.0))
    leanformer.save(student, tmp_path / "s")
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    del config["leanformer"]["recipe"][0]["structure"]
    (tmp_path / "s" / "config.json").write_text(json.dumps(config))
    loaded = leanformer.load(tmp_path / "s")
    assert count_parameters(loaded) == count_parameters(student)


def test_a_decoder_wider_than_its_encoder_is_searched_and_counted_per_layer():
    """Marian with decoder FFN 96 and encoder FFN 64: the search sees both widths, picks an FFN shape
    that divides both, and the parameter count it targets is the one the built model has."""
    from tiny_models import tiny_config

    from leanformer.architectures import iter_layers
    from leanformer.methods.kronecker.model import _dimensions

    config = tiny_config("marian")
    config.decoder_ffn_dim = 96
    torch.manual_seed(0)
    teacher = transformers.MarianMTModel(config).eval()
    dims = _dimensions(teacher)
    assert dims.ffn_widths == (64, 64, 96, 96)

    def encoder_and_embeddings(model):  # what target_compression is about, counted independently
        layers = sum(p.numel() for layer in iter_layers(model) for p in layer.module.parameters())
        embeddings = count_parameters(model)["embeddings"]
        return layers + embeddings

    factored = {n for n, r in linear_roles(teacher).items()} | {"model.shared"}
    kept_dense = sum(p.numel() for layer in iter_layers(teacher) for n, p in layer.module.named_parameters()
                     if not (n.endswith(".weight") and f"{layer.name}.{n[:-len('.weight')]}" in factored))
    assert dims.other_params == count_parameters(teacher)["embeddings"] - teacher.model.shared.weight.numel() + kept_dense

    student = leanformer.compress(teacher, KroneckerConfig(target_compression=2.0, roles=["query", "key", "value", "attention_output", "ffn_in", "ffn_out"]))
    ffn_a = leanformer.recipe_of(student)[0]["structure"]["ffn_a"]
    assert 64 % ffn_a[0] == 0 and 96 % ffn_a[0] == 0
    assert 2.0 <= encoder_and_embeddings(teacher) / encoder_and_embeddings(student) <= 2.0 * 1.15


def test_config_errors_name_the_fix():
    with pytest.raises(ConfigError, match=r"attention_a \[5, 2\] does not divide the 32 x 32 weight.*rows must divide 32 \(1, 2, 4, 8, 16, 32\)"):
        leanformer.compress(tiny_model("bert"), KroneckerConfig(attention_a=[5, 2]))
    with pytest.raises(ConfigError, match="embedding_n 5 does not divide the embedding width 32"):
        leanformer.compress(tiny_model("bert"), KroneckerConfig(embedding_n=5))
    with pytest.raises(ConfigError, match="either target_compression or explicit shapes"):
        KroneckerConfig(target_compression=8.0, attention_a=[2, 2])
    with pytest.raises(ConfigError, match="nothing to decompose"):
        KroneckerConfig()
    with pytest.raises(ConfigError, match="target_compression 500.0: no balanced Kronecker shapes"):
        leanformer.compress(tiny_model("bert"), KroneckerConfig(target_compression=500.0))
    with pytest.raises(ConfigError, match="target_compression 8.0 is out of reach"):
        leanformer.compress(tiny_model("bert"), KroneckerConfig(target_compression=8.0, roles=["query"]))
    with pytest.raises(ConfigError, match="unknown Kronecker preset"):
        KroneckerConfig.preset("kronecker9")


def test_config_round_trips():
    for config in (KroneckerConfig.kronecker8(), KroneckerConfig.kronecker21(), KroneckerConfig(target_compression=8.0)):
        assert KroneckerConfig.from_yaml(config.to_yaml()) == config
        assert KroneckerConfig.from_json(config.to_json()) == config
