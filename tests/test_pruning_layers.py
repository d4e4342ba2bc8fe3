"""Block pruning pieces: straight-through score gradients, mask methods, schedules, regulariser, config."""

import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from transformers import TrainerControl, TrainerState, TrainingArguments

import leanformer
from leanformer.errors import ConfigError
from leanformer.methods.pruning import (
    BlockPruningConfig,
    MaskedLinear,
    PruningScheduleCallback,
    PruningState,
    cubic_threshold_schedule,
    find_state,
    pruning_training_extras,
    score_regularization,
    update_state,
)
from leanformer.methods.pruning.layers import keep_top
from tiny_models import tiny_model


def _score_names(module):
    return [n for n, _ in module.named_parameters() if n.endswith("mask_scores")]


def _independent_movement_gradient(weight, bias, binary, x, upstream, block):
    """dL/dS per block = Σ_block dL/dW'·W, by autograd on W' = W·M with the element mask M a leaf."""
    mask = binary.repeat_interleave(block[0], 0).repeat_interleave(block[1], 1).clone().requires_grad_(True)
    rows_alive = binary.amax(dim=1).repeat_interleave(block[0])
    y = F.linear(x, weight * mask, None if bias is None else bias * rows_alive)
    (y * upstream).sum().backward()
    r, c = binary.shape
    return mask.grad.reshape(r, block[0], c, block[1]).sum(dim=(1, 3)), y.detach()


@settings(max_examples=25, deadline=None)
@given(
    r=st.integers(1, 4), c=st.integers(1, 4), br=st.integers(1, 3), bc=st.integers(1, 3),
    threshold=st.floats(0.05, 0.95), with_bias=st.booleans(), seed=st.integers(0, 1000),
)
def test_straight_through_score_gradient_is_the_block_sum_of_movement(r, c, br, bc, threshold, with_bias, seed):
    g = torch.Generator().manual_seed(seed)
    out, inp = r * br, c * bc
    weight = nn.Parameter(torch.randn(out, inp, generator=g, dtype=torch.float64))
    bias = nn.Parameter(torch.randn(out, generator=g, dtype=torch.float64)) if with_bias else None
    layer = MaskedLinear(weight, bias, (r, c), PruningState("sigmoid_threshold", threshold=threshold), "attention")
    with torch.no_grad():
        layer.mask_scores.copy_(torch.randn(r, c, generator=g, dtype=torch.float64) * 2)
    x = torch.randn(5, inp, generator=g, dtype=torch.float64)
    upstream = torch.randn(5, out, generator=g, dtype=torch.float64)

    y = layer(x)
    (y * upstream).sum().backward()

    binary = (torch.sigmoid(layer.mask_scores.detach()) > threshold).double()
    expected_grad, expected_y = _independent_movement_gradient(weight.detach(), None if bias is None else bias.detach(), binary, x, upstream, (br, bc))
    torch.testing.assert_close(y.detach(), expected_y)
    torch.testing.assert_close(layer.mask_scores.grad, expected_grad)


def test_shared_scores_collect_the_movement_of_every_layer_using_them():
    """FFN row/column: W1's row score is also W2's column score; its gradient is the sum of both."""
    g = torch.Generator().manual_seed(0)
    dims, hidden = 6, 4
    w1 = nn.Parameter(torch.randn(dims, hidden, generator=g, dtype=torch.float64))
    w2 = nn.Parameter(torch.randn(hidden, dims, generator=g, dtype=torch.float64))
    state = PruningState("sigmoid_threshold", threshold=0.5)
    first = MaskedLinear(w1, None, (dims, 1), state, "ffn")
    second = MaskedLinear(w2, None, (1, dims), state, "ffn", owner=first, transposed=True)
    assert not second.owns_scores and _score_names(second) == []
    with torch.no_grad():
        first.mask_scores.copy_(torch.tensor([[1.0], [-1.0], [2.0], [-3.0], [0.5], [0.1]], dtype=torch.float64))
    x = torch.randn(3, hidden, generator=g, dtype=torch.float64)
    upstream = torch.randn(3, hidden, generator=g, dtype=torch.float64)
    (second(torch.relu(first(x))) * upstream).sum().backward()

    keep = (torch.sigmoid(first.mask_scores.detach()) > 0.5).double()  # (dims, 1)
    m1 = keep.expand(dims, hidden).clone().requires_grad_(True)
    m2 = keep.T.expand(hidden, dims).clone().requires_grad_(True)
    y = F.linear(torch.relu(F.linear(x, w1.detach() * m1)), w2.detach() * m2)
    (y * upstream).sum().backward()
    expected = m1.grad.sum(dim=1, keepdim=True) + m2.grad.sum(dim=0, keepdim=True).T
    torch.testing.assert_close(first.mask_scores.grad, expected)


