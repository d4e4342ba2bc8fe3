"""The method registry: each compression method registers its config class and how to apply it.

Adding a method is one folder under `methods/` plus one `register_method(...)` call; `compress`,
`load`, the CLI and recipes find it here by config class or by name.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    rebuild: Callable[[nn.Module, ConfigBase], nn.Module]
    description: str = ""


_METHODS: dict[str, Method] = {}


def register_method(
    name: str,
    config_class: type[ConfigBase],
    *,
    apply: Callable[[nn.Module, ConfigBase], nn.Module],
    rebuild: Callable[[nn.Module, ConfigBase], nn.Module] | None = None,
    description: str = "",
) -> Method:
    method = Method(name, config_class, apply, rebuild or apply, description)
    _METHODS[name] = method
    return method


def available_methods() -> list[str]:
    _import_builtin_methods()
    return sorted(_METHODS)


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
