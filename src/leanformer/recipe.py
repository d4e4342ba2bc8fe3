"""A recipe file: one method config plus its training settings, as YAML.

    method: kronecker                 # a registered method
    config: {...}                     # that method's config
    distillation: {...}               # DistillationConfig (default: the method's own losses)
    train: {...}                      # TrainConfig for task distillation
    general: {...}                    # optional stage 1: GeneralDistillationConfig
    general_train: {...}              # TrainConfig for stage 1 (default: train)

Unknown keys and wrong types are ConfigErrors naming the key and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import ConfigBase
from .distill import DistillationConfig
from .distill.general import GeneralDistillationConfig
from .errors import ConfigError
from .registry import method_by_name
from .training import TrainConfig

SECTIONS: dict[str, type[ConfigBase]] = {
    "distillation": DistillationConfig,
    "train": TrainConfig,
    "general": GeneralDistillationConfig,
    "general_train": TrainConfig,
}
RECIPE_KEYS = ("method", "config", *SECTIONS)


@dataclass
class Recipe:
    method: str
    config: ConfigBase
    distillation: DistillationConfig | None = None
    train: TrainConfig | None = None
    general: GeneralDistillationConfig | None = None
    general_train: TrainConfig | None = None

    @classmethod
    def from_dict(cls, data, where: str = "recipe") -> "Recipe":
        if not isinstance(data, dict) or "method" not in data:
            raise ConfigError(f"{where} must be a mapping with a 'method' key (keys: {', '.join(RECIPE_KEYS)})")
        unknown = sorted(set(data) - set(RECIPE_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(RECIPE_KEYS)}")
        method = method_by_name(data["method"])
        sections = {k: SECTIONS[k].from_dict(data[k] or {}, where=f"{where}: {k}") for k in SECTIONS if k in data}
        return cls(data["method"], method.config_class.from_dict(data.get("config") or {}, where=f"{where}: config"), **sections)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Recipe":
        try:
            data = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"recipe file {str(path)!r} does not exist") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"recipe file {str(path)!r} is not valid YAML: {err}") from None
        return cls.from_dict(data, where=f"recipe file {str(path)!r}")

    def to_dict(self) -> dict:
        out = {"method": self.method, "config": self.config.to_dict()}
        out.update({k: getattr(self, k).to_dict() for k in SECTIONS if getattr(self, k) is not None})
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)
