"""What a teacher is trained from (`leanformer finetune` flags): import-light, like every config."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import ConfigBase
from .errors import ConfigError

SCRATCH = "scratch"


@dataclass
class FinetuneConfig(ConfigBase):
    model: str = field(
        default="minilm",
        metadata={"help": "Packaged encoder ('minilm', 'mpnet'), a local model directory, or 'scratch' (translation: train a Marian model from nothing)."},
    )


@dataclass
class ScratchTranslationConfig(ConfigBase):
    """Size of a Marian translation model trained from scratch (default: 7.7M parameters with an 8000-piece vocabulary)."""

    vocab_size: int = field(default=8000, metadata={"help": "Joint SentencePiece vocabulary size (source + target)."})
    d_model: int = field(default=256, metadata={"help": "Hidden size."})
    encoder_layers: int = field(default=3, metadata={"help": "Encoder layers."})
    decoder_layers: int = field(default=3, metadata={"help": "Decoder layers."})
    attention_heads: int = field(default=4, metadata={"help": "Attention heads (encoder and decoder)."})
    ffn_dim: int = field(default=1024, metadata={"help": "Feed-forward width."})
    dropout: float = field(default=0.1, metadata={"help": "Dropout on residual branches."})
    label_smoothing: float = field(default=0.1, metadata={"help": "Label smoothing of the cross-entropy."})

    def validate(self) -> None:
        if self.d_model % self.attention_heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by attention_heads ({self.attention_heads})")
        if self.vocab_size < 8:
            raise ConfigError(f"vocab_size must be >= 8 (3 special pieces plus text), got {self.vocab_size}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
