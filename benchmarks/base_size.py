"""BERT-base size on 2 CPU cores: the packaged all-mpnet-base-v2 (110M parameters) fine-tuned on a
task, and from it the shipped recipes (recipes/*.yaml) at a budget two cores can afford.

    .venv/bin/python benchmarks/base_size.py [--tasks glue/sst2 glue/mrpc] [--recipes kronecker8 ...]
        [--train_samples 4000 --epochs 1] [--score_lr 0.2] [--train_only] [--repeats 5]

Each recipe runs as written (methods, configs, losses, learning rates) with its budget cut: every
stage trains `--epochs` epochs on `--train_samples` task examples (stage 1 of Kronecker on
`--corpus_samples` passages, one epoch); the budget is in each row's label. `--score_lr` raises
pruning's score learning rate (the recipes' 0.05 leaves a base-size mask almost full after 125
steps); it too is in the label. Students are kept under runs/bench/base_size/ and finished ones
(and finished stages, also another recipe's identical first stages) are reused, so an
interrupted run resumes where it stopped. Rows (metric, size, FLOPs, latency b1/b32 at seq 128
against the teacher in one interleaved run, CPU recorded) go to benchmarks/results/base_size.json;
each row also records the seconds per training step of its stages, teacher forward included.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

from transformers import AutoConfig

from leanformer.architectures import get_architecture
from leanformer.benchmark import Candidate
from leanformer.data import TaskConfig
from leanformer.measure import machine_of, read_results
from leanformer.recipe import Recipe
from leanformer.student import distil_recipe
from leanformer.teacher import FinetuneConfig, finetune, teacher_metrics
from leanformer.training import TrainConfig

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from common import command_line, measure_students, record_rows, reuse_finished_prefix, run_dir, stage_costs  # noqa: E402

RUNS = Path("runs/bench/base_size")
# prune_then_int8 after hybrid_filled: it continues from that finished first stage.
RECIPES = ["fullyqt8", "hybrid_filled", "prune_then_int8", "depth_prune_int8", "kronecker8", "struct", "kronecker21"]
# The teacher: as benchmarks/teacher.md's MiniLM teachers, but fewer examples (a base-size step costs ~5x).
TEACHER = {"glue/sst2": dict(max_train_samples=8000, epochs=1.0), "glue/mrpc": dict(epochs=2.0)}
TITLE = "BERT-base size (all-mpnet-base-v2, 110M) on 2 CPU cores: the shipped recipes at a short budget"
STUDENT = {"glue/sst2": dict(train_samples=4000, epochs=1.0), "glue/mrpc": dict(train_samples=None, epochs=2.0)}


def teacher(name: str, model: str) -> Path:
    settings = dict(TEACHER[name])
    task_cfg = TaskConfig(task=name, max_train_samples=settings.pop("max_train_samples", None))
    return finetune(FinetuneConfig(model=model), task_cfg,
                    TrainConfig(max_length=128, batch_size=32, learning_rate=3e-5, report_to="none", logging_steps=20, **settings))


def with_budget(recipe: Recipe, epochs: float, corpus_samples: int, pretrained: str, spec, score_lr: float | None = None) -> Recipe:
    """The recipe with every stage cut to `epochs` (stage 1 of Kronecker: one epoch on `corpus_samples`
    passages) and pruning's score learning rate set to `score_lr` (None: the recipe's); quantized
    attention matmuls only where the family's attention allows them (MPNet's own attention does
    not: its QK and softmax-V products stay float, its linears are quantized)."""
    stages = []
    for stage in recipe.stages:
        if getattr(stage.config, "quantize_attention", False) and not spec.attention_interface:
            stage = dataclasses.replace(stage, config=dataclasses.replace(stage.config, quantize_attention=False))
        if score_lr is not None and hasattr(stage.config, "score_learning_rate"):
            stage = dataclasses.replace(stage, config=dataclasses.replace(stage.config, score_learning_rate=score_lr))
        train = dataclasses.replace(stage.train or TrainConfig(), epochs=epochs, report_to="none", logging_steps=20)
        general = general_train = None
        if stage.general is not None:
            general = dataclasses.replace(stage.general, pretrained=pretrained, corpus_samples=corpus_samples)
            general_train = dataclasses.replace(stage.general_train or train, epochs=1.0, report_to="none", logging_steps=20)
        stages.append(dataclasses.replace(stage, train=train, general=general, general_train=general_train))
    return Recipe(stages)


def training_cost(rows) -> str:
    """A markdown section: what each row's training cost on its machine (seconds per optimizer step
    of each stage, batch 32, the teacher's forward included; whole training time)."""
    lines = ["## Training cost (seconds per optimizer step of each stage, batch 32; distillation steps include the teacher's forward)", "",
             "| Model | Task | Machine | s/step per stage (Kronecker: stage 1 on text first) | Training minutes (all stages) |", "|---|---|---|---|---|"]
    for row in rows:
        per_step, seconds = row.extra.get("seconds_per_step") or [], row.extra.get("train_seconds")
        if not per_step and seconds is None:
            continue
        shown = " / ".join("—" if s is None else f"{s:.2f}" for s in per_step) or "—"
        label = row.model + (f" (fine-tuning, {row.extra['budget']})" if row.model == "teacher" else "")
        lines.append(f"| {label} | {row.task} | {machine_of(row)} | {shown} | {'—' if seconds is None else f'{seconds / 60:.0f}'} |")
    return "\n".join(lines) + "\n"


