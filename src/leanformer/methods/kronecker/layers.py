"""`KroneckerLinear` and `KroneckerEmbedding`: weights stored and applied as Σᵢ Aᵢ ⊗ Bᵢ.

Forward without forming A⊗B. Row-major, for one token x of length n = n1·n2: X = x as n1×n2,
Y = A·X·Bᵀ (m1×m2), y = Y flattened. All tokens are processed together:
- the B contraction `X @ Bᵀ` folds every token into one GEMM (no copy);
- the A contraction is a batch of tiny GEMMs when A is small (cheaper than moving the
  activations), else one GEMM over all tokens after a transpose.
Either contraction may go first; the order with fewer FLOPs is used.

`forward_mode`: "factored" always uses the factors, "dense" materialises W = Σ Aᵢ⊗Bᵢ (costs
one dense weight per call) and calls `F.linear`, and "auto" (default) uses the factored path
only when its FLOPs are at most `FACTORED_MAX_FLOP_RATIO` of the dense matmul's: a
deterministic rule (the same path on every run), derived from measuring both paths per shape
(benchmarks/kronecker_forward.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .nearest import kron_sum, nearest_kronecker_product

# Factored when its FLOPs are at most this fraction of the dense matmul's. Measured on 120
# shape/token cases (benchmarks/kronecker_forward.md): the factored path wins at every FLOP ratio
# up to 0.5, the largest a non-trivial factorisation has, except for a large A with a tiny B at
# 4096 tokens (the transposes around the A contraction then cost more than they save).
FACTORED_MAX_FLOP_RATIO = 0.75
# A contraction as batched tiny GEMMs when A has at most this many entries.
SMALL_A = 64

FORWARD_MODES = ("auto", "factored", "dense")


def _contract_a(a: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """(T, n1, k) -> (T, m1, k): Y[t] = A · Z[t]."""
    if a.numel() <= SMALL_A:
        return torch.matmul(a, z)  # T tiny GEMMs: no copy of the activations
    t, n1, k = z.shape
    y = a @ z.transpose(0, 1).reshape(n1, t * k)  # one GEMM over all tokens
    return y.reshape(a.shape[0], t, k).transpose(0, 1)


def factored_flops(a_shape: tuple[int, int], b_shape: tuple[int, int]) -> tuple[int, str]:
    """FLOPs per token of the cheaper contraction order, and that order ('b_first' or 'a_first')."""
    (m1, n1), (m2, n2) = a_shape, b_shape
    b_first = 2 * (n1 * n2 * m2 + m1 * n1 * m2)
    a_first = 2 * (m1 * n1 * n2 + m1 * n2 * m2)
    return (b_first, "b_first") if b_first <= a_first else (a_first, "a_first")


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
        if self.forward_mode != "auto":
            return self.forward_mode == "factored"
        flops, _ = factored_flops(self.a_shape, self.b_shape)
        return self.terms * flops <= FACTORED_MAX_FLOP_RATIO * 2 * self.in_features * self.out_features

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._input(x)
        if not self.uses_factored_path():
            return F.linear(x, self._dense_weight(), self.bias)
        lead = x.shape[:-1]
        n1, n2 = self.a_shape[1], self.b_shape[1]
        tokens = x.reshape(-1, n1, n2)
        _, order = factored_flops(self.a_shape, self.b_shape)
        factors_a, factors_b = self._factors()
        y = None
        for i in range(self.terms):
            a, b = factors_a[i], factors_b[i]
            if order == "b_first":
                term = _contract_a(a, self._between(torch.matmul(tokens, b.T)))
            else:
                term = torch.matmul(self._between(_contract_a(a, tokens)), b.T)
            y = term if y is None else y + term
        y = y.reshape(*lead, self.out_features)
        return y + self.bias if self.bias is not None else y

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
