import copy
import math

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import TrainingArguments

from leanformer.distill import (
    ActivationCapture,
    CaptureTarget,
    DistillationConfig,
    DistillationTrainer,
    default_intermediate_pairs,
    layer_pairs,
    logit_loss,
    masked_mse,
)
from leanformer.errors import ConfigError, DataError
from tiny_models import tiny_inputs, tiny_model

ALL_ON = DistillationConfig(logit_weight=1.0, task_weight=1.0, embedding_weight=1.0, hidden_weight=1.0, attention_weight=1.0)
# Marian/BART add token and position embeddings inside the stack: no embedding module to hook
NO_EMBEDDINGS = DistillationConfig(logit_weight=1.0, task_weight=1.0, hidden_weight=1.0, attention_weight=1.0)


def test_captured_attention_scores_equal_hand_computed_qk():
    model = tiny_model("bert")
    inputs = tiny_inputs(model)
    layer = model.bert.encoder.layer[1]
    targets = [CaptureTarget("bert.encoder.layer.0"), CaptureTarget("bert.encoder.layer.1.attention.self", "attention_scores")]
    with ActivationCapture(model, targets) as cap, torch.no_grad():
        model(**inputs)
        x = cap.values[targets[0]]  # input of layer 1 = output of layer 0
        scores = cap.values[targets[1]]
    wq, bq = layer.attention.self.query.weight, layer.attention.self.query.bias
    wk, bk = layer.attention.self.key.weight, layer.attention.self.key.bias
    q = x @ wq.T + bq
    k = x @ wk.T + bk
    b, s, _ = q.shape
    for h in range(4):
        qh, kh = q[:, :, h * 8:(h + 1) * 8], k[:, :, h * 8:(h + 1) * 8]
        expected = torch.einsum("bqd,bkd->bqk", qh, kh) / math.sqrt(8)
        torch.testing.assert_close(scores[:, h], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_type", ["bert", "roberta", "mpnet", "distilbert", "marian"])
def test_capture_keeps_the_normal_attention_path_and_outputs(model_type):
    model = tiny_model(model_type)
    implementation = model.config._attn_implementation
    inputs = tiny_inputs(model)
    with torch.no_grad():
        reference = model(**inputs).logits
    config = NO_EMBEDDINGS if model.config.is_encoder_decoder else ALL_ON
    pairs = default_intermediate_pairs(model, model, config)
    with ActivationCapture(model, [p.student for p in pairs]) as cap, torch.no_grad():
        out = model(**inputs).logits
        assert len(cap.values) == len(pairs)
    assert model.config._attn_implementation == implementation
    torch.testing.assert_close(out, reference)


def test_logit_loss_matches_the_kl_formula():
    torch.manual_seed(0)
    s, t = torch.randn(5, 3), torch.randn(5, 3)
    T = 2.0
    p_t = torch.softmax(t / T, -1)
    expected = (p_t * (p_t.log() - torch.log_softmax(s / T, -1))).sum(-1).mean() * T * T
    torch.testing.assert_close(logit_loss(s, t, T), expected)
    assert logit_loss(t, t, T).abs() < 1e-6
    # no labelled position (an MLM batch with nothing masked): zero, not NaN
    assert logit_loss(s, t, T, mask=torch.zeros(5, dtype=torch.bool)).item() == 0.0
    # regression head: plain MSE
    torch.testing.assert_close(logit_loss(s[:, :1], t[:, :1], T), F.mse_loss(s[:, :1], t[:, :1]))


def test_masked_mse_ignores_padding():
    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    expected = sum(((s[b, i] - t[b, i]) ** 2).sum() for b in range(2) for i in range(4) if mask[b, i]) / (5 * 3)
    torch.testing.assert_close(masked_mse(s, t, mask), expected)
    scores_s, scores_t = torch.randn(2, 2, 4, 4), torch.randn(2, 2, 4, 4)
    pair = mask[:, :, None].bool() & mask[:, None, :].bool()
    diff = (scores_s - scores_t) ** 2
    expected = sum(diff[b, h, i, j] for b in range(2) for h in range(2) for i in range(4) for j in range(4) if pair[b, i, j]) / (pair.sum() * 2)
    torch.testing.assert_close(masked_mse(scores_s, scores_t, pair), expected)
    with pytest.raises(ConfigError, match="differ in shape"):
        masked_mse(torch.zeros(2, 3), torch.zeros(2, 4), None)


def test_layer_map():
    assert layer_pairs(3, 3, "uniform") == [(0, 0), (1, 1), (2, 2)]
    assert layer_pairs(4, 12, "uniform") == [(0, 2), (1, 5), (2, 8), (3, 11)]
    assert layer_pairs(2, 6, "last") == [(0, 4), (1, 5)]


def _classification_data(n=16, seq=10, vocab=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, seq), generator=g)
    return Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist(), "labels": (ids[:, 0] % 2).tolist()}
    )


