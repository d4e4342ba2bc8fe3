"""A recipe file: an ordered list of compression stages, each a method config plus its training.

    stages:                             # applied in order, each to the previous stage's student
      - method: pruning                 # a registered method
        config: {...}                   # that method's config (the same dataclass as the Python API)
        distillation: {...}             # DistillationConfig (default: the method's own losses)
        train: {...}                    # TrainConfig for this stage's task distillation
        general: {...}                  # optional stage 1 (first stage only): GeneralDistillationConfig
        general_train: {...}            # TrainConfig for stage 1 (default: train)
      - method: quantization
        config: {...}

A one-stage recipe may drop `stages:` and put the stage's keys at the top level. Every stage is
distilled from the original fine-tuned teacher. Unknown keys and wrong types are ConfigErrors
naming the key and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config import ConfigBase
from .distill.config import DistillationConfig, GeneralDistillationConfig
from .errors import ConfigError
from .registry import method_by_name
from .training import TrainConfig

SECTIONS: dict[str, type[ConfigBase]] = {
    "distillation": DistillationConfig,
    "train": TrainConfig,
    "general": GeneralDistillationConfig,
    "general_train": TrainConfig,
}
STAGE_KEYS = ("method", "config", *SECTIONS)


@dataclass
class Stage:
    method: str
    config: ConfigBase
    distillation: DistillationConfig | None = None
    train: TrainConfig | None = None
    general: GeneralDistillationConfig | None = None
    general_train: TrainConfig | None = None
    # settings the command line overrode in this stage (printed when it trains; not part of the file)
    from_flags: list[str] = field(default_factory=list, compare=False)

    @classmethod
    def from_dict(cls, data, where: str) -> "Stage":
        if not isinstance(data, dict) or "method" not in data:
            raise ConfigError(f"{where} must be a mapping with a 'method' key (keys: {', '.join(STAGE_KEYS)})")
        unknown = sorted(set(data) - set(STAGE_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(STAGE_KEYS)}")
        method = method_by_name(data["method"])
        sections = {k: SECTIONS[k].from_dict(data[k] or {}, where=f"{where}: {k}") for k in SECTIONS if k in data}
        return cls(data["method"], method.config_class.from_dict(data.get("config") or {}, where=f"{where}: config"), **sections)

    def to_dict(self) -> dict:
        out = {"method": self.method, "config": self.config.to_dict()}
        out.update({k: getattr(self, k).to_dict() for k in SECTIONS if getattr(self, k) is not None})
        return out


@dataclass
class Recipe:
    stages: list[Stage] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data, where: str = "recipe") -> "Recipe":
        if isinstance(data, dict) and "stages" in data:
            unknown = sorted(set(data) - {"stages"})
            if unknown:
                raise ConfigError(f"{where}: unknown key {unknown[0]!r} beside 'stages' (each stage holds {', '.join(STAGE_KEYS)})")
            stages = data["stages"]
            if not isinstance(stages, list) or not stages:
                raise ConfigError(f"{where}: 'stages' must be a non-empty list of stages")
            parsed = [Stage.from_dict(s, f"{where}: stage {i + 1}") for i, s in enumerate(stages)]
        else:
            parsed = [Stage.from_dict(data, where)]
        for i, stage in enumerate(parsed[1:], 2):
            if stage.general is not None:
                raise ConfigError(f"{where}: stage {i} has 'general'; general distillation (stage 1 on text) belongs to the first stage only")
        return cls(parsed)

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
        return {"stages": [s.to_dict() for s in self.stages]}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    # The first stage, for the common one-stage recipe.
    @property
    def method(self) -> str:
        return self.stages[0].method

    @property
    def config(self) -> ConfigBase:
        return self.stages[0].config
