"""Fewer layers: the kept layers compute what the teacher's did, the choice of layers, the layer
mapping distillation uses, a plain saved model, and clear errors. (Save/load, recipes, ONNX and
compositions on every family: tests/test_contract.py.)"""

import pytest
import torch
import transformers

import leanformer
from leanformer.distill import DistillationConfig, default_intermediate_pairs
from leanformer.errors import ConfigError, LeanformerError
from leanformer.methods.depth import DepthConfig, chosen_layers
from tiny_models import tiny_config, tiny_inputs


def _teacher(layers: int = 4):
    config = tiny_config("bert")
    config.num_hidden_layers = layers
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config).eval()


def test_the_student_computes_the_teachers_kept_layers_in_order():
    """Logits of the student vs the teacher's own modules run by hand: embeddings, layers 1 and 3,
    pooler, classifier."""
    teacher = _teacher()
    student = leanformer.compress(teacher, DepthConfig(layers=[1, 3]))
    assert len(student.bert.encoder.layer) == 2 and student.config.num_hidden_layers == 2
    inputs = tiny_inputs(teacher)
    with torch.no_grad():
        hidden = teacher.bert.embeddings(input_ids=inputs["input_ids"])
        additive = (1.0 - inputs["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
        for i in (1, 3):
            hidden = teacher.bert.encoder.layer[i](hidden, attention_mask=additive)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        by_hand = teacher.classifier(teacher.bert.pooler(hidden))
        torch.testing.assert_close(student(**inputs).logits, by_hand, rtol=1e-5, atol=1e-6)
        # and the teacher itself is the 4-layer model it was
        assert len(teacher.bert.encoder.layer) == 4


@pytest.mark.parametrize("n, keep, strategy, expected", [
    (6, 3, "uniform", [1, 3, 5]), (6, 2, "uniform", [2, 5]), (12, 4, "uniform", [2, 5, 8, 11]), (6, 6, "uniform", [0, 1, 2, 3, 4, 5]),
    (6, 1, "uniform", [5]), (6, 3, "first", [0, 1, 2]), (5, 2, "uniform", [1, 4]),
])
def test_which_layers_are_kept(n, keep, strategy, expected):
    assert chosen_layers(n, keep, strategy) == expected


def test_distillation_pairs_each_student_layer_with_the_teacher_layer_it_came_from():
    teacher = _teacher()
    student = leanformer.compress(teacher, DepthConfig(layers=[0, 3]))
    pairs = default_intermediate_pairs(student, teacher, DistillationConfig(hidden_weight=1.0, attention_weight=1.0))
    hidden = [(p.student.name, p.teacher.name) for p in pairs if p.group == "hidden"]
    assert hidden == [("bert.encoder.layer.0", "bert.encoder.layer.0"), ("bert.encoder.layer.1", "bert.encoder.layer.3")]
    attention = [(p.student.name, p.teacher.name) for p in pairs if p.group == "attention"]
    assert attention[1] == ("bert.encoder.layer.1.attention.self", "bert.encoder.layer.3.attention.self")
    # what the stage recorded is the mapping (uniform layer_map would have paired student 0 with teacher 1)
    assert leanformer.recipe_of(student)[0]["structure"] == {"teacher_layers": {"encoder": [0, 3]}}


def test_the_saved_student_is_a_plain_model_transformers_loads_alone(tmp_path):
    student = leanformer.compress(_teacher(), DepthConfig(num_layers=2))
    leanformer.save(student, tmp_path / "s")
    plain = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "s").eval()
    inputs = tiny_inputs(student)
    with torch.no_grad():
        torch.testing.assert_close(plain(**inputs).logits, student(**inputs).logits, rtol=0, atol=0)
    assert plain.config.num_hidden_layers == 2


def test_an_encoder_decoder_keeps_its_cache_numbering():
    """Decoder attention modules index the key/value cache by their layer number: kept layers are renumbered."""
    torch.manual_seed(0)
    config = tiny_config("marian")
    config.decoder_layers = 3
    teacher = transformers.MarianMTModel(config).eval()
    student = leanformer.compress(teacher, DepthConfig(num_layers=1, decoder_layers=[0, 2]))
    assert [layer.self_attn.layer_idx for layer in student.model.decoder.layers] == [0, 1]
    batch = tiny_inputs(student, batch=2, seq=6)
    out = student.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 2


@pytest.mark.parametrize("config, message", [
    (dict(), "nothing to drop"),
    (dict(layers=[0, 2], num_layers=2), "give layers or num_layers, not both"),
    (dict(layers=[2, 0]), "distinct increasing"),
    (dict(layers=[1, 1]), "distinct increasing"),
    (dict(layers=[-1, 2]), "distinct increasing"),
    (dict(layers=[]), "distinct increasing"),
    (dict(num_layers=0), "at least 1"),
])
def test_config_errors_name_the_fix(config, message):
    with pytest.raises(ConfigError, match=message):
        DepthConfig(**config)


@pytest.mark.parametrize("config, message", [
    (DepthConfig(layers=[0, 4]), "layer 4 does not exist: the encoder has 4 layers"),
    (DepthConfig(num_layers=5), "cannot keep 5 layers of a stack of 4"),
    (DepthConfig(decoder_num_layers=1), "for encoder-decoders"),
])
def test_choices_that_do_not_fit_the_model_are_refused(config, message):
    teacher = _teacher()
    with pytest.raises(ConfigError, match=message):
        leanformer.compress(teacher, config)
    assert len(teacher.bert.encoder.layer) == 4


def test_a_hand_edited_mapping_is_one_clear_error(tmp_path):
    import json

    leanformer.save(leanformer.compress(_teacher(), DepthConfig(num_layers=2)), tmp_path / "s")
    saved = json.loads((tmp_path / "s" / "config.json").read_text())
    saved["leanformer"]["recipe"][0]["structure"]["teacher_layers"]["encoder"] = [3]
    (tmp_path / "s" / "config.json").write_text(json.dumps(saved))
    with pytest.raises(LeanformerError, match="do not describe its 2 layers"):
        leanformer.load(tmp_path / "s")


def _labelled_batches(model, n: int = 3):
    batches = []
    for seed in range(n):
        inputs = tiny_inputs(model, batch=4, seq=10, seed=seed)
        inputs["labels"] = torch.tensor([0, 1, 1, 0])
        batches.append(inputs)
    return batches


def test_drop_one_layer_losses_equal_shallower_models_built_by_transformers():
    """Independently: for each dropped layer, a 3-layer BertForSequenceClassification from the
    config, given the other layers' weights by renaming the state dict."""
    from leanformer.methods.depth import drop_one_layer_losses

    teacher = _teacher(4)
    batches = _labelled_batches(teacher)
    measured = drop_one_layer_losses(teacher, "encoder", batches)
    for dropped in range(4):
        config = tiny_config("bert")
        config.num_hidden_layers = 3
        shallow = transformers.BertForSequenceClassification(config).eval()
        kept = [i for i in range(4) if i != dropped]
        state = {}
        for name, value in teacher.state_dict().items():
            if name.startswith("bert.encoder.layer."):
                index = int(name.split(".")[3])
                if index == dropped:
                    continue
                name = name.replace(f"layer.{index}.", f"layer.{kept.index(index)}.", 1)
            state[name] = value
        shallow.load_state_dict(state)
        with torch.no_grad():
            expected = sum(float(shallow(**b).loss) for b in batches) / len(batches)
        assert measured[dropped] == pytest.approx(expected, rel=1e-6)
    assert len(teacher.bert.encoder.layer) == 4  # measured on copies


def test_importance_keeps_the_layers_whose_removal_hurts_most_and_records_them():
    from leanformer.methods.depth import choose_important_layers, drop_one_layer_losses

    teacher = _teacher(4)
    batches = _labelled_batches(teacher)
    losses = drop_one_layer_losses(teacher, "encoder", batches)
    config = choose_important_layers(teacher, DepthConfig(num_layers=2, strategy="importance", importance_batches=3), iter(batches))
    assert config.num_layers is None and config.strategy == "importance"
    assert config.layers == sorted(sorted(range(4), key=lambda i: -losses[i])[:2])
    student = leanformer.compress(teacher, config)
    assert leanformer.recipe_of(student)[0]["config"]["layers"] == config.layers
    with pytest.raises(ConfigError, match="strategy 'importance' chooses layers from training data"):
        leanformer.compress(teacher, DepthConfig(num_layers=2, strategy="importance"))


def test_importance_through_distillation_records_the_layers_it_chose(tmp_path):
    from leanformer.data import TaskConfig
    from leanformer.student import distil_student
    from leanformer.training import TrainConfig
    from tiny_models import write_tiny_task

    write_tiny_task(tmp_path, rows=24)
    task = TaskConfig(task=str(tmp_path / "data.csv")).load()
    train = TrainConfig(max_steps=2, batch_size=4, max_length=16, report_to="none", progress=False, save_steps=100)
    out = distil_student(tmp_path / "teacher", DepthConfig(num_layers=1, strategy="importance", importance_batches=2), task, train,
                         DistillationConfig(), tmp_path / "student")
    (stage,) = leanformer.recipe_of(leanformer.load(out))
    assert stage["config"]["num_layers"] is None and len(stage["config"]["layers"]) == 1
    assert stage["structure"]["teacher_layers"]["encoder"] == stage["config"]["layers"]


def _modernbert(layers: int = 4):
    config = tiny_config("modernbert")
    config.num_hidden_layers, config.layer_types = layers, None  # re-derived: global every 2nd layer
    config = transformers.ModernBertConfig(**config.to_dict())
    torch.manual_seed(0)
    return transformers.ModernBertForSequenceClassification(config).eval()


def test_modernbert_keeps_each_layers_local_or_global_attention(tmp_path):
    """Its layer_types follow the kept layers: the student equals a shallower ModernBERT built by
    transformers with those types and the kept layers' weights, and reloads alone."""
    teacher = _modernbert()
    assert teacher.config.layer_types == ["full_attention", "sliding_attention"] * 2
    student = leanformer.compress(teacher, DepthConfig(layers=[0, 1, 3]))
    assert student.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention"]
    config = transformers.ModernBertConfig(**{**teacher.config.to_dict(), "num_hidden_layers": 3, "layer_types": student.config.layer_types})
    rebuilt = transformers.ModernBertForSequenceClassification(config).eval()
    renamed = {k.replace("layers.3.", "layers.2."): v for k, v in teacher.state_dict().items() if "layers.2." not in k}
    rebuilt.load_state_dict(renamed)
    inputs = tiny_inputs(teacher, seq=12)
    with torch.no_grad():
        torch.testing.assert_close(student(**inputs).logits, rebuilt(**inputs).logits, rtol=0, atol=0)
        student.save_pretrained(tmp_path / "student")
        alone = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "student").eval()
        torch.testing.assert_close(alone(**inputs).logits, rebuilt(**inputs).logits, rtol=0, atol=0)


