"""The method registry: each compression method registers its config class and how to apply it.

Adding a method is one folder under `methods/` plus one `register_method(...)` call; `compress`,
`load`, the CLI and recipes find it here by config class or by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from .config import ConfigBase
from .errors import ConfigError


@dataclass(frozen=True)
class Method:
    name: str
    config_class: type[ConfigBase]
    # Replace modules using the trained dense weights (e.g. SVD init of Kronecker factors).
    apply: Callable[[nn.Module, ConfigBase], nn.Module]
    # Build the same structure with uninitialised weights, so saved weights can be loaded into it.
    # The third argument is the stage's recorded structure (see `api.record_structure`), or None.
    rebuild: Callable[[nn.Module, ConfigBase, dict | None], nn.Module]
    description: str = ""
    # What the method adds to distillation training: callbacks (schedules), extra loss terms.
    training_extras: Callable[[nn.Module, ConfigBase], "TrainingExtras"] | None = None
    # After training: e.g. bake masks and physically remove pruned heads. Returns the final model.
    finalize: Callable[[nn.Module, ConfigBase], nn.Module] | None = None
    # A short configuration for `leanformer demo` (minutes on 2 CPU cores), or None to skip.
    demo_config: Callable[[], ConfigBase] | None = None
    # The distillation losses the method's paper trains with (used when the user gives none).
    default_distillation: Callable[[], ConfigBase] | None = None
    # TrainConfig overrides for the demo's short run (e.g. the learning rate that suits the method).
    demo_train: dict | None = None
    # Before training: look at a few training batches (e.g. set quantization ranges). Args: model,
    # config, an iterable of collated batches; returns nothing.
    calibrate: Callable | None = None


@dataclass
class TrainingExtras:
    callbacks: list = field(default_factory=list)  # transformers.TrainerCallback instances
    extra_losses: dict = field(default_factory=dict)  # name -> fn(model) -> scalar tensor
    # parameter-name suffix -> learning rate: such parameters get their own optimizer group,
    # without weight decay (e.g. pruning scores train at 1e-2 while weights train at 3e-5)
    learning_rates: dict = field(default_factory=dict)
    # fn() -> {name: number} added to every training log line (e.g. the pruning threshold)
    log_values: Callable | None = None


_METHODS: dict[str, Method] = {}


def register_method(
    name: str,
    config_class: type[ConfigBase],
    *,
    apply: Callable[[nn.Module, ConfigBase], nn.Module],
    rebuild: Callable[[nn.Module, ConfigBase, dict | None], nn.Module] | None = None,
    description: str = "",
    training_extras: Callable[[nn.Module, ConfigBase], TrainingExtras] | None = None,
    finalize: Callable[[nn.Module, ConfigBase], nn.Module] | None = None,
    demo_config: Callable[[], ConfigBase] | None = None,
    default_distillation: Callable[[], ConfigBase] | None = None,
    demo_train: dict | None = None,
    calibrate: Callable | None = None,
) -> Method:
    method = Method(
        name, config_class, apply, rebuild or (lambda model, config, structure: apply(model, config)),
        description, training_extras, finalize, demo_config, default_distillation, demo_train, calibrate,
    )
    _METHODS[name] = method
    return method


def available_methods() -> list[str]:
    _import_builtin_methods()
    return sorted(_METHODS)


def registered_methods() -> list[Method]:
    _import_builtin_methods()
    return [_METHODS[name] for name in sorted(_METHODS)]


def method_by_name(name: str) -> Method:
    _import_builtin_methods()
    if name not in _METHODS:
        if not _METHODS:
            raise ConfigError(f"unknown compression method {name!r}: no compression method is available in this version yet")
        raise ConfigError(f"unknown compression method {name!r}; available: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def method_for_config(config: ConfigBase) -> Method:
    _import_builtin_methods()
    for method in _METHODS.values():
        if type(config) is method.config_class:
            return method
    available = ", ".join(f"{m.config_class.__name__} ({m.name})" for m in _METHODS.values()) or "none yet"
    raise ConfigError(f"{type(config).__name__} is not a registered method config; registered: {available}")


def _import_builtin_methods() -> None:
    # Methods register themselves on import; importing the package makes them all available.
    from . import methods  # noqa: F401
