"""`leanformer` command line: subcommands generated from the same dataclass configs as the Python API.

Every flag and its help text come from a config field (`config.parse_flags`), so the CLI, the
Python API and recipe files never drift apart. Errors a user can fix print one line
(`leanformer: error: ...`) and exit with status 2, without a traceback. This module imports only
config modules (none imports torch or transformers); each command imports what it runs after its
flags are parsed, so `--help` and flag errors answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .config import ConfigBase, parse_flags
from .data import TaskConfig
from .demo import DemoConfig
from .distill.config import DistillationConfig, GeneralDistillationConfig
from .errors import ConfigError, LeanformerError
from .recipe import Recipe, Stage
from .registry import available_methods, method_by_name, registered_methods
from .teacher_config import FinetuneConfig, ScratchTranslationConfig
from .training import TrainConfig


@dataclass
class FinetuneArgs(ConfigBase):
    force: bool = field(default=False, metadata={"help": "Train again even when a cached teacher with these settings exists."})


@dataclass
class CompressArgs(ConfigBase):
    teacher: str = field(default="", metadata={"help": "Directory of the fine-tuned teacher (from `leanformer finetune`)."})
    output_dir: str = field(default="", metadata={"help": "Where the student is written."})
    method: str | None = field(default=None, metadata={"help": "Compression method name (see `leanformer compress --list`)."})
    recipe: str | None = field(default=None, metadata={"help": "YAML recipe: {method, config, distillation, train}; replaces --method."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing output directory (and start an interrupted run again)."})
    resume: bool = field(default=False, metadata={"help": "Continue an interrupted run from its last checkpoint (a multi-stage recipe resumes at its stage)."})
    init_encoder: str | None = field(
        default=None, metadata={"help": "Start from this general-distillation student's encoder (`leanformer general`), keeping the teacher's head."}
    )

    def validate(self) -> None:
        if not self.teacher:
            raise ConfigError("--teacher is required: the directory of a fine-tuned teacher (leanformer finetune prints it)")
        if not self.output_dir:
            raise ConfigError("--output_dir is required: where to write the student")


@dataclass
class EvaluateArgs(ConfigBase):
    model: str = field(default="", metadata={"help": "Directory of a saved model (teacher or student)."})
    split: Literal["train", "validation", "test"] = field(default="test", metadata={"help": "Split to evaluate: train, validation or test."})
    batch_size: int = field(default=64, metadata={"help": "Evaluation batch size."})
    max_length: int | None = field(default=None, metadata={"help": "Maximum tokens per example (default: 128, or the model's maximum if smaller)."})
    max_examples: int | None = field(default=None, metadata={"help": "Evaluate on the first N examples only."})
    num_beams: int = field(default=1, metadata={"help": "Beam size for translation (1 = greedy)."})

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("--model is required: the directory of a saved model")


@dataclass
class BenchmarkArgs(ConfigBase):
    teacher: str = field(default="", metadata={"help": "Directory of the dense teacher: every ratio is against it, measured in the same run."})
    students: list[str] | None = field(default=None, metadata={"help": "Directories of the students to compare."})
    seq_len: int = field(default=128, metadata={"help": "Sequence length of the latency inputs."})
    threads: int = field(default=2, metadata={"help": "torch threads while timing."})
    repeats: int = field(default=10, metadata={"help": "Timed repeats per model and batch size (median reported)."})
    output_json: str | None = field(default=None, metadata={"help": "Write the rows here (JSON list)."})
    output_md: str | None = field(default=None, metadata={"help": "Write the markdown table here."})

    def validate(self) -> None:
        if not self.teacher:
            raise ConfigError("--teacher is required: the dense model the students are compared with")


def cmd_finetune(argv: list[str]) -> str:
    model_cfg, task_cfg, train_cfg, scratch_cfg, args = parse_flags(
        (FinetuneConfig, TaskConfig, TrainConfig, ScratchTranslationConfig, FinetuneArgs),
        argv,
        "leanformer finetune",
        "Fine-tune a packaged encoder into a task teacher, or train a translation teacher from scratch (--model scratch); cached. "
        "Prints the teacher directory.",
    )
    from .teacher import finetune, teacher_metrics

    path = finetune(model_cfg, task_cfg, train_cfg, scratch=scratch_cfg, force=args.force)
    print(json.dumps({"teacher": str(path), "metrics": teacher_metrics(path)["metrics"]}, indent=2))
    return str(path)


@dataclass
class GeneralArgs(ConfigBase):
    output_dir: str = field(default="", metadata={"help": "Where the general-distillation student is written."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing output directory."})
    method: str | None = field(default=None, metadata={"help": "Compression method name."})
    recipe: str | None = field(default=None, metadata={"help": "YAML recipe; its method/config (and general_train, if any) are used."})

    def validate(self) -> None:
        if not self.output_dir:
            raise ConfigError("--output_dir is required: where to write the general-distillation student")


def _method_and_recipe(argv: list[str]):
    """(method, Recipe or None) from --method / --recipe, before the full parse."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method")
    pre.add_argument("--recipe")
    known, _ = pre.parse_known_args(argv)
    recipe = Recipe.from_yaml(known.recipe) if known.recipe else None
    name = recipe.method if recipe else known.method
    if name is None and not ({"-h", "--help"} & set(argv)):
        raise ConfigError(f"choose a method with --method NAME or --recipe FILE; available: {', '.join(available_methods()) or 'none yet'}")
    return (method_by_name(name) if name else None), recipe


