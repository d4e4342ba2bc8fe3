"""`KroneckerLinear` and `KroneckerEmbedding`: weights stored and applied as Σᵢ Aᵢ ⊗ Bᵢ.

Forward without forming A⊗B. Row-major, for one token x of length n = n1·n2: X = x as n1×n2,
Y = A·X·Bᵀ (m1×m2), y = Y flattened. All tokens are processed together, every contraction is
one GEMM, and a plan is (which factor goes first, how the A contraction lays out the tokens):
- the B contraction `X @ Bᵀ` folds every token into one GEMM (no copy);
- the A contraction is one GEMM either over (token, column) rows against Aᵀ ("rows", a copy of
  the activation first) or over all tokens at once with A on the left ("tokens", the activation
  transposed A-major first).
The same layer can be fastest with any of the four plans or with the materialised weight,
depending on the shape, the token count and the CPU (benchmarks/kronecker_forward.md), so:

`forward_mode`: "factored" always uses the factors (the order with fewer FLOPs, "tokens"
layout), "dense" materialises W = Σ Aᵢ⊗Bᵢ and calls `F.linear`, and "auto" (default) decides by
measuring: the first call for a (shape, token-count power of two, regime, threads, dtype) times
every plan on that input, forward only in inference (no autograd) and forward + backward in
training, and keeps the fastest for the rest of the process. In inference the dense plan keeps its
materialised weight between calls (rebuilt when a factor changes), so it costs exactly an
`nn.Linear`. Tracing (ONNX export), FLOP counts and layers with state in their forward
(quantization's EMA ranges, in train mode) use the FLOP rule instead: factored iff its FLOPs are at
most `FACTORED_MAX_FLOP_RATIO` of the dense matmul's. Set "factored" for bit-reproducible training
across runs: measured plans can differ between runs.
Every plan computes the same product; which one runs changes float rounding only.
"""

from __future__ import annotations

import math
import statistics

import torch
import torch.nn.functional as F
from torch import nn

from ...measure.latency import time_call_ms
from .nearest import kron_sum, nearest_kronecker_product

# Factored when its FLOPs are at most this fraction of the dense matmul's (training, export, FLOP
# counts). A non-trivial factorisation has a FLOP ratio of at most about 0.5.
FACTORED_MAX_FLOP_RATIO = 0.75

FORWARD_MODES = ("auto", "factored", "dense")
PLANS = ("b_first/rows", "b_first/tokens", "a_first/rows", "a_first/tokens", "dense")

# Measured plans, process-wide: (layer kind, regime, shapes, terms, token bucket, threads, dtype, device) -> plan.
_MEASURED_PLANS: dict[tuple, str] = {}
_TUNING_REPEATS = 5


def _contract_a(a: torch.Tensor, z: torch.Tensor, layout: str, a_shape: tuple[int, int], k: int) -> torch.Tensor:
    """(T, n1, k) -> (T, m1, k) view: Y[t] = A · Z[t], as one GEMM. Shapes come from the layer's
    constants and T stays -1, so an exported graph reshapes by constants (no Shape → Gather →
    Concat chain per reshape, ~1000 nodes in a MiniLM student)."""
    m1, n1 = a_shape
    if layout == "rows":  # rows (t, k) of length n1 against Aᵀ
        return (z.transpose(1, 2).reshape(-1, n1) @ a.T).view(-1, k, m1).transpose(1, 2)
    return (a @ z.transpose(0, 1).reshape(n1, -1)).view(m1, -1, k).transpose(0, 1)  # A-major


def order_flops(a_shape: tuple[int, int], b_shape: tuple[int, int]) -> dict[str, int]:
    """FLOPs per token of each contraction order."""
    (m1, n1), (m2, n2) = a_shape, b_shape
    return {"b_first": 2 * (n1 * n2 * m2 + m1 * n1 * m2), "a_first": 2 * (m1 * n1 * n2 + m1 * n2 * m2)}


def factored_flops(a_shape: tuple[int, int], b_shape: tuple[int, int]) -> tuple[int, str]:
    """FLOPs per token of the cheaper contraction order, and that order ('b_first' or 'a_first')."""
    flops = order_flops(a_shape, b_shape)
    order = min(flops, key=lambda o: (flops[o], o != "b_first"))  # ties: b_first
    return flops[order], order


