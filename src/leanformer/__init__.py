"""leanformer: make pre-trained transformers small and fast, trained by distillation from the original."""

__version__ = "0.1.0"