def _typed_fields(argv: list[str], config_class) -> list[str]:
    """The fields of `config_class` whose flag the user typed (`--name`, `--name=v`, or `--no_name` for a boolean)."""
    given = {a.split("=")[0] for a in argv if a.startswith("--")}
    return [f.name for f in dataclasses.fields(config_class) if f"--{f.name}" in given or f"--no_{f.name}" in given]


def _flags_over_recipe(recipe, argv: list[str], train, distillation):
    """Each stage's settings with the flags the user typed on top: defaults < recipe < command line.
    Each stage notes which values came from flags (printed with its settings when it trains)."""
    typed_train, typed_distillation = _typed_fields(argv, TrainConfig), _typed_fields(argv, DistillationConfig)
    for stage in recipe.stages:
        if stage.train is not None and typed_train:
            stage.train = TrainConfig(**{**stage.train.to_dict(), **{k: getattr(train, k) for k in typed_train}})
        if typed_distillation:
            base = stage.distillation or method_by_name(stage.method).default_distillation()
            stage.distillation = DistillationConfig(**{**base.to_dict(), **{k: getattr(distillation, k) for k in typed_distillation}})
        stage.from_flags = typed_train + typed_distillation
    return recipe


def cmd_compress(argv: list[str]) -> str:
    if "--list" in argv:
        return "\n".join(available_methods()) or "no compression method is available in this version yet"
    method, recipe = _method_and_recipe(argv)
    classes = (CompressArgs, TaskConfig, TrainConfig, DistillationConfig) + ((method.config_class,) if method and not recipe else ())
    parsed = parse_flags(classes, argv, "leanformer compress", "Compress a fine-tuned teacher into a student by distillation. Prints the student directory.")
    args, task_cfg, train_cfg, distill_cfg = parsed[:4]
    if recipe is None:
        recipe = Recipe([Stage(method.name, parsed[4])])
    from .api import check_output_apart
    from .student import distil

    check_output_apart(args.output_dir, {
        "teacher": args.teacher, "init encoder": args.init_encoder, "data file": task_cfg.data, "validation file": task_cfg.validation_file,
        "test file": task_cfg.test_file, "recipe": args.recipe,
    })
    recipe = _flags_over_recipe(recipe, argv, train_cfg, distill_cfg)
    path = distil(args.teacher, recipe, task_cfg, args.output_dir, train=train_cfg, overwrite=args.overwrite,
                  init_encoder=args.init_encoder, resume=args.resume)
    return str(path)


