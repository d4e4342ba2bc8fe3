"""Training time that survives resuming: the seconds a training took, summed over its runs.

The Trainer's `train_runtime` covers the last run only, so a training that was interrupted and
resumed (the way long runs go on 2 cores) would report a fraction of what it cost. Each
checkpoint records the seconds spent up to it; a run resumed from that checkpoint starts counting
there. Work redone after the last checkpoint is counted again: it was paid for again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

CLOCK_FILE = "leanformer_clock.json"


def seconds_before(checkpoint: str | Path | None) -> float:
    """Training seconds spent up to `checkpoint` (0 without one, or for checkpoints written before
    the clock existed: what they cost is not known)."""
    path = Path(checkpoint) / CLOCK_FILE if checkpoint else None
    return float(json.loads(path.read_text())["seconds"]) if path is not None and path.is_file() else 0.0


class TrainingClock(TrainerCallback):
    """Writes the training seconds so far into every checkpoint the Trainer saves."""

    def __init__(self, resumed_from: str | Path | None = None):
        self.before = seconds_before(resumed_from)
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.started

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            (checkpoint / CLOCK_FILE).write_text(json.dumps({"seconds": round(self.seconds, 1)}))


def trainer_clock(trainer) -> TrainingClock:
    """The clock a trainer was given (run_distillation and finetune give every trainer one)."""
    return next(c for c in trainer.callback_handler.callbacks if isinstance(c, TrainingClock))


def seconds_per_step(trainer) -> float | None:
    """Seconds per optimizer step over all of a finished training's runs (the Trainer's
    `train_runtime / step` counts the last run's seconds against every step, resumed ones too)."""
    steps = trainer.state.global_step
    return round(trainer_clock(trainer).seconds / steps, 3) if steps else None
