"""leanformer: make pre-trained transformers small and fast, trained by distillation from the original."""

import importlib

__version__ = "0.1.0"

# The public verbs, imported on first use: `import leanformer` (and `leanformer --help`) must not
# pay for torch and transformers before anything needs them.
_EXPORTS = {"compress": ".api", "load": ".api", "save": ".api", "export": ".api", "recipe_of": ".api",
            "register_method": ".registry", "available_methods": ".registry"}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'leanformer' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