def test_modernbert_refuses_a_student_without_its_first_layer():
    with pytest.raises(ConfigError, match="keep layer 0"):
        leanformer.compress(_modernbert(), DepthConfig(num_layers=2))  # uniform: layers 1 and 3


KEPT_HEADS = [[0, 2], [1]]  # of student layers 0 and 1 (teacher layers 1 and 3)
KEPT_DIMS = [list(range(0, 64, 2)), [3, 9, 20, 41, 63]]


def test_a_narrowed_student_is_the_teacher_with_those_heads_and_dims_silenced(tmp_path):
    """Independently: the teacher's layers 1 and 3 with the removed heads' columns of the attention
    output and the removed dims' columns of W2 set to zero (which silences them) give the same logits."""
    teacher = _teacher()
    student = leanformer.compress(teacher, DepthConfig(layers=[1, 3], head_indices=KEPT_HEADS, ffn_indices=KEPT_DIMS))
    layer = student.bert.encoder.layer[1]
    assert (layer.attention.self.query.out_features, layer.attention.output.dense.in_features, layer.output.dense.in_features) == (8, 8, 5)
    silenced = leanformer.compress(teacher, DepthConfig(layers=[1, 3]))
    with torch.no_grad():
        for layer, heads, dims in zip(silenced.bert.encoder.layer, KEPT_HEADS, KEPT_DIMS):
            for h in set(range(4)) - set(heads):
                layer.attention.output.dense.weight[:, h * 8:(h + 1) * 8] = 0
            for d in set(range(64)) - set(dims):
                layer.output.dense.weight[:, d] = 0
        inputs = tiny_inputs(teacher)
        torch.testing.assert_close(student(**inputs).logits, silenced(**inputs).logits, rtol=1e-5, atol=1e-6)
    (stage,) = leanformer.recipe_of(student)
    assert stage["structure"] == {"teacher_layers": {"encoder": [1, 3]}, "heads": [2, 1], "head_indices": KEPT_HEADS, "ffn_dims": [32, 5]}
    leanformer.save(student, tmp_path / "s")
    with torch.no_grad():
        torch.testing.assert_close(leanformer.load(tmp_path / "s")(**inputs).logits, student(**inputs).logits, rtol=0, atol=0)