class KroneckerLinear(nn.Module):
    """y = (Σᵢ Aᵢ ⊗ Bᵢ) x + bias, with A (terms, m1, n1), B (terms, m2, n2); bias stays dense."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        a_shape: tuple[int, int],
        terms: int = 1,
        bias: bool = True,
        forward_mode: str = "auto",
    ):
        super().__init__()
        m1, n1 = a_shape
        if out_features % m1 or in_features % n1:
            raise ValueError(f"A shape {a_shape} does not divide the weight ({out_features}, {in_features})")
        if forward_mode not in FORWARD_MODES:
            raise ValueError(f"forward_mode must be one of {FORWARD_MODES}, got {forward_mode!r}")
        self.in_features, self.out_features, self.terms = in_features, out_features, terms
        self.a_shape = (m1, n1)
        self.b_shape = (out_features // m1, in_features // n1)
        self.A = nn.Parameter(torch.empty(terms, *self.a_shape))
        self.B = nn.Parameter(torch.empty(terms, *self.b_shape))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.forward_mode = forward_mode
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Kaiming-uniform-like scale for the product: each factor gets the square root of it.
        bound = (1.0 / math.sqrt(self.in_features)) ** 0.5
        nn.init.uniform_(self.A, -bound, bound)
        nn.init.uniform_(self.B, -bound, bound)

    @classmethod
    def from_linear(cls, linear: nn.Linear, a_shape: tuple[int, int], terms: int = 1, forward_mode: str = "auto") -> "KroneckerLinear":
        """Initialised by the nearest Kronecker product of `linear.weight`; the bias is copied."""
        module = cls(linear.in_features, linear.out_features, a_shape, terms, linear.bias is not None, forward_mode)
        a, b, _ = nearest_kronecker_product(linear.weight, module.a_shape, module.b_shape, terms)
        with torch.no_grad():
            module.A.copy_(a)
            module.B.copy_(b)
            if linear.bias is not None:
                module.bias.copy_(linear.bias)
        return module.to(linear.weight.device, linear.weight.dtype)

    @property
    def weight(self) -> torch.Tensor:
        """The materialised dense weight (for inspection and export; the forward avoids it)."""
        return kron_sum(self.A, self.B)

    def uses_factored_path(self) -> bool:
        """The FLOP rule's choice (export, FLOP counts, stateful training); otherwise "auto" measures."""
        if self.forward_mode != "auto":
            return self.forward_mode == "factored"
        flops, _ = factored_flops(self.a_shape, self.b_shape)
        return self.terms * flops <= FACTORED_MAX_FLOP_RATIO * 2 * self.in_features * self.out_features

    def rule_plan(self) -> str:
        # "tokens" layout: faster than "rows" for 101 of 158 measured shapes (mean 1.10× vs 1.26× off the
        # better of the two; benchmarks/kronecker_forward.md) and ~3× faster in onnxruntime, whose
        # Transpose is slow for the rows layout's permutation
        return f"{factored_flops(self.a_shape, self.b_shape)[1]}/tokens" if self.uses_factored_path() else "dense"

    def candidate_plans(self) -> tuple[str, ...]:
        """Plans worth measuring: the dense one and each factored order with no more FLOPs than the
        dense matmul (A 1×768 ⊗ B 768×1 B-first is an outer product: 2× the dense FLOPs). Subclasses
        that act between the contractions (quantization) keep the rule's order."""
        flops = order_flops(self.a_shape, self.b_shape)
        dense = 2 * self.in_features * self.out_features
        return tuple(p for p in PLANS if p == "dense" or self.terms * flops[p.split("/")[0]] <= dense)

    # Hooks for composed methods (quantization replaces them); identity here.
    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.A, self.B

    def _between(self, z: torch.Tensor) -> torch.Tensor:
        """The activation between the two contractions."""
        return z

    def _dense_weight(self) -> torch.Tensor:
        return self.weight

    def _inference_dense_weight(self) -> torch.Tensor:
        # Kept between inference calls; a factor's version changes with every in-place update.
        key = (self.A._version, self.B._version, self.A.data_ptr(), self.B.data_ptr(), self.A.dtype)
        cached = getattr(self, "_cached_dense", None)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                self._cached_dense = cached = (key, self._dense_weight())
        return cached[1]

    def _regime(self, x: torch.Tensor) -> str | None:
        """'train' (forward + backward) or 'inference' when this call may run a measured plan;
        None: the FLOP rule (fixed modes, tracing, and layers whose forward has state to update)."""
        if self.forward_mode != "auto" or torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
            return None
        if self.training and not self.stateless_forward:  # measuring calls it ~20 times: EMA ranges would move
            return None
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.A.requires_grad or self.B.requires_grad)
        return "train" if needs_grad else "inference"

    # False in subclasses whose forward updates state in train mode (quantization's EMA ranges).
    stateless_forward = True

    def plan_for(self, x: torch.Tensor) -> str:
        """The plan `forward` runs on `x` (measured once per shape, token bucket and regime under "auto")."""
        regime = self._regime(x)
        if regime is None:
            return self.rule_plan()
        tokens = max(1, x.numel() // self.in_features)
        key = (type(self).__name__, regime, self.a_shape, self.b_shape, self.terms, 1 << (tokens - 1).bit_length(),
               torch.get_num_threads(), x.dtype, x.device.type)
        if key not in _MEASURED_PLANS:
            _MEASURED_PLANS[key] = self._measure_plans(x, regime)
            if _MEASURED_PLANS[key] != "dense":
                self._cached_dense = None  # measuring built it; keep RAM at the factors' size
        return _MEASURED_PLANS[key]

    def _measure_plans(self, x: torch.Tensor, regime: str) -> str:
        plans = self.candidate_plans()
        if regime == "train":  # forward + backward into the factors and the input, leaving .grad alone
            x = x.detach().requires_grad_(x.requires_grad)
            wrt = [t for t in (x, self.A, self.B) if t.requires_grad]
            grad_out = torch.randn(*x.shape[:-1], self.out_features, dtype=x.dtype, device=x.device)
            calls = {p: (lambda p=p: torch.autograd.grad(self.run_plan(x, p), wrt, grad_out)) for p in plans}
        else:
            calls = {p: (lambda p=p: self.run_plan(x, p)) for p in plans}
        times: dict[str, list[float]] = {p: [] for p in plans}
        for call in calls.values():  # warm-up (allocator, kernel selection)
            call()
        for _ in range(_TUNING_REPEATS):  # interleaved, so drift hits every plan alike
            for plan, call in calls.items():
                times[plan].append(time_call_ms(call, x.device))  # CUDA events on a GPU
        return min(plans, key=lambda p: statistics.median(times[p]))

    def run_plan(self, x: torch.Tensor, plan: str) -> torch.Tensor:
        """This layer's output computed with `plan` (one of PLANS)."""
        x = self._input(x)
        if plan == "dense":
            weight = self._dense_weight() if torch.is_grad_enabled() else self._inference_dense_weight()
            return F.linear(x, weight, self.bias)
        order, layout = plan.split("/")
        lead = x.shape[:-1]
        (m1, n1), (m2, n2) = self.a_shape, self.b_shape
        tokens = x.reshape(-1, n1, n2)
        factors_a, factors_b = self._factors()
        y = None
        for i in range(self.terms):
            a, b = factors_a[i], factors_b[i]
            if order == "b_first":
                z = self._between((tokens.reshape(-1, n2) @ b.T).view(-1, n1, m2))
                term = _contract_a(a, z, layout, self.a_shape, m2).reshape(-1, m1 * m2)
            else:
                z = self._between(_contract_a(a, tokens, layout, self.a_shape, n2))
                term = (z.reshape(-1, n2) @ b.T).view(-1, m1 * m2)
            y = term if y is None else y + term
        y = y.reshape(*lead, self.out_features)
        return y + self.bias if self.bias is not None else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_plan(x, self.plan_for(x))

    def flops_per_token(self, seq_len: int | None = None) -> int:
        if self.uses_factored_path():
            return self.terms * factored_flops(self.a_shape, self.b_shape)[0]
        return 2 * self.in_features * self.out_features

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, A={self.a_shape}, "
            f"B={self.b_shape}, terms={self.terms}, bias={self.bias is not None}, forward_mode={self.forward_mode}"
        )


