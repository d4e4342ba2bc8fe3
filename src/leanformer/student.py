"""Make a student: compress the fine-tuned teacher with a method, distil it, evaluate it, save it."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import torch
import transformers
from torch.utils.data import DataLoader
from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding

from .api import check_output_apart, check_writable, compress, finalize_stage, load, load_tokenizer, output_lock, save
from .architectures import check_sequence_length, get_architecture
from .config import ConfigBase
from .data import TaskData, tokenize_dataset
from .distill import DistillationConfig
from .distill.trainer import check_same_vocabulary, checkpoint_dir, run_distillation
from .errors import ConfigError, DataError, LeanformerError
from .evaluation import evaluate_model
from .model_card import model_card
from .registry import method_for_config
from .teacher import METRICS_FILE
from .training import TrainConfig
from .training_clock import seconds_per_step, trainer_clock


TRAINING_LOG_FILE = "training_log.json"


def distil_student(
    teacher_path: str | Path,
    method_config: ConfigBase,
    task: TaskData,
    train: TrainConfig,
    distillation: DistillationConfig,
    output_dir: str | Path,
    *,
    overwrite: bool = False,
    init_encoder: str | Path | None = None,
    init_student: str | Path | None = None,
    resume: bool = False,
    from_flags: list[str] = (),
) -> Path:
    """Train a compressed copy of the teacher by distillation; write it (and its metrics) to `output_dir`.

    Checkpoints go to `<output_dir>.checkpoints` (and `.refine.checkpoints`); `resume=True`
    continues an interrupted run from them, `overwrite=True` (without resume) starts again.

    `init_encoder`: a general-distillation student (`distill.general`) whose encoder replaces the
    freshly compressed one; the pooler and task head stay the fine-tuned teacher's.
    `from_flags`: settings the command line overrode (named in the line printed when training starts).
    `init_student`: compress this saved student (a previous stage) instead of a copy of the teacher;
    the teacher still distils.
    """
    output_dir = Path(output_dir)
    check_output_apart(output_dir, {"teacher": teacher_path, "init encoder": init_encoder, "previous student": init_student, "data file": task.spec.name})
    with output_lock(output_dir):  # one writer per output: a second run at once fails here
        if output_dir.exists() and not overwrite:
            raise LeanformerError(f"output directory {str(output_dir)!r} exists: pass --overwrite or choose another path")
        check_writable(output_dir)
        refine_dir = output_dir.with_name(output_dir.name + ".refine")
        stale = [d for d in (checkpoint_dir(output_dir), checkpoint_dir(refine_dir)) if d.is_dir()]
        if stale and not resume:
            if not overwrite:
                raise LeanformerError(
                    f"{str(stale[0])!r} holds checkpoints of {_run_state(stale[0])}: pass --resume to continue it or --overwrite to start again"
                )
            for d in stale:
                shutil.rmtree(d)
        transformers.set_seed(train.seed)
        method = method_for_config(method_config)
        teacher = load(teacher_path)
        get_architecture(teacher)  # an unsupported family is the first thing to say
        check_sequence_length(teacher.config, train.max_length, str(teacher_path))
        tokenizer = load_tokenizer(teacher_path, teacher.config.vocab_size)
        check_task_fits(teacher, task, str(teacher_path))
        base = load(init_student) if init_student is not None else teacher
        check_same_vocabulary(teacher, base, str(init_student))
        collator = (
            DataCollatorForSeq2Seq(tokenizer, model=base) if task.spec.kind == "translation" else DataCollatorWithPadding(tokenizer)
        )
        train_split = task.splits["train"]
        if distillation.sequence_level:
            train_split = teacher_translations(teacher, tokenizer, task, train)
        features = tokenize_dataset(task.spec, train_split, tokenizer, train.max_length, for_training=True)
        started = time.perf_counter()

        def batches():  # collated only if the method asks for them; the same seeded order each time
            return iter(DataLoader(features, batch_size=train.batch_size, shuffle=True, collate_fn=collator,
                                   generator=torch.Generator().manual_seed(train.seed)))

        method_config = method.choose(base, method_config, batches())  # what data decides, made explicit and recorded
        student = compress(base, method_config)  # a copy: the teacher stays as it was
        if init_encoder is not None:
            load_encoder(student, init_encoder)
        extras = method.training_extras(student, method_config)
        method.calibrate(student, method_config, batches())
        log_history = []  # every training log line, kept with the student (the report plots it)
        shown = ", ".join(f"{k} {getattr(train, k)}" for k in ("epochs", "max_steps", "batch_size", "max_length", "learning_rate"))
        print(f"leanformer: data {task.spec.name!r}: {task.split_summary()}", file=sys.stderr, flush=True)
        print(f"leanformer: training {str(output_dir)!r} ({method.name}): {shown}"
              + (f" (from flags: {', '.join(from_flags)})" if from_flags else ""), file=sys.stderr, flush=True)
        trainers, per_step = [], {}  # per_step: each training phase's seconds per step, over all its runs
        if train.trains:
            trainer = run_distillation(
                student, teacher, features, collator=collator, tokenizer=tokenizer, train=train,
                distillation=distillation, output_dir=output_dir, extras=extras, resume=resume,
            )
            log_history += [{**entry, "phase": "distillation"} for entry in trainer.state.log_history]
            trainers.append(trainer)
            per_step["distillation"] = seconds_per_step(trainer)
        student = finalize_stage(student, method_config)
        refine = method.refine_train(method_config, train)
        if refine is not None:  # e.g. Block Pruning's "hybrid filled": distil the finalized, smaller model again
            trainer = run_distillation(
                student, teacher, features, collator=collator, tokenizer=tokenizer, train=refine,
                distillation=distillation, output_dir=refine_dir, resume=resume,
            )
            log_history += [{**entry, "phase": "refine"} for entry in trainer.state.log_history]
            trainers.append(trainer)
            per_step["refine"] = seconds_per_step(trainer)
        # this run's seconds, and what earlier, interrupted runs had spent up to the checkpoints resumed from
        seconds = time.perf_counter() - started + sum(trainer_clock(t).before for t in trainers)

        metrics = {
            split: evaluate_model(student, tokenizer, task, split, batch_size=train.eval_batch_size, max_length=train.max_length, progress=train.progress)
            for split in ("validation", "test")
        }
        record = {
            "teacher": str(teacher_path),
            "task": task.spec.name,
            "splits": task.split_summary(),
            "metric_name": task.spec.primary_metric,
            "metrics": metrics,
            "train_seconds": round(seconds, 1),
            "seconds_per_step": per_step,
            "settings": {"method": method.name, "config": method_config.to_dict(), "train": train.to_dict(), "distillation": distillation.to_dict()},
        }
        files = {METRICS_FILE: json.dumps(record, indent=2), TRAINING_LOG_FILE: json.dumps(log_history), "README.md": model_card(student, record)}
        save(student, output_dir, tokenizer, extra_files=files)
        return output_dir


def load_encoder(student, path: str | Path) -> None:
    """Copy the encoder (embeddings and layers, not the pooler) of the model at `path` into `student`."""
    model = load(path)
    check_same_vocabulary(student, model, str(path))
    source = model.base_model.state_dict()
    target = student.base_model
    keep = {k: v for k, v in source.items() if not k.startswith("pooler.")}
    result = target.load_state_dict(keep, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("pooler.")]
    if missing or result.unexpected_keys:
        raise LeanformerError(
            f"the encoder in {str(path)!r} does not fit this student (missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}): "
            "run general distillation with the same method config"
        )


@torch.inference_mode()
def teacher_translations(teacher, tokenizer, task: TaskData, train: TrainConfig):
    """The training split with its targets replaced by the teacher's greedy translations
    (sequence-level knowledge distillation, Kim & Rush 2016)."""
    if task.spec.kind != "translation":
        raise ConfigError(f"sequence_level distillation is for translation tasks; {task.spec.name} is {task.spec.kind}")
    split = task.splits["train"]
    sources = split[task.spec.text_columns[0]]
    outputs = []
    for start in range(0, len(sources), train.eval_batch_size):
        batch = tokenizer(sources[start:start + train.eval_batch_size], max_length=train.max_length, truncation=True, padding=True, return_tensors="pt")
        generated = teacher.generate(**batch, num_beams=1, do_sample=False, max_new_tokens=train.max_length)
        outputs += tokenizer.batch_decode(generated, skip_special_tokens=True)
    return split.remove_columns(task.spec.label_column).add_column(task.spec.label_column, outputs)


def model_kind(model) -> str:
    """The task kind a model's head answers: qa, translation, regression (one output) or classification."""
    if "QuestionAnswering" in type(model).__name__:
        return "qa"
    if getattr(model.config, "is_encoder_decoder", False):
        return "translation"
    return "regression" if getattr(model.config, "num_labels", 2) == 1 else "classification"


