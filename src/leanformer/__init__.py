"""leanformer: make pre-trained transformers small and fast, trained by distillation from the original."""

from .lazy import lazy_exports

__version__ = "0.1.0"

# The public verbs, imported on first use: `import leanformer` (and `leanformer --help`) must not
# pay for torch and transformers before anything needs them.
__getattr__, __dir__, _verbs = lazy_exports(__name__, {
    ".api": ("compress", "load", "save", "export", "recipe_of"),
    ".registry": ("register_method", "available_methods"),
    ".student": ("distil",),
})
__all__ = [*_verbs, "__version__"]
