"""Package attributes imported on first use (PEP 562), so that importing a package — and so every
config class, and `leanformer COMMAND --help` — never pays for torch and transformers."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]):
    """`(__getattr__, __dir__, __all__)` for `package`: `exports` maps a submodule (relative, e.g.
    ".trainer") to the names it provides; each is imported when first looked up."""
    source = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name in source:
            return getattr(importlib.import_module(source[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(source))

    return __getattr__, __dir__, list(source)