def markdown_of(out_json: Path) -> Path:
    return out_json.parent.parent / (out_json.stem + ".md")


def add_training_cost(out_json: Path) -> None:
    """Append the training-cost section to the table record_rows rendered from `out_json`."""
    with markdown_of(out_json).open("a") as f:
        f.write("\n" + training_cost(read_results(out_json)) + "\nPeak memory of a distillation step: [distillation_cost.md](distillation_cost.md).\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mpnet", help="packaged encoder or directory the teacher is fine-tuned from")
    parser.add_argument("--tasks", nargs="+", default=list(TEACHER))
    parser.add_argument("--recipes", nargs="+", default=RECIPES, help="names of recipes/*.yaml")
    parser.add_argument("--train_samples", type=int, default=None, help="task examples per student stage (default per task; 0: all)")
    parser.add_argument("--epochs", type=float, default=None, help="epochs per student stage (default per task)")
    parser.add_argument("--score_lr", type=float, default=None, help="score learning rate of pruning stages (default: the recipe's)")
    parser.add_argument("--corpus_samples", type=int, default=4000, help="stage-1 passages of Kronecker recipes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train_only", action="store_true", help="train the students and stop (measure later, on a quiet machine)")
    parser.add_argument("--results", default=str(HERE / "results" / "base_size.json"), help="results file (its .md is written beside benchmarks/)")
    args = parser.parse_args()
    command = command_line()

    for name in args.tasks:
        teacher_path = teacher(name, args.model)
        samples = STUDENT[name]["train_samples"] if args.train_samples is None else (args.train_samples or None)
        epochs = STUDENT[name]["epochs"] if args.epochs is None else args.epochs
        task_budget = f"{samples or 'all'}×{epochs:g}"
        task = TaskConfig(task=name, max_train_samples=samples).load(seed=0)
        spec = get_architecture(AutoConfig.from_pretrained(teacher_path))
        students, finished = [], {}
        for recipe_name in args.recipes:
            recipe = with_budget(Recipe.from_yaml(HERE.parent / "recipes" / f"{recipe_name}.yaml"), epochs, args.corpus_samples, args.model, spec, args.score_lr)
            prunes = any(hasattr(s.config, "score_learning_rate") for s in recipe.stages)
            budget = task_budget + (f", score lr {args.score_lr:g}" if args.score_lr is not None and prunes else "")
            float_attention = any(getattr(s.config, "quantize_attention", True) is False for s in recipe.stages)
            label = (f"{recipe_name}{' (attention matmuls float)' if float_attention else ''} "
                     f"[{budget}{f', stage1 {args.corpus_samples}×1' if recipe.stages[0].general else ''}]")
            out = run_dir(RUNS, name, label)
            if not (out / "leanformer_metrics.json").is_file():
                print(f"== {name}: {label}", flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                reuse_finished_prefix(out, recipe.stages, finished)  # prune_then_int8 continues hybrid_filled
                distil_recipe(teacher_path, recipe, task, out, train=recipe.stages[0].train, overwrite=True, resume=True)
            finished[recipe_name] = (recipe.stages, out)
            record = json.loads((out / "leanformer_metrics.json").read_text())
            per_step, seconds = stage_costs(out, recipe.stages)
            extra = dict(recipe=recipe.to_dict(), budget=budget, seconds_per_step=per_step, train_seconds=seconds, metrics_test=record["metrics"]["test"])
            students.append((Candidate(label, out, method="+".join(s.method for s in recipe.stages),
                                       metric=record["metrics"]["test"][task.spec.primary_metric]), extra))
        if args.train_only:
            continue
        measured = measure_students(teacher_path, students, task, repeats=args.repeats, command=command, max_length=128)
        record = teacher_metrics(teacher_path)
        train = record["settings"]["train"]
        steps = math.ceil(record["train_examples"] / train["batch_size"]) * train["epochs"]
        measured[0].extra.update(budget=f"{record['train_examples']}×{train['epochs']:g}", train_seconds=record["train_seconds"],
                                 seconds_per_step=[round(record["train_seconds"] / steps, 3)])
        out_json = Path(args.results)
        record_rows(measured, out_json, markdown_of(out_json), title=TITLE, command=command)
        add_training_cost(out_json)


if __name__ == "__main__":
    main()
