"""How many parameters a model has, of which kind, and how many bytes its weights take on disk.

Rules for `count_parameters`:
- A parameter's kind comes from the **name of the module that holds it**, looked up in the
  architecture tables (`leanformer.architectures`): anything under a query, key, value or
  attention-output module is `attention`; under FFN in/out is `ffn`; under an embedding module
  (word/position/type tables and, where the table says so, the embedding LayerNorm) is
  `embeddings`; everything else (LayerNorms, pooler, classifier, LM head, MPNet's relative
  position bias) is `other`. The module's class does not matter, so a compression method that
  swaps an `nn.Linear` for its own layer at the same name (`KroneckerLinear` with `A`, `B`,
  `bias`, a masked linear, ...) is still counted as attention or FFN.
- Tied weights are counted once (the de-duplication of `model.parameters()`). A tied parameter
  takes the first kind that any of its names has, in the order embeddings, attention, ffn: Marian's
  shared token table, which is also its LM head, counts as `embeddings`.
- Frozen parameters (e.g. Marian's sinusoidal positions) are counted: they are saved weights.
  Buffers are not.
- A model whose `model_type` has no table entry raises `UnsupportedModelError`: a breakdown that
  silently put everything under `other` would make compression ratios per kind wrong.
  `total_parameters` works on any module.

`linear_parameters` is attention + ffn, weights and biases: the "linear params" of the Block
Pruning paper (85M for BERT-base).

`bytes_on_disk` sums the weight files at the top level of a saved model directory
(`*.safetensors`, `*.bin`, `*.onnx`, `*.onnx.data`; not `training_args.bin`, which a Trainer writes
next to the weights). Sub-directories (e.g. `checkpoint-500/`) are not looked into, and a directory
holding the same weights in two formats is counted twice: save one format per directory.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..architectures import embedding_module_names, linear_roles
from ..errors import DataError

KINDS = ("embeddings", "attention", "ffn", "other")

_ROLE_KIND = {
    "query": "attention",
    "key": "attention",
    "value": "attention",
    "qkv": "attention",
    "attention_output": "attention",
    "ffn_in": "ffn",
    "ffn_out": "ffn",
}

WEIGHT_FILE_PATTERNS = ("*.safetensors", "*.bin", "*.onnx", "*.onnx.data")
_NOT_WEIGHTS = frozenset({"training_args.bin"})


def _module_kinds(model: nn.Module) -> dict[str, str]:
    """Full module name -> kind, for the modules the architecture table names."""
    kinds = {name: _ROLE_KIND[role] for name, role in linear_roles(model).items()}
    for name in embedding_module_names(model):
        kinds[name] = "embeddings"
    return kinds


def _kind_of(parameter_name: str, module_kinds: dict[str, str]) -> str:
    # the innermost named ancestor decides; a method layer's own sub-modules inherit its kind
    parts = parameter_name.split(".")[:-1]
    for end in range(len(parts), 0, -1):
        kind = module_kinds.get(".".join(parts[:end]))
        if kind is not None:
            return kind
    return "other"


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters by kind: {'total', 'embeddings', 'attention', 'ffn', 'other'} (rules: module docstring)."""
    module_kinds = _module_kinds(model)  # raises UnsupportedModelError for unknown families
    names_by_id: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names_by_id.setdefault(id(parameter), []).append(name)

    counts = dict.fromkeys(("total", *KINDS), 0)
    for parameter in model.parameters():  # unique parameters only
        found = {_kind_of(name, module_kinds) for name in names_by_id[id(parameter)]}
        kind = next(k for k in KINDS if k in found)  # KINDS order is the precedence
        counts[kind] += parameter.numel()
        counts["total"] += parameter.numel()
    return counts


def linear_parameters(model: nn.Module) -> int:
    """Attention + FFN parameters, weights and biases (Block Pruning's "linear params")."""
    counts = count_parameters(model)
    return counts["attention"] + counts["ffn"]


def total_parameters(model: nn.Module) -> int:
    """All unique parameters of any module, with or without an architecture table."""
    return sum(p.numel() for p in model.parameters())


def weight_files(path: str | Path) -> list[Path]:
    """The weight files `bytes_on_disk` counts: `path` itself, or those at the top of a directory."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or directory: {path}")
    files = sorted(
        {f for pattern in WEIGHT_FILE_PATTERNS for f in path.glob(pattern) if f.is_file() and f.name not in _NOT_WEIGHTS}
    )
    if not files:
        raise DataError(f"{path} holds no weight files ({', '.join(WEIGHT_FILE_PATTERNS)}); is it a saved model directory?")
    return files


def bytes_on_disk(path: str | Path) -> int:
    """Size in bytes of a saved model's weight files, or of a single file."""
    return sum(f.stat().st_size for f in weight_files(path))