def test_bias_of_a_fully_masked_row_is_masked_and_scores_start_at_zero():
    linear = nn.Linear(4, 4)
    layer = MaskedLinear.from_linear(linear, (2, 2), PruningState("sigmoid_threshold"), "attention")
    assert layer.weight is linear.weight and layer.bias is linear.bias
    assert torch.equal(layer.mask_scores, torch.zeros(2, 2))
    x = torch.randn(3, 4)
    torch.testing.assert_close(layer(x), linear(x))  # τ = 0: sigmoid(0) = 0.5 > 0 keeps everything
    layer.state.threshold = 0.5
    with torch.no_grad():
        layer.mask_scores.copy_(torch.tensor([[-1.0, -1.0], [1.0, -1.0]]))  # block row 0 fully masked
    weight, bias = layer.masked_parameters()
    assert torch.equal(bias[:2], torch.zeros(2)) and torch.equal(bias[2:], linear.bias[2:].detach())
    assert torch.equal(weight[2:, :2], linear.weight[2:, :2].detach()) and not weight[2:, 2:].any()


def test_topk_and_magnitude_keep_the_right_blocks():
    assert keep_top(torch.tensor([[0.3, 0.1], [0.9, 0.2]]), 0.5).tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert keep_top(torch.tensor([1.0, 2.0]), 0.99).sum() == 1  # never everything
    weight = torch.zeros(4, 4)
    weight[0:2, 2:4] = 5.0
    weight[2:4, 0:2] = 1.0
    layer = MaskedLinear(nn.Parameter(weight), None, (2, 2), PruningState("magnitude", sparsity=0.75), "attention")
    assert not _score_names(layer)  # magnitude has no scores
    assert layer.block_mask().tolist() == [[0.0, 1.0], [0.0, 0.0]]
    top = MaskedLinear(nn.Parameter(torch.randn(4, 4)), None, (2, 2), PruningState("topk", sparsity=0.5), "attention")
    with torch.no_grad():
        top.mask_scores.copy_(torch.tensor([[4.0, -1.0], [0.0, 3.0]]))
    assert top.block_mask().tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_cubic_schedule_matches_the_formula_at_end_points_and_middle():
    tau_f, total = 0.1, 100  # warm-up 10 steps, ramp 10..70, final warm-up 70..100
    schedule = lambda step: cubic_threshold_schedule(step, total, tau_f, 0.1, 0.3)  # noqa: E731
    assert schedule(0) == 0.0 and schedule(9) == 0.0
    assert schedule(10) == pytest.approx(0.0)  # start of the ramp: τ_f + (0 − τ_f)·1
    assert schedule(40) == pytest.approx(tau_f + (0 - tau_f) * (1 - 0.5) ** 3)  # middle: p = 0.5
    assert schedule(25) == pytest.approx(tau_f - tau_f * (1 - 0.25) ** 3)
    assert schedule(70) == tau_f and schedule(85) == tau_f and schedule(100) == tau_f
    values = [schedule(s) for s in range(total + 1)]
    assert values == sorted(values)