def _run_state(checkpoints: Path) -> str:
    """"an interrupted run", or "a finished run whose student is gone" when its last checkpoint is its last step."""
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(checkpoints))
    state = Path(last) / "trainer_state.json" if last else None
    if state is not None and state.is_file():
        record = json.loads(state.read_text())
        if record.get("max_steps") and record.get("global_step", 0) >= record["max_steps"]:
            return "a finished run whose student is no longer there (--resume rebuilds it from the last step)"
    return "an interrupted run"


def check_task_fits(teacher, task: TaskData, source: str) -> None:
    """The task is of the kind the model's head answers and its labels are the model's (the
    tokenizer's fit to the embedding table is checked where it is loaded: api.load_tokenizer)."""
    spec = task.spec
    if teacher.base_model is teacher:  # a bare encoder (BertModel): no head (MarianMTModel's base is MarianModel)
        raise DataError(f"the model {source!r} is a bare {type(teacher).__name__} without a task head: "
                        "fine-tune it on the task first (leanformer finetune --model DIR)")
    kind = model_kind(teacher)
    if kind != spec.kind and {kind, spec.kind} != {"regression", "classification"}:
        raise DataError(f"the model {source!r} is a {kind} model but {spec.name} is a {spec.kind} task: use a model trained for this task")
    if spec.kind == "regression" and kind != "regression":
        raise DataError(
            f"{spec.name} has numeric (regression) labels but the model {source!r} predicts {teacher.config.num_labels} classes: "
            "use a model trained on this task, or pass --kind classification if the numbers are class ids")
    if spec.kind == "classification":
        names = list(spec.label_names or [])
        n = getattr(teacher.config, "num_labels", None)
        if n != len(names):
            raise DataError(
                f"the teacher {source!r} predicts {n} classes but {spec.name} has {len(names)} ({', '.join(map(str, names))}): "
                "fine-tune a teacher on this task (leanformer finetune)"
            )
        id2label = {int(k): str(v) for k, v in (teacher.config.id2label or {}).items()}
        teacher_names = [id2label.get(i, "") for i in range(n)]
        if not all(name.startswith("LABEL_") for name in teacher_names) and teacher_names != [str(x) for x in names]:
            raise DataError(
                f"the teacher {source!r} was trained on labels {teacher_names} but {spec.name} has {names}: "
                "fine-tune a teacher on this task, or give the data the teacher's label names"
            )


