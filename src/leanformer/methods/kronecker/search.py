"""Search Kronecker factor shapes for a target compression, with the fewest FLOPs.

Candidates are every A shape (divisor of rows × divisor of cols) for the attention weights
(hidden × hidden) and FFN W1 (intermediate × hidden; W2 transposed), plus "keep dense", and every
embedding n dividing hidden (plus "keep dense"). A combination is feasible when the parameters of
encoder + embeddings land in [budget/1.25, budget], budget = dense parameters / target; among
feasible ones the fewest FLOPs per token win, ties going to more parameters (more capacity).
FLOPs follow the layers' own rule (a shape runs dense when factoring saves too little).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError
from .layers import FACTORED_MAX_FLOP_RATIO, factored_flops


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True)
class Dimensions:
    hidden: int
    intermediate: int
    vocab: int
    layers: int  # FFN blocks
    attention_blocks: int  # attention blocks (decoder layers have two: self and cross)
    other_params: int  # encoder + embedding parameters that stay dense (biases, LayerNorms, positions)


def _linear_options(rows: int, cols: int, terms: int, count: int):
    """(shape or None, params, flops) for one kind of weight used `count` times per model."""
    dense = rows * cols
    options = [(None, count * dense, count * 2 * dense)]
    for m1 in divisors(rows):
        for n1 in divisors(cols):
            a, b = (m1, n1), (rows // m1, cols // n1)
            params = terms * (m1 * n1 + b[0] * b[1])
            flops = terms * factored_flops(a, b)[0]
            if flops > FACTORED_MAX_FLOP_RATIO * 2 * dense:
                flops = 2 * dense  # runs dense (see layers.FACTORED_MAX_FLOP_RATIO)
            options.append(([m1, n1], count * params, count * flops))
    return options


def search_shapes(dims: Dimensions, target: float, terms: int = 1, roles: tuple[str, ...] = ()) -> tuple[list | None, list | None, int]:
    """(attention A shape, FFN W1 A shape, embedding n) for `target`× fewer encoder+embedding parameters."""
    h, i, v, layers = dims.hidden, dims.intermediate, dims.vocab, dims.layers
    n_att = sum(r in roles for r in ("query", "key", "value", "attention_output")) * dims.attention_blocks
    n_ffn = sum(r in roles for r in ("ffn_in", "ffn_out")) * layers
    att = _linear_options(h, h, terms, n_att) if n_att else [(None, 0, 0)]
    ffn = _linear_options(i, h, terms, n_ffn) if n_ffn else [(None, 0, 0)]
    emb = [(0, v * h, 0)]
    if "embeddings" in roles:
        emb += [(n, terms * (v * h // n + n), terms * h) for n in divisors(h) if n > 1]
    dense_total = dims.other_params + (h * h * n_att) + (i * h * n_ffn) + v * h
    budget = dense_total / target

    p = lambda opts: np.array([o[1] for o in opts], dtype=np.float64)  # noqa: E731
    f = lambda opts: np.array([o[2] for o in opts], dtype=np.float64)  # noqa: E731
    params = dims.other_params + p(att)[:, None, None] + p(ffn)[None, :, None] + p(emb)[None, None, :]
    flops = f(att)[:, None, None] + f(ffn)[None, :, None] + f(emb)[None, None, :]
    feasible = (params <= budget) & (params >= budget / 1.25)
    if not feasible.any():
        smallest = params.min()
        raise ConfigError(
            f"target_compression {target} is out of reach: the most compressed shapes give {dense_total / smallest:.1f}×; "
            "choose a smaller target or add roles"
        )
    # fewest FLOPs, then most parameters
    score = np.where(feasible, flops - params / (params.max() + 1.0), np.inf)
    a, b, c = np.unravel_index(np.argmin(score), score.shape)
    return att[a][0], ffn[b][0], emb[c][0]
