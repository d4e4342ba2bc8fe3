"""The cubic threshold schedule and the λ schedule, driven by a `transformers.TrainerCallback`.

With p the progress through the ramp (0 before it, 1 after it):
- τ_t = 0 during the initial warm-up, then τ_t = τ_f + (0 − τ_f)(1 − p)³, then τ_f held during
  the final warm-up (the masks settle while the weights keep training);
- λ_t = λ_final · τ_t / τ_f: the regulariser grows with the threshold;
- topk and magnitude masks ramp their pruned fraction the same way, from 0 to `final_sparsity`.
Warm-up lengths are fractions of the run's total optimizer steps.
"""

from __future__ import annotations

from transformers import TrainerCallback

from .config import BlockPruningConfig
from .layers import PruningState


def cubic_threshold_schedule(step: int, total_steps: int, final: float, initial_warmup: float, final_warmup: float) -> float:
    """The value at `step` of a schedule from 0 to `final` (warm-ups as fractions of `total_steps`)."""
    warm = initial_warmup * total_steps
    ramp_end = total_steps * (1.0 - final_warmup)
    if step < warm:
        return 0.0
    if step >= ramp_end:
        return final
    progress = (step - warm) / (ramp_end - warm)
    return final + (0.0 - final) * (1.0 - progress) ** 3


def regularization_lambda(threshold: float, final_threshold: float, final_lambda: float) -> float:
    """λ_t = λ_final · τ_t / τ_f."""
    return final_lambda * threshold / final_threshold


def update_state(state: PruningState, config: BlockPruningConfig, step: int, total_steps: int) -> None:
    """Set τ, the pruned fraction and λ for `step` of a run of `total_steps` optimizer steps."""
    ramp = cubic_threshold_schedule(step, total_steps, 1.0, config.initial_warmup, config.final_warmup)
    state.threshold = config.final_threshold * ramp
    state.sparsity = config.final_sparsity * ramp
    state.regularization = regularization_lambda(state.threshold, config.final_threshold, config.final_lambda)


def finish_state(state: PruningState, config: BlockPruningConfig) -> None:
    """The end of the schedule: the masks `finalize` bakes."""
    update_state(state, config, 1, 1)


class PruningScheduleCallback(TrainerCallback):
    """Updates the shared `PruningState` before every optimizer step (and on resume)."""

    def __init__(self, state: PruningState, config: BlockPruningConfig):
        self.state, self.config = state, config

    def _update(self, trainer_state) -> None:
        update_state(self.state, self.config, trainer_state.global_step, max(trainer_state.max_steps, 1))

    def on_train_begin(self, args, state, control, **kwargs):
        self._update(state)

    def on_step_begin(self, args, state, control, **kwargs):
        self._update(state)