def stage_output(output_dir: str | Path, index: int, count: int, method: str) -> Path:
    """Where stage `index` (0-based) of `count` writes: the last stage writes `output_dir` itself."""
    output_dir = Path(output_dir)
    return output_dir if index == count - 1 else output_dir.with_name(f"{output_dir.name}.stage{index + 1}-{method}")


def distil(
    teacher: str | Path,
    config,
    task,
    output_dir: str | Path,
    *,
    train: TrainConfig | None = None,
    distillation: DistillationConfig | None = None,
    overwrite: bool = False,
    resume: bool = False,
    init_encoder: str | Path | None = None,
) -> Path:
    """The whole job from Python, as `leanformer compress` runs it (same checks, progress bars and
    saved files): the teacher directory, a method config, a `Recipe` or a recipe file, and the data
    (a built-in task name or data file, a `TaskConfig`, or loaded `TaskData`) to a trained student
    saved in `output_dir`, whose path is returned.

        leanformer.distil(teacher_dir, QuantizationConfig(), "glue/sst2", "student/", train=TrainConfig(epochs=1))
    """
    from .data import TaskConfig
    from .recipe import Recipe, Stage

    train = train or TrainConfig()
    if isinstance(config, (str, Path)):
        recipe = Recipe.from_yaml(Path(config))
    elif isinstance(config, Recipe):
        recipe = config
    else:
        recipe = Recipe([Stage(method_for_config(config).name, config)])
    if not isinstance(task, TaskData):
        task = (task if isinstance(task, TaskConfig) else TaskConfig(task=str(task))).load(seed=train.seed)
    return distil_recipe(teacher, recipe, task, output_dir, train=train, distillation=distillation,
                         overwrite=overwrite, init_encoder=init_encoder, resume=resume)


def distil_recipe(
    teacher_path: str | Path,
    recipe,
    task: TaskData,
    output_dir: str | Path,
    *,
    train: TrainConfig,
    distillation: DistillationConfig | None = None,
    overwrite: bool = False,
    init_encoder: str | Path | None = None,
    resume: bool = False,
) -> Path:
    """Run a recipe's stages in order, each compressing the previous stage's student and distilled
    from the original teacher. A finished stage (its output holds metrics) is reused, so an
    interrupted multi-stage run resumes at the stage it stopped in (`resume=True`); `overwrite=True`
    without `resume` runs every stage again.

    `train`/`distillation` apply to stages that do not set their own (distillation then defaults
    to the method's own losses).
    """
    from .distill.general import general_distillation

    check_output_apart(output_dir, {"teacher": teacher_path, "init encoder": init_encoder, "data file": task.spec.name})
    with output_lock(output_dir):  # one writer per output: a second run at once fails here
        if Path(output_dir).exists() and not overwrite:
            raise LeanformerError(f"output directory {str(output_dir)!r} exists: pass --overwrite or choose another path")
        previous = None
        count = len(recipe.stages)
        for i, stage in enumerate(recipe.stages):
            method = method_for_config(stage.config)
            out = stage_output(output_dir, i, count, stage.method)
            finished = i < count - 1 and (out / METRICS_FILE).is_file()
            if finished and not resume and not overwrite:
                raise LeanformerError(
                    f"stage {i + 1} of an earlier run is in {str(out)!r}: pass --resume to continue that run or --overwrite to start again"
                )
            if not (finished and resume):
                stage_train = stage.train or train
                losses = stage.distillation or distillation or method.default_distillation()
                encoder = init_encoder if i == 0 else None
                if i == 0 and stage.general is not None and encoder is None:
                    encoder = Path(str(output_dir) + ".general")
                    if not (encoder / "config.json").is_file():  # stage 1 already done: reuse it
                        general_distillation(stage.general, stage.config, stage.general_train or stage_train, encoder)
                distil_student(
                    teacher_path, stage.config, task, stage_train, losses, out,
                    overwrite=overwrite or i < count - 1, init_encoder=encoder, init_student=previous, resume=resume,
                    from_flags=stage.from_flags,
                )
            previous = out
        return Path(output_dir)
