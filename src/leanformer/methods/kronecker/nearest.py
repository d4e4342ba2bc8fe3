"""Nearest Kronecker product (Van Loan & Pitsianis): the best Σᵢ Aᵢ⊗Bᵢ approximation of W.

Rearranging W (m1·m2 × n1·n2) into R(W) (m1·n1 × m2·n2), whose rows are the vectorised
m2×n2 blocks of W, turns ‖W − A⊗B‖_F into ‖R(W) − vec(A)·vec(B)ᵀ‖_F: a rank-1 approximation,
solved by the top singular triplet. Summing `terms` products uses the top-`terms` triplets, and
the error is sqrt(Σ_{i>terms} σᵢ²).
"""

from __future__ import annotations

import torch


def rearrange(weight: torch.Tensor, a_shape: tuple[int, int], b_shape: tuple[int, int]) -> torch.Tensor:
    """R(W): row (i, j) holds the block W[i·m2:(i+1)·m2, j·n2:(j+1)·n2], flattened row-major."""
    (m1, n1), (m2, n2) = a_shape, b_shape
    return weight.reshape(m1, m2, n1, n2).permute(0, 2, 1, 3).reshape(m1 * n1, m2 * n2)


def kron_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Σᵢ aᵢ ⊗ bᵢ for stacked factors a (terms, m1, n1), b (terms, m2, n2)."""
    return sum(torch.kron(a[i], b[i]) for i in range(a.shape[0]))


def nearest_kronecker_product(
    weight: torch.Tensor, a_shape: tuple[int, int], b_shape: tuple[int, int], terms: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Factors (terms, m1, n1), (terms, m2, n2) minimising ‖W − Σ Aᵢ⊗Bᵢ‖_F, and all singular values.

    The square root of σᵢ goes to each factor so A and B have comparable scales (better for training).
    """
    (m1, n1), (m2, n2) = a_shape, b_shape
    if weight.shape != (m1 * m2, n1 * n2):
        raise ValueError(f"weight {tuple(weight.shape)} is not ({m1}·{m2}) × ({n1}·{n2})")
    r = rearrange(weight.detach().double(), a_shape, b_shape)
    u, s, vh = torch.linalg.svd(r, full_matrices=False)
    if terms > s.numel():
        raise ValueError(f"{terms} Kronecker terms requested but R(W) has rank at most {s.numel()}")
    root = s[:terms].sqrt()
    a = (u[:, :terms] * root).T.reshape(terms, m1, n1)
    b = (vh[:terms] * root[:, None]).reshape(terms, m2, n2)
    return a.to(weight.dtype), b.to(weight.dtype), s.to(weight.dtype)
