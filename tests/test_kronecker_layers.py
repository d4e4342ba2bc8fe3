"""Kronecker factors against independent computations: torch.kron, SVD error, dense F.linear."""


import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from leanformer.methods.kronecker import layers as kron_layers
from leanformer.methods.kronecker.layers import PLANS, KroneckerEmbedding, KroneckerLinear
from leanformer.methods.kronecker.nearest import nearest_kronecker_product, rearrange


def test_nkp_recovers_an_exact_kronecker_product():
    torch.manual_seed(0)
    a, b = torch.randn(6, 4), torch.randn(5, 3)
    w = torch.kron(a, b)
    fa, fb, s = nearest_kronecker_product(w, (6, 4), (5, 3))
    assert (torch.kron(fa[0], fb[0]) - w).abs().max() < 1e-5
    assert s[1:].abs().max() < 1e-4 * s[0]


@pytest.mark.parametrize("terms", [1, 2, 3])
def test_nkp_error_is_the_dropped_singular_values(terms):
    torch.manual_seed(terms)
    w = torch.randn(12, 20, dtype=torch.float64)
    a, b, s = nearest_kronecker_product(w, (3, 4), (4, 5), terms)
    approx = sum(torch.kron(a[i], b[i]) for i in range(terms))
    expected = torch.sqrt((s[terms:] ** 2).sum())
    torch.testing.assert_close(torch.linalg.norm(w - approx), expected, rtol=1e-10, atol=1e-10)
    # the singular values are those of the rearranged matrix, computed independently
    torch.testing.assert_close(s, torch.linalg.svdvals(rearrange(w, (3, 4), (4, 5))))


def test_rearrangement_rows_are_the_blocks():
    w = torch.arange(6 * 4, dtype=torch.float64).reshape(6, 4)  # m1=3, m2=2, n1=2, n2=2
    r = rearrange(w, (3, 2), (2, 2))
    for i in range(3):
        for j in range(2):
            torch.testing.assert_close(r[i * 2 + j], w[i * 2:(i + 1) * 2, j * 2:(j + 1) * 2].reshape(-1))


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def kron_shapes(draw):
    m = draw(st.sampled_from([4, 6, 8, 12, 16, 24]))
    n = draw(st.sampled_from([4, 6, 8, 12, 16, 24]))
    m1 = draw(st.sampled_from(_divisors(m)))
    n1 = draw(st.sampled_from(_divisors(n)))
    terms = draw(st.integers(1, 3))
    lead = draw(st.sampled_from([(5,), (2, 3), (1, 7)]))
    return m, n, (m1, n1), terms, lead