def _check_new_output(path: str, overwrite: bool) -> None:
    """The rule of every command that writes: an existing output is replaced only with --overwrite."""
    if Path(path).exists() and not overwrite:
        raise ConfigError(f"output {path!r} exists: pass --overwrite or choose another path")


def cmd_general(argv: list[str]) -> str:
    method, recipe = _method_and_recipe(argv)
    classes = (GeneralArgs, GeneralDistillationConfig, TrainConfig) + ((method.config_class,) if method and not recipe else ())
    parsed = parse_flags(
        classes, argv, "leanformer general",
        "General distillation (stage 1): compress the pre-trained encoder and distil it on unlabelled text. Prints the student directory.",
    )
    args, general, train_cfg = parsed[:3]
    method_cfg = recipe.config if recipe else parsed[3]
    if recipe:
        general = recipe.stages[0].general or general
        train_cfg = recipe.stages[0].general_train or train_cfg
    from .api import check_output_apart
    from .distill.general import general_distillation

    check_output_apart(args.output_dir, {"pre-trained model": general.pretrained, "corpus": general.corpus})
    _check_new_output(args.output_dir, args.overwrite)
    return str(general_distillation(general, method_cfg, train_cfg, args.output_dir))


def cmd_evaluate(argv: list[str]) -> str:
    args, task_cfg = parse_flags((EvaluateArgs, TaskConfig), argv, "leanformer evaluate", "Evaluate a saved model on a task split. Prints the metrics (JSON).")
    from .api import load, load_tokenizer
    from .architectures import check_sequence_length, max_sequence_length
    from .evaluation import evaluate_model
    from .student import check_task_fits

    model = load(args.model)
    limit = max_sequence_length(model.config)
    max_length = args.max_length or min(128, limit or 128)
    check_sequence_length(model.config, max_length, args.model)
    tokenizer = load_tokenizer(args.model, model.config.vocab_size)
    task = task_cfg.load()
    check_task_fits(model, task, args.model)  # the same fit checks as compress
    metrics = evaluate_model(
        model, tokenizer, task, args.split, batch_size=args.batch_size, max_length=max_length,
        max_examples=args.max_examples, num_beams=args.num_beams,
    )
    return json.dumps(metrics, indent=2)


def cmd_benchmark(argv: list[str]) -> str:
    args, task_cfg = parse_flags(
        (BenchmarkArgs, TaskConfig), argv, "leanformer benchmark", "Measure students against their teacher in one run. Prints the table (markdown)."
    )
    from .benchmark import Candidate, benchmark
    from .measure import markdown_table, write_results

    teacher = Candidate(Path(args.teacher).name, Path(args.teacher))
    students = [Candidate(Path(s).name, Path(s)) for s in args.students or []]
    command = "leanformer benchmark " + shlex.join(argv)
    rows = benchmark(teacher, students, task_cfg.load(), seq_len=args.seq_len, threads=args.threads, repeats=args.repeats, command=command)
    table = markdown_table(rows)
    if args.output_json:
        write_results(rows, args.output_json)
    if args.output_md:
        Path(args.output_md).write_text(table + "\n")
    return table


# Opsets `export` can write: scaled-dot-product attention exists from 14; torch's TorchScript exporter
# (the one deploy/encoder.py uses) stops at 20.
EXPORT_OPSETS = (14, 20)