class KroneckerEmbedding(nn.Module):
    """Token table (v × d) = Σᵢ Aᵢ (v × d/n) ⊗ Bᵢ (1 × n): each token keeps its own row of A and
    one shared row B expands it to width d; a lookup costs O(d)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, n: int, terms: int = 1, padding_idx: int | None = None):
        super().__init__()
        if embedding_dim % n:
            raise ValueError(f"embedding n={n} does not divide the embedding width {embedding_dim}")
        self.num_embeddings, self.embedding_dim, self.n, self.terms = num_embeddings, embedding_dim, n, terms
        self.padding_idx = padding_idx
        self.A = nn.Parameter(torch.randn(terms, num_embeddings, embedding_dim // n) * 0.02)
        self.B = nn.Parameter(torch.ones(terms, 1, n))

    @classmethod
    def from_embedding(cls, embedding: nn.Embedding, n: int, terms: int = 1) -> "KroneckerEmbedding":
        v, d = embedding.weight.shape
        module = cls(v, d, n, terms, embedding.padding_idx)
        a, b, _ = nearest_kronecker_product(embedding.weight, (v, d // n), (1, n), terms)
        with torch.no_grad():
            module.A.copy_(a)
            module.B.copy_(b)
        return module.to(embedding.weight.device, embedding.weight.dtype)

    @property
    def weight(self) -> torch.Tensor:
        return kron_sum(self.A, self.B)

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:  # hook for composed methods
        return self.A, self.B

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        a, b = self._factors()
        rows = a[:, input_ids]  # (terms, ..., d/n)
        out = (rows.unsqueeze(-1) * b.reshape(self.terms, *([1] * input_ids.dim()), 1, self.n)).sum(0)
        return out.reshape(*input_ids.shape, self.embedding_dim)

    def flops_per_token(self, seq_len: int | None = None) -> int:
        return self.terms * self.embedding_dim

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, n={self.n}, terms={self.terms}"
