"""Run one distillation step on tiny models; launched by test_distributed.py with 1 process or torchrun.

Writes the first logged loss (averaged over processes by the Trainer) to the JSON file given as argv[1].
The data set is exactly one global batch, so 1 process and 2 processes see the same examples.
"""

import json
import os
import sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import TrainingArguments

sys.path.insert(0, str(Path(__file__).parent))
from leanformer.distill import DistillationConfig, DistillationTrainer  # noqa: E402
from tiny_models import tiny_model  # noqa: E402

GLOBAL_BATCH = 8


def main(out_path: str) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    teacher = tiny_model("bert", seed=0)
    student = tiny_model("bert", seed=1)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 100, (GLOBAL_BATCH, 12), generator=g)
    data = Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist(), "labels": (ids[:, 0] % 2).tolist()})
    args = TrainingArguments(
        output_dir=str(Path(out_path).parent / f"run{world}"), per_device_train_batch_size=GLOBAL_BATCH // world,
        max_steps=2, learning_rate=1e-3, logging_steps=1, report_to=[], save_strategy="no", use_cpu=True,
        ddp_backend="gloo" if world > 1 else None, seed=0, disable_tqdm=True,
    )
    config = DistillationConfig(logit_weight=1.0, task_weight=1.0, embedding_weight=1.0, hidden_weight=1.0, attention_weight=1.0)
    trainer = DistillationTrainer(model=student, args=args, train_dataset=data, teacher=teacher, distillation=config)
    trainer.train()
    if trainer.is_world_process_zero():
        logged = [h for h in trainer.state.log_history if "loss" in h]
        Path(out_path).write_text(json.dumps({"world_size": trainer.args.world_size, "first": logged[0], "steps": trainer.state.global_step}))


if __name__ == "__main__":
    main(sys.argv[1])
