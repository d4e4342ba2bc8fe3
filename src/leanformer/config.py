"""Typed configs that round-trip to JSON and YAML, with strict validation.

Every config in leanformer (method configs, distillation and training settings) is a dataclass
deriving from `ConfigBase`. Unknown keys and wrong types are `ConfigError`s that name the key and
what is allowed, so a typo in a recipe is one clear line rather than a stack trace later on.
The CLI is generated from the same dataclasses (`parse_flags`): field `metadata={"help": ...}` is
the documentation of each flag. (Not `transformers.HfArgumentParser`: importing transformers costs
about a second, and `leanformer COMMAND --help` must answer at once.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from .errors import ConfigError

C = TypeVar("C", bound="ConfigBase")


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; convert lists to tuples and ints to floats."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of the allowed types")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not allowed; choose {_type_name(tp)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if isinstance(tp, type) and issubclass(tp, ConfigBase):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return tp.from_dict(value, where=where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):  # nan/inf pass every range check and end up as invalid JSON
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


@dataclasses.dataclass
class ConfigBase:
    """Mixin for config dataclasses: strict `from_dict`, JSON/YAML round trip."""

    def __post_init__(self) -> None:
        # Validate types even when constructed from Python, so the error is raised where it is made.
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            if f.init:
                setattr(self, f.name, _coerce(getattr(self, f.name), hints[f.name], f"{type(self).__name__}.{f.name}"))
        self.validate()

    def validate(self) -> None:
        """Override for cross-field checks; raise ConfigError with a message naming the fix."""

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, ConfigBase):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [v.to_dict() if isinstance(v, ConfigBase) else v for v in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any], *, where: str | None = None) -> C:
        where = where or cls.__name__
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping, got {data!r}")
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(names)}")
        hints = typing.get_type_hints(cls)
        kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls: type[C], text_or_path: str | Path) -> C:
        """From YAML text, or from a file: a `Path`, or a one-line string ending in .yaml, .yml or .json."""
        if not _is_path(text_or_path):
            return cls.from_dict(_parse_yaml(str(text_or_path), cls.__name__) or {})
        path = Path(text_or_path)
        file = f"{cls.__name__} file {str(path)!r}"
        if not path.exists():
            raise ConfigError(f"{file} does not exist")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{file} cannot be read: {err}") from None
        # a wrong key or value names the file it is in
        return cls.from_dict(_parse_yaml(text, file) or {}, where=f"{file}: {cls.__name__}")


def _parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: invalid YAML: {err}") from None


def _is_path(value: str | Path) -> bool:
    if isinstance(value, Path):
        return True
    return "\n" not in value and value.endswith((".yaml", ".yml", ".json"))


# -- command-line flags from config dataclasses -------------------------------------------------

_TRUE, _FALSE = ("true", "yes", "y", "t", "1"), ("false", "no", "n", "f", "0")


def _boolean(text: str) -> bool:
    if text.lower() in _TRUE + _FALSE:
        return text.lower() in _TRUE
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _add_flags(parser: argparse.ArgumentParser, cls: type[ConfigBase]) -> None:
    """One flag per field: `--name VALUE`; booleans also as bare `--name` (true) and `--no_name`
    (false); a Literal offers its choices; a list takes one or more values."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        help = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        tp, kwargs = hints[f.name], {"help": help, "dest": f.name}
        kwargs["default"] = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if get_origin(tp) in (Union, types.UnionType):  # `X | None`: the flag gives an X
            tp = next(a for a in get_args(tp) if a is not type(None))
        if get_origin(tp) in (list, tuple):
            tp = get_args(tp)[0] if get_args(tp) else str
            kwargs["nargs"] = "+"
        if get_origin(tp) is Literal:
            kwargs["choices"] = list(get_args(tp))
            tp = type(kwargs["choices"][0])
        if tp is bool:
            group.add_argument(f"--{f.name}", type=_boolean, nargs="?", const=True, metavar="true|false", **kwargs)
            if kwargs["default"] is True:
                group.add_argument(f"--no_{f.name}", action="store_false", dest=f.name, help=f"Set {f.name} to false.")
        else:
            group.add_argument(f"--{f.name}", type=tp, **({} if "choices" in kwargs else {"metavar": f.name.upper()}), **kwargs)


def parse_flags(classes: tuple[type[ConfigBase], ...], argv: list[str], prog: str, description: str) -> tuple:
    """An instance of each config class from command-line flags (argparse errors exit 2 with usage,
    as argparse does); an unknown flag is a `ConfigError` naming it."""
    # no abbreviations: `--epoch 1` must not quietly mean --epochs (and flags typed are matched by
    # their exact names when they override a recipe)
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False
    )
    for cls in classes:
        _add_flags(parser, cls)
    namespace, unknown = parser.parse_known_args(argv)
    if unknown:
        raise ConfigError(f"unknown argument(s) {' '.join(unknown)}; `{prog} --help` lists the flags")
    return tuple(cls(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if f.init}) for cls in classes)
