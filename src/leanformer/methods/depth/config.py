"""`DepthConfig`: which of the teacher's layers the student keeps.

Keeping fewer layers and distilling is the oldest compression of transformers (DistilBERT,
TinyBERT, FastFormers) and the baseline every other method should be compared with at the same
speed. The student is a plain transformers model of the same family with fewer layers, each
initialised from the teacher layer it keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...config import ConfigBase
from ...errors import ConfigError


@dataclass
class DepthConfig(ConfigBase):
    layers: list[int] | None = field(
        default=None, metadata={"help": "Teacher layers the student keeps (0-based, increasing), e.g. 0 2 4; or use num_layers."})
    num_layers: int | None = field(default=None, metadata={"help": "How many layers to keep, chosen by `strategy`."})
    strategy: Literal["uniform", "first", "importance"] = field(
        default="uniform",
        metadata={"help": "With num_layers: 'uniform' keeps every (n/k)-th layer ending with the last one (TinyBERT's mapping), "
                          "'first' the first num_layers, 'importance' the layers whose removal raises the teacher's training "
                          "loss most (measured on importance_batches batches when distillation starts; the layers chosen are recorded)."},
    )
    importance_batches: int = field(default=8, metadata={"help": "strategy importance: training batches the drop-one-layer losses are measured on."})
    decoder_layers: list[int] | None = field(default=None, metadata={"help": "Encoder-decoders: decoder layers to keep (default: all)."})
    decoder_num_layers: int | None = field(default=None, metadata={"help": "Encoder-decoders: how many decoder layers to keep, by `strategy`."})
    # Narrower layers at initialisation (FastFormers; Michel et al. 2019): whole heads and FFN dims of
    # the kept layers removed by importance, |Σ ∂L/∂m · m| for a mask m on the head's context or the
    # dim's activation (a first-order estimate of the loss change), on importance_batches batches
    heads: int | None = field(default=None, metadata={"help": "Attention heads every kept attention keeps (the most important, measured on importance_batches training batches); default: all."})
    ffn_dims: int | None = field(default=None, metadata={"help": "FFN dimensions every kept layer keeps (the most important, measured likewise); default: all."})
    head_indices: list[list[int]] | None = field(
        default=None, metadata={"help": "Heads kept per attention of the student (filled in from `heads` when distillation starts), in the layers' order."})
    ffn_indices: list[list[int]] | None = field(
        default=None, metadata={"help": "FFN dimensions kept per student layer (filled in from `ffn_dims` when distillation starts)."})

    def validate(self) -> None:
        for explicit, count in (("layers", "num_layers"), ("decoder_layers", "decoder_num_layers")):
            kept, n = getattr(self, explicit), getattr(self, count)
            if kept is not None and n is not None:
                raise ConfigError(f"give {explicit} or {count}, not both")
        if self.importance_batches < 1:
            raise ConfigError(f"importance_batches must be at least 1, got {self.importance_batches}")
        for explicit, count in (("layers", "num_layers"), ("decoder_layers", "decoder_num_layers")):
            kept, n = getattr(self, explicit), getattr(self, count)
            if kept is not None and (not kept or kept != sorted(set(kept)) or kept[0] < 0):
                raise ConfigError(f"{explicit} must be distinct increasing layer indices (0-based), got {kept}")
            if n is not None and n < 1:
                raise ConfigError(f"{count} must be at least 1, got {n}")
        for name in ("heads", "ffn_dims"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("head_indices", "ffn_indices"):
            lists = getattr(self, name)
            if lists is not None and any(not kept or kept != sorted(set(kept)) or kept[0] < 0 for kept in lists):
                raise ConfigError(f"{name} must hold, per layer, distinct increasing indices (0-based), got {lists!r:.80}")
        narrows = any(getattr(self, n) is not None for n in ("heads", "ffn_dims", "head_indices", "ffn_indices"))
        if self.layers is None and self.num_layers is None and self.decoder_layers is None and self.decoder_num_layers is None and not narrows:
            raise ConfigError("nothing to drop: set layers (e.g. 0 2 4) or num_layers (e.g. 3), or heads / ffn_dims")

    @property
    def narrows(self) -> bool:
        """Whether heads or FFN dims are removed too (chosen by importance, or given)."""
        return any(getattr(self, n) is not None for n in ("heads", "ffn_dims", "head_indices", "ffn_indices"))