def test_head_and_dim_importance_is_the_gradient_of_a_mask_on_them():
    """Independently: masks m = 1 multiplying each head's context and each FFN activation (forward
    pre-hooks), |∂L/∂m| per batch by autograd, averaged over the batches."""
    from leanformer.methods.depth import head_and_ffn_importance

    model = _teacher(2)
    batches = _labelled_batches(model, 2)
    heads, dims = head_and_ffn_importance(model, batches)
    expected_heads, expected_dims = [torch.zeros(4), torch.zeros(4)], [torch.zeros(64), torch.zeros(64)]
    for batch in batches:
        masks = [torch.ones(4, requires_grad=True) for _ in range(2)] + [torch.ones(64, requires_grad=True) for _ in range(2)]
        handles = []
        for i, layer in enumerate(model.bert.encoder.layer):
            handles.append(layer.attention.output.dense.register_forward_pre_hook(
                lambda m, args, mask=masks[i]: (args[0] * mask.repeat_interleave(8),)))
            handles.append(layer.output.dense.register_forward_pre_hook(lambda m, args, mask=masks[2 + i]: (args[0] * mask,)))
        grads = torch.autograd.grad(model(**batch).loss, masks)
        for handle in handles:
            handle.remove()
        for i in range(2):
            expected_heads[i] += grads[i].abs() / len(batches)
            expected_dims[i] += grads[2 + i].abs() / len(batches)
    for got, want in zip(heads + dims, expected_heads + expected_dims):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


