"""`MaskedLinear`: a linear layer whose weight is multiplied by a block mask computed from scores.

The weight (out × in) is cut into a grid of R × C equal blocks; the mask has one entry per block,
expanded to the elements. Mask methods (`PruningState.method`):
- `sigmoid_threshold`: M = 1[sigmoid(S) > τ] with a straight-through gradient to the scores S,
  so dL/dS_block = Σ_block dL/dW'·W (movement pruning), with W' = W ⊙ M;
- `topk`: the (1 − sparsity) fraction of blocks with the highest scores, straight-through too;
- `magnitude`: the blocks with the largest Σ|W| (a baseline; no scores, no gradient to the mask).
The output-bias entry of a row is masked when every block of that row is masked (no gradient to
the scores from the bias), so whole heads and FFN neurons can vanish.

Scores can be shared: a layer may read its mask from an *owner* layer's scores, transposed if
needed, e.g. W2's columns reuse W1's row scores (one score per FFN dimension), and a head's K, V
rows and attention-output columns reuse its Q row scores. Only the owner holds the parameter
(`mask_scores`); a shared score receives the movement gradient of every layer that uses it.

The weight and bias keep the names and the Parameter objects of the `nn.Linear` they replace.
τ and the sparsity are read from a `PruningState` shared by all layers, which the schedule
callback updates every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SCORES = "mask_scores"  # parameter name of the scores (its suffix gets its own learning rate)


@dataclass
class PruningState:
    """What every masked layer of one model reads at each forward: set by the schedule."""

    method: str
    threshold: float = 0.0  # τ_t on sigmoid(scores) (sigmoid_threshold)
    sparsity: float = 0.0  # fraction of blocks pruned per score matrix (topk, magnitude)
    regularization: float = 0.0  # λ_t


def expand_blocks(block_mask: torch.Tensor, shape: tuple[int, int], parts: int = 1) -> torch.Tensor:
    """(R, C) block values -> (out, in) elements; gradients sum over each block. With `parts` > 1 the
    rows are that many stacked projections (fused [Q; K; V], gated [up; gate]) masked alike."""
    r, c = block_mask.shape
    out, inp = shape
    return block_mask[None, :, None, :, None].expand(parts, r, out // (parts * r), c, inp // c).reshape(out, inp)


def block_sums(values: torch.Tensor, grid: tuple[int, int], parts: int = 1) -> torch.Tensor:
    """(out, in) elements -> (R, C): the sum over each block (and over the stacked parts)."""
    r, c = grid
    out, inp = values.shape
    return values.reshape(parts, r, out // (parts * r), c, inp // c).sum(dim=(0, 2, 4))


def keep_top(importance: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Binary mask keeping the (1 − sparsity) fraction of entries with the largest importance (≥ 1)."""
    n = importance.numel()
    k = max(1, n - round(sparsity * n))
    mask = torch.zeros(n, dtype=importance.dtype, device=importance.device)
    if k >= n:
        return mask.fill_(1.0).reshape(importance.shape)
    mask[importance.flatten().topk(k).indices] = 1.0
    return mask.reshape(importance.shape)