def test_lambda_follows_the_threshold_and_the_callback_drives_the_state():
    config = BlockPruningConfig(final_threshold=0.1, final_lambda=20.0, final_sparsity=0.6, initial_warmup=0.1, final_warmup=0.3)
    state = PruningState("sigmoid_threshold")
    for step in (0, 10, 25, 40, 70, 100):
        update_state(state, config, step, 100)
        tau = cubic_threshold_schedule(step, 100, 0.1, 0.1, 0.3)
        assert state.threshold == pytest.approx(tau)
        assert state.regularization == pytest.approx(20.0 * tau / 0.1)
        assert state.sparsity == pytest.approx(0.6 * tau / 0.1)
    callback = PruningScheduleCallback(state, config)
    trainer_state = TrainerState()
    trainer_state.max_steps, trainer_state.global_step = 100, 40
    callback.on_step_begin(TrainingArguments(output_dir="unused", report_to=[]), trainer_state, TrainerControl())
    assert state.threshold == pytest.approx(0.1 * (1 - 0.5**3))


def test_regulariser_is_the_group_weighted_mean_of_sigmoid_scores():
    config = BlockPruningConfig.hybrid(block_shape=[8, 8], attention_lambda=1.0, ffn_lambda=0.5, final_lambda=10.0)
    model = leanformer.compress(tiny_model("bert"), config)
    g = torch.Generator().manual_seed(0)
    attention, ffn = [], []
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, MaskedLinear) and module.owns_scores:
                module.mask_scores.copy_(torch.randn(module.mask_scores.shape, generator=g))
                (attention if module.group == "attention" else ffn).append(torch.sigmoid(module.mask_scores).mean())
    assert len(attention) == 2 * 4 and len(ffn) == 2  # Q, K, V, O own their scores; W2 reuses W1's
    expected = 1.0 * torch.stack(attention).mean() + 0.5 * torch.stack(ffn).mean()
    torch.testing.assert_close(score_regularization(model, {"attention": 1.0, "ffn": 0.5}), expected)

    extras = pruning_training_extras(model, config)
    state = find_state(model)
    update_state(state, config, 100, 100)
    torch.testing.assert_close(extras.extra_losses["pruning_regularization"](model), 10.0 * expected)
    assert extras.learning_rates == {"mask_scores": 1e-2}
    named = [n for n, _ in model.named_parameters() if n.endswith("mask_scores")]
    assert len(named) == 10 and isinstance(extras.callbacks[0], PruningScheduleCallback)


@pytest.mark.parametrize("name", ["hybrid", "hybrid_filled", "struct", "block"])
def test_presets_round_trip_yaml_and_json(name):
    config = BlockPruningConfig.preset(name)
    assert BlockPruningConfig.from_yaml(config.to_yaml()) == config
    assert BlockPruningConfig.from_json(json.dumps(config.to_dict())) == config
    assert (config.refine_epochs > 0) == (name == "hybrid_filled")


def test_config_errors_are_one_line_and_name_the_fix():
    with pytest.raises(ConfigError) as err:
        leanformer.compress(tiny_model("bert"), BlockPruningConfig(block_shape=[5, 8]))
    message = str(err.value)
    assert "\n" not in message and "block_shape [5, 8] does not divide" in message and "(1, 2, 4, 8, 16, 32)" in message
    with pytest.raises(ConfigError, match="unknown block pruning preset 'hybird'; choose hybrid"):
        BlockPruningConfig.preset("hybird")
    with pytest.raises(ConfigError, match="two positive integers"):
        BlockPruningConfig(block_shape=[32])
    with pytest.raises(ConfigError, match="initial_warmup \\+ final_warmup must be < 1"):
        BlockPruningConfig(initial_warmup=0.5, final_warmup=0.5)
    with pytest.raises(ConfigError, match="mask_method"):
        BlockPruningConfig.from_dict({"mask_method": "l0"})
    model = leanformer.compress(tiny_model("bert"), BlockPruningConfig.hybrid(block_shape=[8, 8]))
    with pytest.raises(ConfigError, match="already masked"):
        leanformer.compress(model, BlockPruningConfig.hybrid(block_shape=[8, 8]))
