"""The method registry: a compression method is a `Method` subclass with a lifecycle.

A method is one folder under `methods/` whose package registers one `Method` instance with
`register_method`. Every folder there is found by name (`pkgutil`), so adding a method edits no
other file. The spine (student, benchmark, export, report, model card, demo) only calls the hooks
below; it never names a method.

Lifecycle of a stage, as `leanformer compress` runs it:
    apply → [calibrate] → distillation training (with `training_extras`) → finalize → [refine]
`load` calls `rebuild` with the stage's saved config and the structure that `apply` and
`finalize` reported, then reads the weights into it.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable

from .architectures import ArchitectureSpec
from .config import ConfigBase
from .errors import ConfigError

if TYPE_CHECKING:  # torch is imported by what runs, not by the tables and configs
    from torch import nn

# What a stage built, for `load` to rebuild it without deciding anything again (resolved shapes,
# kept heads): JSON-serialisable, saved in config.json under the stage.
Structure = dict | None


@dataclass
class TrainingExtras:
    callbacks: list = field(default_factory=list)  # transformers.TrainerCallback instances
    extra_losses: dict = field(default_factory=dict)  # name -> fn(model) -> scalar tensor
    # parameter-name suffix -> learning rate: such parameters get their own optimizer group,
    # without weight decay (e.g. pruning scores train at 1e-2 while weights train at 3e-5)
    learning_rates: dict = field(default_factory=dict)
    # fn() -> {name: number} added to every training log line (e.g. the pruning threshold)
    log_values: Callable | None = None


@dataclass
class ReportFigure:
    file: str  # PNG file name in the report directory
    title: str
    figure: object  # matplotlib Figure


class Method(ABC):
    """Base class of a compression method. Required: `name`, `config_class`, `apply`, `rebuild`."""

    name: ClassVar[str]
    config_class: ClassVar[type[ConfigBase]]

    # --- required ---------------------------------------------------------------------------
    @abstractmethod
    def apply(self, model: nn.Module, config: ConfigBase) -> tuple[nn.Module, Structure]:
        """Replace modules of `model` in place, initialised from its trained weights; return the
        model and what was built (None when the config alone determines it)."""

    @abstractmethod
    def rebuild(self, model: nn.Module, config: ConfigBase, structure: Structure) -> nn.Module:
        """The same modules with uninitialised weights, from the saved config and structure."""

    # --- what the method supports, as data ----------------------------------------------------
    def unsupported(self, spec: ArchitectureSpec) -> str | None:
        """Why this method cannot compress the family `spec` describes (one sentence naming the family
        and what is supported), or None if it can. The contract tests read this for every family."""
        return None

    # --- training ------------------------------------------------------------------------------
    def default_distillation(self):
        """The distillation losses of the method's paper (a DistillationConfig)."""
        from .distill.config import DistillationConfig

        return DistillationConfig()

    def choose(self, model: nn.Module, config: ConfigBase, batches: Iterable[dict]) -> ConfigBase:
        """Before `apply`, when the config leaves a choice to data (e.g. which layers matter): look
        at collated training batches of the model being compressed and return the config with the
        choice made explicit. The student records that config, so `load` never decides again."""
        return config

    def calibrate(self, model: nn.Module, config: ConfigBase, batches: Iterable[dict]) -> None:
        """Before training: look at a few collated training batches (e.g. set quantization ranges)."""

    def training_extras(self, model: nn.Module, config: ConfigBase) -> TrainingExtras | None:
        """Callbacks (schedules), extra losses, learning-rate groups and log values for training."""
        return None

    def finalize(self, model: nn.Module, config: ConfigBase) -> tuple[nn.Module, Structure]:
        """After training: e.g. bake masks and remove what they pruned; return the model and the
        structure decided (None when nothing was)."""
        return model, None

    def refine_train(self, config: ConfigBase, train):
        """A TrainConfig for a second distillation of the finalized model, or None (no refine phase)."""
        return None

    # --- deployment and reporting -----------------------------------------------------------------
    # Options of this method's export, as a ConfigBase dataclass (becomes `leanformer export` flags).
    export_options: ClassVar[type[ConfigBase] | None] = None
    # Set when the method's real form is its ONNX export (benchmarks then time that, not PyTorch),
    # with the runtime's name for the tables.
    deployed_runtime: ClassVar[str | None] = None
    # One line the model card adds to the export command.
    export_note: ClassVar[str] = ""

    def export_onnx(self, model: nn.Module, output: Path, *, seq2seq: bool, opset: int, options: ConfigBase | None) -> Path | None:
        """Write the model's ONNX form and return its path, or None for the plain float export."""
        return None

    # Names of `TrainingExtras.log_values` that the report's training curves plot (as schedules).
    plotted_log_values: ClassVar[tuple[str, ...]] = ()

    def report_figures(self, students: list[Path]) -> list[ReportFigure]:
        """Figures for `leanformer report` from saved students (skip those not made with this method)."""
        return []

    def tiny_config(self, spec: ArchitectureSpec) -> ConfigBase:
        """A configuration that fits a tiny model of family `spec` (hidden 32, 4 heads, FFN 64):
        what the contract tests and dry runs compress with."""
        return self.config_class()

    # --- demo -----------------------------------------------------------------------------------
    def demo_config(self, spec: ArchitectureSpec) -> ConfigBase | None:
        """A short configuration for `leanformer demo` on the family `spec` describes (minutes on 2
        CPU cores), or None to skip."""
        return None

    # TrainConfig overrides for the demo's short run (e.g. the learning rate that suits the method).
    demo_train: ClassVar[dict] = {}
    # The demo also runs this method on top of every other method's demo student (a method that
    # deploys last, as int8 quantization does).
    demo_stacks_on_others: ClassVar[bool] = False


_METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Make `method` available to `compress`, `load`, recipes and the CLI (by name and config class)."""
    if not isinstance(method, Method):
        raise TypeError(f"register_method takes a Method instance, got {type(method).__name__}")
    for required in ("name", "config_class"):
        if not hasattr(method, required):
            raise TypeError(f"{type(method).__name__} must set the class attribute {required!r}")
    _METHODS[method.name] = method
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
    # Each folder of `methods/` registers itself on import. Found by listing the folder, not by a
    # static import, so the registry (a core module) depends on no method and a new method is one folder.
    from . import methods

    for module in pkgutil.iter_modules(methods.__path__):
        if module.ispkg:
            importlib.import_module(f"{methods.__name__}.{module.name}")


def support_table() -> str:
    """Markdown: every family of the architecture tables × every registered method, "yes" or the
    method's own refusal. README's table is this text (a test keeps them equal); each "yes" is a
    pair the contract suite (tests/test_contract.py) compresses, saves, loads and exports."""
    from .architectures import ARCHITECTURES

    methods = registered_methods()
    lines = ["| family | " + " | ".join(m.name for m in methods) + " |", "|---|" + "---|" * len(methods)]
    for family, spec in sorted(ARCHITECTURES.items()):
        cells = [(m.unsupported(spec) or "yes").replace("|", "/") for m in methods]
        lines.append(f"| `{family}`{' (encoder-decoder)' if spec.is_encoder_decoder else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