def straight_through(binary: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Forward: `binary` exactly; backward: the gradient goes to `scores` unchanged."""
    return binary + (scores - scores.detach())


class MaskedLinear(nn.Module):
    """y = x · (W ⊙ M)ᵀ + b ⊙ m_rows, with M expanded from a (R, C) block mask."""

    def __init__(
        self,
        weight: nn.Parameter,
        bias: nn.Parameter | None,
        grid: tuple[int, int],
        state: PruningState,
        group: str,
        owner: "MaskedLinear | None" = None,
        transposed: bool = False,
        parts: int = 1,
    ):
        super().__init__()
        out, inp = weight.shape
        r, c = grid
        if out % (parts * r) or inp % c:
            raise ValueError(f"block grid {grid} does not divide the weight ({out}, {inp}) in {parts} part(s)")
        self.in_features, self.out_features = inp, out
        self.grid = (r, c)
        self.parts = parts  # row blocks repeat over this many stacked projections (see expand_blocks)
        self.group = group  # 'attention' or 'ffn': the regulariser's groups
        self.transposed = transposed
        self.weight = weight
        self.bias = bias
        # Plain attributes, not submodules: the state is shared, the owner is another layer of the model.
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "members", [])  # (layer, transposed) of every layer using these scores
        source = owner if owner is not None else self
        expected = (c, r) if transposed else (r, c)
        if source.grid != expected:
            raise ValueError(f"score grid {source.grid} of the owner does not fit this layer's grid {grid} (transposed={transposed})")
        source.members.append((self, transposed))
        if owner is None and state.method != "magnitude":
            self.mask_scores = nn.Parameter(torch.zeros(r, c, device=weight.device, dtype=weight.dtype))

    @classmethod
    def from_linear(cls, linear: nn.Linear, grid: tuple[int, int], state: PruningState, group: str, owner=None, transposed=False,
                    parts: int = 1) -> "MaskedLinear":
        """Wraps the same weight and bias Parameters (no copy); scores start at 0."""
        return cls(linear.weight, linear.bias, grid, state, group, owner, transposed, parts)

    @property
    def owns_scores(self) -> bool:
        return self.owner is None and SCORES in self._parameters

    def _owner_mask(self) -> torch.Tensor:
        """The owner's (R, C) binary block mask, straight-through to its scores where it has them."""
        state = self.state
        if state.method == "magnitude":
            with torch.no_grad():
                importance = sum(
                    (block_sums(m.weight.abs(), m.grid, m.parts).T if t else block_sums(m.weight.abs(), m.grid, m.parts)) for m, t in self.members
                )
                return keep_top(importance, state.sparsity)
        scores = self.mask_scores
        if state.method == "sigmoid_threshold":
            binary = (torch.sigmoid(scores.detach()) > state.threshold).to(scores.dtype)
        elif state.method == "topk":
            binary = keep_top(scores.detach(), state.sparsity)
        else:
            raise ValueError(f"unknown mask method {state.method!r}")
        return straight_through(binary, scores)

    def block_mask(self) -> torch.Tensor:
        """This layer's (R, C) binary block mask."""
        mask = (self.owner or self)._owner_mask()
        return mask.T if self.transposed else mask

    def masked_parameters(self, block_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask = self.block_mask() if block_mask is None else block_mask
        weight = self.weight * expand_blocks(mask, (self.out_features, self.in_features), self.parts)
        bias = None
        if self.bias is not None:
            rows_alive = mask.detach().amax(dim=1)  # a row's bias goes when all its blocks are masked
            bias = self.bias * rows_alive.repeat_interleave(self.out_features // (self.parts * self.grid[0])).repeat(self.parts)
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.masked_parameters()
        return F.linear(x, weight, bias)

    def to_linear(self) -> nn.Linear:
        """A plain `nn.Linear` holding the masked weight and bias (the mask baked in)."""
        with torch.no_grad():
            weight, bias = self.masked_parameters()
            linear = nn.Linear(self.in_features, self.out_features, bias=bias is not None, device=weight.device, dtype=weight.dtype)
            linear.weight.copy_(weight)
            if bias is not None:
                linear.bias.copy_(bias)
        return linear

    def density(self) -> float:
        """Fraction of weight elements the current mask keeps."""
        with torch.no_grad():
            return float(self.block_mask().mean())

    def flops_per_token(self, seq_len: int | None = None) -> int:
        return 2 * self.in_features * self.out_features  # the masked forward is a dense matmul

    def extra_repr(self) -> str:
        source = "own scores" if self.owner is None else ("owner's scores, transposed" if self.transposed else "owner's scores")
        parts = f", parts={self.parts}" if self.parts > 1 else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, grid={self.grid}{parts}, {source}, group={self.group}"


def score_regularization(model: nn.Module, group_weights: dict[str, float]) -> torch.Tensor:
    """Σ_groups weight_g · mean over the group's score matrices of mean(sigmoid(scores))."""
    per_group: dict[str, list[torch.Tensor]] = {}
    for module in model.modules():
        if isinstance(module, MaskedLinear) and module.owns_scores:
            per_group.setdefault(module.group, []).append(torch.sigmoid(module.mask_scores).mean())
    total = None
    for group, terms in per_group.items():
        term = group_weights.get(group, 1.0) * torch.stack(terms).mean()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total


def find_state(model: nn.Module) -> PruningState | None:
    for module in model.modules():
        if isinstance(module, MaskedLinear):
            return module.state
    return None


def mask_density(model: nn.Module) -> float:
    """Fraction of masked-layer weight elements kept by the current masks (1.0 if none)."""
    kept = total = 0.0
    for module in model.modules():
        if isinstance(module, MaskedLinear):
            n = module.in_features * module.out_features
            kept += module.density() * n
            total += n
    return kept / total if total else 1.0


__all__ = [
    "SCORES", "PruningState", "MaskedLinear", "expand_blocks", "block_sums", "keep_top", "straight_through",
    "score_regularization", "find_state", "mask_density",
]
