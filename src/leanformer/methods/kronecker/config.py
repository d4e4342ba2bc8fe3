"""`KroneckerConfig`: which weights become Kronecker factors, with which shapes.

Shapes are given as the shape of A, (rows, cols), for the weight as `nn.Linear` stores it
(out × in): attention maps are hidden × hidden, FFN W1 is intermediate × hidden, and W2 uses
W1's A shape transposed. B follows from the weight. The word embedding (v × d) becomes
A (v × d/n) ⊗ B (1 × n). Presets reproduce the KroneckerBERT paper's BERT-base models; for
other sizes set `target_compression` and the shapes are searched (see `search.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...config import ConfigBase
from ...errors import ConfigError

ATTENTION_ROLES = ("query", "key", "value", "attention_output")
FFN_ROLES = ("ffn_in", "ffn_out")
ALL_ROLES = ATTENTION_ROLES + FFN_ROLES + ("embeddings",)


@dataclass
class KroneckerConfig(ConfigBase):
    attention_a: list[int] | None = field(
        default=None, metadata={"help": "Shape of A (rows cols) for Q, K, V and attention output (hidden x hidden weights)."}
    )
    ffn_a: list[int] | None = field(
        default=None, metadata={"help": "Shape of A (rows cols) for FFN W1 (intermediate x hidden); W2 uses it transposed."}
    )
    embedding_n: int = field(default=0, metadata={"help": "Word embeddings become A (v x d/n) ⊗ B (1 x n); 0 keeps them dense."})
    terms: int = field(default=1, metadata={"help": "Number of summed Kronecker products per weight."})
    target_compression: float | None = field(
        default=None,
        metadata={"help": "Search the factor shapes for this compression of encoder + embeddings, with the fewest FLOPs."},
    )
    search_objective: Literal["flops", "capacity"] = field(
        default="flops",
        metadata={"help": "With target_compression: fewest FLOPs, or most attention + FFN parameters (embeddings compressed most)."},
    )
    roles: list[str] = field(
        default_factory=lambda: list(ALL_ROLES),
        metadata={"help": "Which weights to decompose: query key value attention_output ffn_in ffn_out embeddings."},
    )
    forward_mode: Literal["auto", "factored", "dense"] = field(
        default="auto", metadata={"help": "Factored forward, dense (materialised) forward, or auto (inference: the fastest, measured once per shape; training: the FLOP rule)."}
    )

    def validate(self) -> None:
        for name in ("attention_a", "ffn_a"):
            shape = getattr(self, name)
            if shape is not None and (len(shape) != 2 or min(shape) < 1):
                raise ConfigError(f"{name} must be two positive integers (rows cols), got {shape}")
        if self.terms < 1:
            raise ConfigError(f"terms must be >= 1, got {self.terms}")
        if self.embedding_n < 0:
            raise ConfigError(f"embedding_n must be >= 0 (0 keeps the embeddings dense), got {self.embedding_n}")
        unknown = [r for r in self.roles if r not in ALL_ROLES]
        if unknown:
            raise ConfigError(f"unknown role {unknown[0]!r}; choose from {', '.join(ALL_ROLES)}")
        if self.target_compression is not None:
            if self.target_compression <= 1:
                raise ConfigError(f"target_compression must be > 1, got {self.target_compression}")
            if self.attention_a or self.ffn_a or self.embedding_n:
                raise ConfigError("give either target_compression or explicit shapes (attention_a, ffn_a, embedding_n), not both")
        elif not (self.attention_a or self.ffn_a or self.embedding_n):
            raise ConfigError("nothing to decompose: set attention_a/ffn_a/embedding_n, a preset, or target_compression")

    # Presets: the paper's BERT-base models (hidden 768, FFN 3072).
    @classmethod
    def kronecker8(cls) -> "KroneckerConfig":
        """KroneckerBERT8: 7.8× smaller BERT-base (paper: 14.3M parameters)."""
        return cls(attention_a=[384, 384], ffn_a=[8, 2], embedding_n=8)

    @classmethod
    def kronecker21(cls) -> "KroneckerConfig":
        """KroneckerBERT21: 21× smaller BERT-base (paper: 5.2M parameters)."""
        return cls(attention_a=[384, 48], ffn_a=[16, 2], embedding_n=16)

    @classmethod
    def preset(cls, name: str) -> "KroneckerConfig":
        presets = {"kronecker8": cls.kronecker8, "kronecker21": cls.kronecker21}
        if name not in presets:
            raise ConfigError(f"unknown Kronecker preset {name!r}; choose {', '.join(presets)}")
        return presets[name]()
