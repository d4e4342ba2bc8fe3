"""Where leanformer keeps what it extracts, trains once and reuses (teachers, extracted data sets)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .errors import AssetMissingError


def cache_dir(*parts: str) -> Path:
    """`$LEANFORMER_CACHE` (default `~/.cache/leanformer`) joined with `parts`, created on demand."""
    root = Path(os.environ.get("LEANFORMER_CACHE", Path.home() / ".cache" / "leanformer"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_dir(package: str, install_hint: str) -> Path:
    """Directory of an installed package, found without importing it (asset packages import heavy deps)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissingError(f"package {package!r} is not installed: run `{install_hint}` (or `make setup`)")
    return Path(list(spec.submodule_search_locations)[0])