def _trainer(student, teacher, tmp_path, config=ALL_ON, **kw):
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=kw.pop("max_steps", 4), learning_rate=1e-3,
        logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, seed=0, disable_tqdm=True,
    )
    return DistillationTrainer(model=student, args=args, train_dataset=_classification_data(), teacher=teacher, distillation=config, **kw)


@pytest.mark.parametrize("model_type", ["bert", "distilbert", "marian"])
def test_self_distillation_has_zero_distillation_losses(model_type, tmp_path):
    teacher = tiny_model(model_type)
    student = copy.deepcopy(teacher)
    seq2seq = teacher.config.is_encoder_decoder
    trainer = _trainer(student, teacher, tmp_path, config=NO_EMBEDDINGS if seq2seq else ALL_ON)
    inputs = tiny_inputs(teacher)
    if seq2seq:
        inputs["labels"] = inputs["decoder_input_ids"]
    else:
        inputs["labels"] = torch.tensor([0, 1, 1])
    losses, _ = trainer.distillation_losses(student, inputs)
    expected = {"task", "logits", "hidden", "attention"} | ({"embeddings"} if not teacher.config.is_encoder_decoder else set())
    assert set(losses) == expected
    for name in expected - {"task"}:
        assert losses[name].item() < 1e-10, name
    assert losses["task"].item() > 0


def test_distillation_losses_are_nonzero_for_a_different_student_and_training_lowers_them(tmp_path):
    teacher = tiny_model("bert", seed=0)
    student = tiny_model("bert", seed=1)
    trainer = _trainer(student, teacher, tmp_path, max_steps=30)
    batch = {k: torch.tensor(v) for k, v in _classification_data()[:8].items()}
    before, _ = trainer.distillation_losses(student, batch)
    assert all(v.item() > 0 for v in before.values())
    trainer.train()
    after, _ = trainer.distillation_losses(student.eval(), batch)
    assert after["hidden"] < before["hidden"] and after["attention"] < before["attention"]
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert {"loss_task", "loss_logits", "loss_embeddings", "loss_hidden", "loss_attention"} <= set(logged[0])


def test_extra_losses_are_added(tmp_path):
    teacher = tiny_model("bert")
    trainer = _trainer(copy.deepcopy(teacher), teacher, tmp_path, config=DistillationConfig(), extra_losses={"reg": lambda m: torch.tensor(3.0)})
    batch = {k: torch.tensor(v) for k, v in _classification_data()[:4].items()}
    total = trainer.compute_loss(trainer.model, batch)
    losses, _ = trainer.distillation_losses(trainer.model, batch)
    torch.testing.assert_close(total, 0.1 * losses["task"] + 0.9 * losses["logits"] + 3.0)


def test_mismatched_vocabularies_are_refused(tmp_path):
    teacher = tiny_model("bert")
    student = tiny_model("bert")
    student.resize_token_embeddings(120)
    with pytest.raises(DataError, match="has a vocabulary of .* tokens but the teacher"):
        _trainer(student, teacher, tmp_path)


def test_config_validation():
    with pytest.raises(ConfigError, match="temperature"):
        DistillationConfig(temperature=0)
    with pytest.raises(ConfigError, match="all distillation loss weights are 0"):
        DistillationConfig(logit_weight=0, task_weight=0)
    with pytest.raises(ConfigError, match="unknown key 'temprature'"):
        DistillationConfig.from_dict({"temprature": 2})
    with pytest.raises(ConfigError, match="layer_map.*'uniform', 'last'"):
        DistillationConfig.from_dict({"layer_map": "random"})
    cfg = DistillationConfig(hidden_weight=1)
    assert DistillationConfig.from_yaml(cfg.to_yaml()) == cfg
    assert DistillationConfig.from_json(cfg.to_json()) == cfg


def test_learning_rates_give_named_parameters_their_own_group(tmp_path):
    teacher = tiny_model("bert")
    student = copy.deepcopy(teacher)
    student.register_parameter("mask_scores", torch.nn.Parameter(torch.zeros(3)))
    trainer = _trainer(student, teacher, tmp_path, config=DistillationConfig(), learning_rates={"mask_scores": 0.01})
    optimizer = trainer.create_optimizer()
    special = [g for g in optimizer.param_groups if g["lr"] == 0.01]
    assert len(special) == 1 and special[0]["params"][0] is student.mask_scores and special[0]["weight_decay"] == 0.0
    others = [p for g in optimizer.param_groups if g["lr"] != 0.01 for p in g["params"]]
    assert len(others) == len(list(student.parameters())) - 1