@settings(max_examples=60, deadline=None)
@given(kron_shapes(), st.sampled_from(["factored", "dense", "auto"]))
def test_forward_equals_dense_linear_with_the_materialised_kron(shape, mode):
    m, n, a_shape, terms, lead = shape
    torch.manual_seed(m * 100 + n)
    layer = KroneckerLinear(n, m, a_shape, terms=terms, forward_mode=mode).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(*lead, n, dtype=torch.float64)
    w = sum(torch.kron(layer.A[i], layer.B[i]) for i in range(terms))
    torch.testing.assert_close(layer(x), F.linear(x, w, layer.bias), rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(kron_shapes(), st.sampled_from(PLANS), st.booleans())
def test_every_plan_equals_dense_linear_with_the_materialised_kron(shape, plan, grad):
    m, n, a_shape, terms, lead = shape
    torch.manual_seed(m * 100 + n)
    layer = KroneckerLinear(n, m, a_shape, terms=terms).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(*lead, n, dtype=torch.float64)
    w = sum(torch.kron(layer.A[i], layer.B[i]) for i in range(terms))
    with torch.set_grad_enabled(grad):
        torch.testing.assert_close(layer.run_plan(x, plan), F.linear(x, w, layer.bias), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("plan", PLANS)
def test_every_plan_gives_the_factors_the_gradient_of_the_materialised_kron(plan):
    torch.manual_seed(0)
    layer = KroneckerLinear(12, 8, (2, 3), terms=2).double()
    x, g = torch.randn(5, 12, dtype=torch.float64), torch.randn(5, 8, dtype=torch.float64)
    (layer.run_plan(x, plan) * g).sum().backward()
    got = layer.A.grad.clone(), layer.B.grad.clone()
    layer.zero_grad()
    w = sum(torch.kron(layer.A[i], layer.B[i]) for i in range(2))
    (F.linear(x, w, layer.bias) * g).sum().backward()
    torch.testing.assert_close(got, (layer.A.grad, layer.B.grad), rtol=1e-10, atol=1e-10)


def test_auto_measures_once_per_shape_token_bucket_and_regime(monkeypatch):
    monkeypatch.setattr(kron_layers, "_MEASURED_PLANS", {})
    calls = []
    real = KroneckerLinear._measure_plans
    monkeypatch.setattr(KroneckerLinear, "_measure_plans", lambda self, x, regime: calls.append(regime) or real(self, x, regime))
    layer = KroneckerLinear(24, 24, (2, 3)).eval()
    other = KroneckerLinear(24, 24, (2, 3)).eval()  # same shape: shares the measurement
    x = torch.randn(2, 5, 24)
    with torch.no_grad():
        first = layer(x)
        assert layer.plan_for(x) in PLANS and calls == ["inference"]
        other(x), layer(torch.randn(3, 4, 24))  # 10 and 12 tokens: both in the 16-token bucket
        assert calls == ["inference"]
        layer(torch.randn(4, 5, 24))  # 20 tokens: 32-token bucket
        assert calls == ["inference", "inference"]
    torch.testing.assert_close(first, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)
    # training measures forward + backward once, and leaves the factors' .grad to the real backward
    layer.train()(x).sum().backward()
    other.train()(x)
    assert calls == ["inference", "inference", "train"]
    torch.testing.assert_close(layer.A.grad.sum(), torch.func.grad(lambda a: F.linear(x, torch.kron(a[0], layer.B[0])).sum())(layer.A).sum())
    # tracing (ONNX export) uses the FLOP rule
    with torch.no_grad():
        torch.jit.trace(layer.eval(), torch.randn(64, 24), check_trace=False)
    assert len(calls) == 3
def test_inference_dense_weight_is_rebuilt_when_a_factor_changes():
    torch.manual_seed(0)
    layer = KroneckerLinear(12, 8, (2, 3)).eval()
    x = torch.randn(4, 12)
    with torch.no_grad():
        before = layer.run_plan(x, "dense")
        layer.A.mul_(2)  # in place, as an optimizer step or load_state_dict does
        after = layer.run_plan(x, "dense")
    torch.testing.assert_close(after, F.linear(x, torch.kron(layer.A[0], layer.B[0]), layer.bias))
    torch.testing.assert_close(after - layer.bias, 2 * (before - layer.bias))


def test_from_linear_keeps_an_exact_kronecker_weight_and_the_bias():
    torch.manual_seed(0)
    linear = nn.Linear(12, 8)
    with torch.no_grad():
        linear.weight.copy_(torch.kron(torch.randn(2, 3), torch.randn(4, 4)))
    layer = KroneckerLinear.from_linear(linear, (2, 3))
    x = torch.randn(4, 12)
    torch.testing.assert_close(layer(x), linear(x), rtol=1e-5, atol=1e-5)
    assert layer.A.numel() + layer.B.numel() == 6 + 16


def test_gradients_flow_to_both_factors():
    layer = KroneckerLinear(16, 8, (2, 4), forward_mode="factored")
    layer(torch.randn(3, 16)).sum().backward()
    assert layer.A.grad.abs().sum() > 0 and layer.B.grad.abs().sum() > 0


def test_embedding_lookup_equals_rows_of_the_kron_table():
    torch.manual_seed(0)
    dense = nn.Embedding(50, 24, padding_idx=0)
    emb = KroneckerEmbedding.from_embedding(dense, n=4, terms=2)
    ids = torch.tensor([[1, 5, 49], [0, 3, 3]])
    table = sum(torch.kron(emb.A[i], emb.B[i]) for i in range(2))
    assert table.shape == (50, 24)
    torch.testing.assert_close(emb(ids), table[ids])
    assert emb.A.shape == (2, 50, 6) and emb.B.shape == (2, 1, 4)


def test_embedding_of_an_exact_kronecker_table_is_reproduced():
    torch.manual_seed(0)
    dense = nn.Embedding(30, 16)
    with torch.no_grad():
        dense.weight.copy_(torch.kron(torch.randn(30, 4), torch.randn(1, 4)))
    emb = KroneckerEmbedding.from_embedding(dense, n=4)
    ids = torch.arange(30)
    assert (emb(ids) - dense(ids)).abs().max() < 1e-5


def test_shapes_that_do_not_divide_are_refused():
    with pytest.raises(ValueError, match="does not divide"):
        KroneckerLinear(12, 8, (3, 5))
    with pytest.raises(ValueError, match="does not divide"):
        KroneckerEmbedding(10, 12, n=5)


def test_flops_follow_the_cheaper_order():
    layer = KroneckerLinear(384, 384, (2, 2), forward_mode="factored")  # B 192x192
    # b_first: 2*(n1*n2*m2 + m1*n1*m2) = 2*(2*192*192 + 2*2*192)
    assert layer.flops_per_token() == 2 * (2 * 192 * 192 + 2 * 2 * 192)
    assert KroneckerLinear(384, 384, (2, 2), forward_mode="dense").flops_per_token() == 2 * 384 * 384
