"""leanformer: make pre-trained transformers small and fast, trained by distillation from the original."""

__version__ = "0.1.0"

from .api import compress, load, recipe_of, save  # noqa: E402
from .registry import available_methods, register_method  # noqa: E402

__all__ = ["compress", "load", "save", "recipe_of", "register_method", "available_methods", "__version__"]