def test_narrowing_by_importance_through_distillation_pairs_attention_with_the_kept_teacher_heads(tmp_path):
    from leanformer.data import TaskConfig
    from leanformer.distill import default_intermediate_pairs
    from leanformer.student import distil_student
    from leanformer.training import TrainConfig
    from tiny_models import write_tiny_task

    write_tiny_task(tmp_path, rows=24)
    task = TaskConfig(task=str(tmp_path / "data.csv")).load()
    train = TrainConfig(max_steps=2, batch_size=4, max_length=16, report_to="none", progress=False, save_steps=100)
    config = DepthConfig(num_layers=1, heads=2, ffn_dims=16, importance_batches=2)
    losses = DistillationConfig(hidden_weight=1.0, attention_weight=1.0, logit_weight=1.0)  # the attention loss needs the head mapping
    out = distil_student(tmp_path / "teacher", config, task, train, losses, tmp_path / "student")
    student = leanformer.load(out)
    (stage,) = leanformer.recipe_of(student)
    assert [len(h) for h in stage["config"]["head_indices"]] == [2] and [len(d) for d in stage["config"]["ffn_indices"]] == [16]
    assert stage["structure"]["head_indices"] == stage["config"]["head_indices"] and stage["structure"]["ffn_dims"] == [16]
    teacher = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "teacher")
    (pair,) = [p for p in default_intermediate_pairs(student, teacher, losses) if p.group == "attention"]
    assert pair.teacher.name == "bert.encoder.layer.1.attention.self" and list(pair.teacher_heads) == stage["config"]["head_indices"][0]
    with pytest.raises(ConfigError, match="heads and ffn_dims are chosen from training data"):
        leanformer.compress(teacher, DepthConfig(num_layers=1, heads=2))
