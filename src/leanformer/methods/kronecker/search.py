"""Search Kronecker factor shapes for a target compression, with the fewest FLOPs.

Minimising FLOPs over the whole model alone degenerates: it crushes the attention and FFN
weights to rank-1 outer products (A 1×384 ⊗ B 384×1) and spends the parameter budget on the
embedding table. So the search is constrained:

1. Balance: every kind of weight (attention maps, FFN W1/W2, word embeddings) is compressed by
   a factor within [target/2, 2·target].
2. Full rank: a linear factorisation must be able to reach full rank: rank(A⊗B) =
   rank(A)·rank(B) ≤ min(m1, n1)·min(m2, n2), which must equal min(m, n). (This excludes
   rank-deficient shapes such as the paper's KroneckerBERT21 attention A 384×48 ⊗ B 2×16;
   explicit shapes remain possible.)
3. Budget: encoder + embeddings (with what stays dense: positions, biases, LayerNorms) are
   compressed by at least the target and at most 15% more (else the smallest overshoot).

Among the combinations left, `objective="flops"` (the default) takes the fewest FLOPs per token
(the layers' own rule: a shape whose factored path saves too little runs dense), then the most
parameters. `objective="capacity"` takes the most attention + FFN parameters (the budget goes to the
encoder, the embedding table is compressed most), then the fewest FLOPs. Why offer it: on MiniLM-L6 /
SST-2 (stage 2 only, 500 steps) attention maps compressed 4× instead of the fewest-FLOPs 9× distilled
to 79.9% instead of 75.9%, and attention 4×, FFN 8×, embeddings 16× (8.2× overall) to 79.7%.
The price is speed: those shapes ran 0.88× the dense teacher's speed at batch 32 (1.24× at batch 1),
where the fewest-FLOPs ones ran 1.12× (1.51×) (MiniLM-L6, seq 128, 2 threads, one interleaved run).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ...architectures import divisors
from ...errors import ConfigError
from .layers import FACTORED_MAX_FLOP_RATIO, factored_flops


@dataclass(frozen=True)
class Dimensions:
    hidden: int
    ffn_widths: tuple[int, ...]  # intermediate width of every FFN block (an encoder-decoder's decoder may differ)
    vocab: int
    attention_blocks: int  # attention blocks (decoder layers have two: self and cross)
    other_params: int  # encoder + embedding parameters that stay dense (biases, LayerNorms, positions)


@dataclass(frozen=True)
class Candidate:
    shape: list[int] | int | None  # A shape, embedding n, or None (dense)
    params: int
    flops: int

    def compression(self, dense: int) -> float:
        return dense / self.params


def full_rank_capable(rows: int, cols: int, a_shape: tuple[int, int]) -> bool:
    m1, n1 = a_shape
    return min(m1, n1) * min(rows // m1, cols // n1) == min(rows, cols)


def linear_candidates(rows: int, cols: int, terms: int = 1) -> list[Candidate]:
    dense = rows * cols
    out = []
    for m1 in divisors(rows):
        for n1 in divisors(cols):
            if (m1, n1) == (1, 1) or (m1, n1) == (rows, cols) or not full_rank_capable(rows, cols, (m1, n1)):
                continue
            b = (rows // m1, cols // n1)
            flops = terms * factored_flops((m1, n1), b)[0]
            if flops > FACTORED_MAX_FLOP_RATIO * 2 * dense:
                flops = 2 * dense  # runs dense (see layers.FACTORED_MAX_FLOP_RATIO)
            out.append(Candidate([m1, n1], terms * (m1 * n1 + b[0] * b[1]), flops))
    return out


def embedding_candidates(vocab: int, hidden: int, terms: int = 1) -> list[Candidate]:
    return [Candidate(n, terms * (vocab * hidden // n + n), terms * hidden) for n in divisors(hidden) if n > 1]


def _balanced(candidates: list[Candidate], dense: int, target: float) -> list[Candidate]:
    # 1% slack: A's own few parameters put an exact half (A 192×192 ⊗ B 2×2 of a 384×384 map: 3.9996×) just outside
    return [c for c in candidates if 0.99 * target / 2 <= c.compression(dense) <= 1.01 * 2 * target]


def ffn_candidates(widths: Counter, hidden: int, weights_per_block: int, terms: int, target: float) -> list[Candidate]:
    """One W1 A shape for every FFN block (W2 uses it transposed): balanced and full-rank-capable for
    each width present; params and FLOPs summed over all the FFN weights."""
    per_width = {i: {tuple(c.shape): c for c in _balanced(linear_candidates(i, hidden, terms), i * hidden, target)} for i in widths}
    shapes = set.intersection(*(set(found) for found in per_width.values()))
    return [
        Candidate(list(shape), sum(weights_per_block * n * per_width[i][shape].params for i, n in widths.items()),
                  sum(weights_per_block * n * per_width[i][shape].flops for i, n in widths.items()))
        for shape in sorted(shapes)
    ]


def search_shapes(dims: Dimensions, target: float, terms: int = 1, roles: tuple[str, ...] = (), objective: str = "flops") -> tuple[list | None, list | None, int]:
    """(attention A shape, FFN W1 A shape, embedding n) for `target`× fewer encoder+embedding parameters."""
    h, v = dims.hidden, dims.vocab
    widths = Counter(dims.ffn_widths)
    n_att = sum(r in roles for r in ("query", "key", "value", "attention_output")) * dims.attention_blocks
    ffn_weights = sum(r in roles for r in ("ffn_in", "ffn_out"))  # per FFN block
    ffn_dense = ffn_weights * sum(i * h * n for i, n in widths.items())
    dense_total = dims.other_params + n_att * h * h + ffn_dense + v * h
    keep = [Candidate(None, 0, 0)]
    att = _balanced(linear_candidates(h, h, terms), h * h, target) if n_att else keep
    ffn = ffn_candidates(widths, h, ffn_weights, terms, target) if ffn_weights and widths else keep
    emb = _balanced(embedding_candidates(v, h, terms), v * h, target) if "embeddings" in roles else keep
    if not (att and ffn and emb):
        raise ConfigError(f"target_compression {target}: no balanced Kronecker shapes for hidden {h}, FFN {', '.join(map(str, sorted(widths)))}; "
                          "set the shapes explicitly")

    combos = []
    for a in att:
        for f in ffn:
            for e in emb:
                encoder = n_att * (a.params if a.shape else h * h) + (f.params if f.shape else ffn_dense)
                params = dims.other_params + encoder + (e.params if e.shape else v * h)
                flops = n_att * a.flops + f.flops + e.flops
                combos.append((dense_total / params, flops, params, encoder, a, f, e))
    reached = [c for c in combos if c[0] >= target]
    if not reached:
        best = max(c[0] for c in combos)
        raise ConfigError(
            f"target_compression {target} is out of reach: balanced shapes give at most {best:.1f}× (the parts that stay "
            f"dense hold {dims.other_params:,} of {dense_total:,} parameters); choose a smaller target or add roles"
        )
    window = [c for c in reached if c[0] <= 1.15 * target] or [min(reached, key=lambda c: c[0])]
    if objective not in ("flops", "capacity"):
        raise ConfigError(f"unknown search objective {objective!r}; choose flops or capacity")
    rank = (lambda c: (c[1], -c[2])) if objective == "flops" else (lambda c: (-c[3], c[1]))
    _, _, _, _, a, f, e = min(window, key=rank)
    return a.shape, f.shape, (e.shape or 0)