@dataclass
class ExportArgs(ConfigBase):
    model: str = field(default="", metadata={"help": "Directory of a saved model (teacher or student)."})
    output: str = field(
        default="", metadata={"help": "The .onnx file to write (encoder-decoders: a directory with encoder.onnx and decoder.onnx)."}
    )
    opset: int = field(default=17, metadata={"help": "ONNX opset version (float graphs)."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing output file (directory for encoder-decoders)."})

    def validate(self) -> None:
        if not self.model or not self.output:
            raise ConfigError("--model and --output are required: the saved model directory and the .onnx file to write")
        if not EXPORT_OPSETS[0] <= self.opset <= EXPORT_OPSETS[1]:
            raise ConfigError(f"--opset {self.opset} cannot express these graphs: choose {EXPORT_OPSETS[0]} to {EXPORT_OPSETS[1]} "
                              f"(attention needs {EXPORT_OPSETS[0]}; {EXPORT_OPSETS[1]} is the newest torch's exporter writes)")


def cmd_export(argv: list[str]) -> str:
    # each method's export options are flags too (e.g. quantization's --int8_kernels)
    option_classes = tuple(m.export_options for m in registered_methods() if m.export_options)
    args, *options = parse_flags(
        (ExportArgs, *option_classes), argv, "leanformer export",
        "Export a saved model to ONNX: factored layers stay factored, quantized models become int8, encoder-decoders get a cached decoder step. "
        "Prints the path written.",
    )
    from .api import check_output_apart, deployed_runtime, export, load

    check_output_apart(args.output, {"model": args.model}, inside_allowed=True)
    _check_new_output(args.output, args.overwrite)
    model = load(args.model)
    path = export(model, args.output, opset=args.opset, options=options)
    print(f"leanformer: wrote {path}; it runs on {deployed_runtime(model) or 'onnxruntime'}")
    return str(path)


@dataclass
class ReportArgs(ConfigBase):
    runs: list[str] | None = field(default=None, metadata={"help": "Run directories (results.json and/or saved students) or results .json files."})
    output_dir: str = field(default="report", metadata={"help": "Where report.md and its PNG plots go."})

    def validate(self) -> None:
        if not self.runs:
            raise ConfigError("--runs is required: one or more run directories (e.g. runs/demo) or results .json files")


def cmd_report(argv: list[str]) -> str:
    (args,) = parse_flags(
        (ReportArgs,), argv, "leanformer report",
        "Write report.md and plots (accuracy vs latency/size, structure, curves, ranges). Prints the path of report.md.",
    )
    from .report import write_report

    return str(write_report(args.runs, args.output_dir))


def cmd_demo(argv: list[str]) -> str:
    (cfg,) = parse_flags(
        (DemoConfig,), argv, "leanformer demo", "Fine-tune MiniLM on SST-2, compress it with every method; prints the results table."
    )
    from .demo import run_demo

    return run_demo(cfg)


COMMANDS = {
    "finetune": (cmd_finetune, "fine-tune a packaged encoder into a task teacher (cached)"),
    "general": (cmd_general, "stage 1: compress the pre-trained encoder, distil it on unlabelled text"),
    "compress": (cmd_compress, "teacher + method config or YAML recipe -> student, by distillation"),
    "evaluate": (cmd_evaluate, "evaluate a saved model on a task split"),
    "benchmark": (cmd_benchmark, "metric, size, FLOPs and CPU latency of students vs their teacher"),
    "export": (cmd_export, "export a saved model to ONNX for onnxruntime"),
    "report": (cmd_report, "report.md and plots from runs' measurements"),
    "demo": (cmd_demo, "the main job: MiniLM on SST-2, teacher and students, results table"),
}


def _usage() -> str:
    lines = ["usage: leanformer COMMAND [flags]   (leanformer COMMAND --help for its flags)", "", "commands:"]
    lines += [f"  {name:<10} {help}" for name, (_, help) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run a command. Its result (a path; evaluate's metrics; benchmark's and demo's table) is all it
    writes to stdout, last, so `X=$(leanformer finetune ...)` captures exactly it; everything said
    along the way (settings, progress, training logs) goes to stderr."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"leanformer: error: unknown command {name!r}\n{_usage()}", file=sys.stderr)
        return 2
    command = COMMANDS[name][0]
    try:
        asked_help = bool({"-h", "--help"} & set(rest))  # then the help is the result, on stdout
        with contextlib.redirect_stdout(sys.stdout if asked_help else sys.stderr):
            result = command(rest)
    except LeanformerError as err:
        print(f"leanformer: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("leanformer: interrupted; checkpoints written so far are kept", file=sys.stderr)
        return 130
    if result:
        print(result, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
