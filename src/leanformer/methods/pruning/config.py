"""`BlockPruningConfig`: which structures get scores, how scores become masks, and the schedules.

Structures (Block Pruning, Lagunas et al. 2021):
- attention `block`: Q, K, V and attention output each get one score per `block_shape` block
  (32×32 in the paper; weights as `nn.Linear` stores them, out × in);
- attention `head`: one score per head, shared by that head's Q, K and V rows and its columns of
  the attention output, so a head lives or dies as a whole;
- FFN `row_column`: one score per intermediate dimension, shared by W1's row and W2's column;
- FFN `block`: `block_shape` blocks in W1 and W2, each with its own scores.

Presets: `hybrid` (block attention, row/column FFN), `hybrid_filled` (hybrid, then refill the
zeros inside kept heads and distil the smaller dense model again), `struct` (whole heads + FFN
dims), `block` (blocks everywhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...config import ConfigBase
from ...errors import ConfigError


@dataclass
class BlockPruningConfig(ConfigBase):
    attention_structure: Literal["block", "head"] = field(
        default="block", metadata={"help": "Attention scores per block_shape block ('block') or per whole head ('head')."}
    )
    ffn_structure: Literal["row_column", "block"] = field(
        default="row_column",
        metadata={"help": "FFN scores per intermediate dim, shared by W1 row and W2 column ('row_column'), or per block ('block')."},
    )
    block_shape: list[int] = field(
        default_factory=lambda: [32, 32],
        metadata={"help": "Block (rows cols) of the weights (out x in) that use 'block' structure; must divide them."},
    )
    mask_method: Literal["sigmoid_threshold", "topk", "magnitude"] = field(
        default="sigmoid_threshold",
        metadata={"help": "Mask = 1[sigmoid(score) > threshold] (movement, straight-through), top-k scores, or top-k block magnitude."},
    )
    final_threshold: float = field(
        default=0.1, metadata={"help": "sigmoid_threshold: final threshold tau_f on sigmoid(score), reached by a cubic ramp from 0."}
    )
    final_sparsity: float = field(
        default=0.5, metadata={"help": "topk and magnitude: final fraction of blocks pruned in each weight, reached by a cubic ramp from 0."}
    )
    final_lambda: float = field(
        default=10.0, metadata={"help": "Final regularisation weight lambda (sigmoid_threshold; 5-40 in the paper, larger is sparser)."}
    )
    attention_lambda: float = field(default=1.0, metadata={"help": "Weight of the attention group in the regulariser."})
    ffn_lambda: float = field(default=1.0, metadata={"help": "Weight of the FFN group in the regulariser (0.25-2 in the paper)."})
    initial_warmup: float = field(
        default=0.1, metadata={"help": "Fraction of training at the start with threshold 0 (nothing pruned)."}
    )
    final_warmup: float = field(
        default=0.3, metadata={"help": "Fraction of training at the end with the threshold held at its final value."}
    )
    score_learning_rate: float = field(default=1e-2, metadata={"help": "Learning rate of the mask scores (weights use --learning_rate)."})
    refine_epochs: float = field(
        default=0.0, metadata={"help": "After removing pruned heads and FFN dims, distil the smaller dense model again for this many epochs."}
    )
    fill_noise_std: float = field(
        default=0.0,
        metadata={"help": "After removal, refill the zeros left inside kept heads and FFN dims with N(0, std) noise (hybrid filled)."},
    )

    def validate(self) -> None:
        if len(self.block_shape) != 2 or min(self.block_shape) < 1:
            raise ConfigError(f"block_shape must be two positive integers (rows cols), got {self.block_shape}")
        if not 0 < self.final_threshold < 1:
            raise ConfigError(f"final_threshold must be in (0, 1) (a threshold on sigmoid(score)), got {self.final_threshold}")
        if not 0 <= self.final_sparsity < 1:
            raise ConfigError(f"final_sparsity must be in [0, 1), got {self.final_sparsity}")
        for name in ("final_lambda", "attention_lambda", "ffn_lambda", "refine_epochs", "fill_noise_std"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("initial_warmup", "final_warmup"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} is a fraction of training in [0, 1), got {getattr(self, name)}")
        if self.initial_warmup + self.final_warmup >= 1:
            raise ConfigError(
                f"initial_warmup + final_warmup must be < 1 to leave room for the threshold ramp, got {self.initial_warmup} + {self.final_warmup}"
            )
        if self.score_learning_rate <= 0:
            raise ConfigError(f"score_learning_rate must be > 0, got {self.score_learning_rate}")

    @property
    def uses_scores(self) -> bool:
        """Whether the masks come from trained scores (magnitude masks come from the weights)."""
        return self.mask_method != "magnitude"

    # Presets (the paper's variants).
    @classmethod
    def hybrid(cls, **overrides) -> "BlockPruningConfig":
        """32×32 blocks in attention, one score per FFN dimension (row of W1 = column of W2)."""
        return cls(**{"attention_structure": "block", "ffn_structure": "row_column", **overrides})

    @classmethod
    def hybrid_filled(cls, **overrides) -> "BlockPruningConfig":
        """Hybrid, then remove empty heads/dims, refill zeros inside kept heads, distil again for 1 epoch."""
        return cls.hybrid(**{"refine_epochs": 1.0, "fill_noise_std": 1e-3, **overrides})

    @classmethod
    def struct(cls, **overrides) -> "BlockPruningConfig":
        """Whole heads (one score per head for Q, K, V, output) and whole FFN dimensions."""
        return cls(**{"attention_structure": "head", "ffn_structure": "row_column", **overrides})

    @classmethod
    def block(cls, **overrides) -> "BlockPruningConfig":
        """32×32 blocks everywhere, attention and FFN."""
        return cls(**{"attention_structure": "block", "ffn_structure": "block", **overrides})

    @classmethod
    def preset(cls, name: str, **overrides) -> "BlockPruningConfig":
        presets = {"hybrid": cls.hybrid, "hybrid_filled": cls.hybrid_filled, "struct": cls.struct, "block": cls.block}
        if name not in presets:
            raise ConfigError(f"unknown block pruning preset {name!r}; choose {', '.join(presets)}")
        return presets[name](**overrides)
