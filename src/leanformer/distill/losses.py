"""Distillation losses, and the declaration of which student activation matches which teacher one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..architectures import base_prefix, get_architecture, iter_layers
from ..errors import ConfigError
from .capture import CaptureTarget
from .config import DistillationConfig


def logit_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """T²·KL(teacher ‖ student) over the last axis, averaged over rows (positions where `mask` is true).

    A last axis of size 1 is a regression output: plain MSE then.
    """
    if student.shape[-1] == 1:
        return F.mse_loss(student.float(), teacher.float())
    s = student.reshape(-1, student.shape[-1]).float()
    t = teacher.reshape(-1, teacher.shape[-1]).float()
    if mask is not None:
        keep = mask.reshape(-1).bool()
        s, t = s[keep], t[keep]
        if not keep.any():  # e.g. an MLM batch where nothing was masked: no signal, not NaN
            return student.sum() * 0.0
    kl = F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1), log_target=True, reduction="batchmean")
    return kl * temperature**2


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error over the entries whose positions are real tokens.

    `mask` is (batch, positions) for hidden states (batch, positions, width), or a
    (batch, query_len, key_len) pair mask for attention scores (batch, heads, query_len, key_len).
    """
    if student.shape != teacher.shape:
        raise ConfigError(
            f"student and teacher activations differ in shape {tuple(student.shape)} vs {tuple(teacher.shape)}: "
            "intermediate losses need matching widths and head counts"
        )
    diff = (student.float() - teacher.float()) ** 2
    if mask is None:
        return diff.mean()
    m = mask.to(diff.dtype)
    m = m.unsqueeze(-1) if diff.dim() == 3 else m.unsqueeze(1)  # broadcast over width, or over heads
    m = m.expand_as(diff)
    return (diff * m).sum() / m.sum().clamp_min(1.0)


Stream = Literal["encoder", "decoder"]


@dataclass(frozen=True)
class IntermediatePair:
    """One intermediate loss: student activation vs teacher activation, a weight, and its masking."""

    student: CaptureTarget
    teacher: CaptureTarget
    weight: float
    group: str  # "embeddings" | "hidden" | "attention": the name it is logged under
    query_stream: Stream = "encoder"  # which attention mask covers the positions
    key_stream: Stream = "encoder"  # (attention scores only) which mask covers the keys
    # (attention scores only) the teacher heads the student's heads came from, when some were removed
    teacher_heads: tuple[int, ...] | None = None


def layer_pairs(n_student: int, n_teacher: int, layer_map: str) -> list[tuple[int, int]]:
    if n_student == n_teacher:
        return [(i, i) for i in range(n_student)]
    if layer_map == "last":
        return [(i, n_teacher - n_student + i) for i in range(n_student)]
    return [(i, round((i + 1) * n_teacher / n_student) - 1) for i in range(n_student)]


def recorded_teacher_layers(student: nn.Module) -> dict[str, list[int]]:
    """{stack: the teacher layer each student layer came from}, as a recipe stage that changed the
    depth recorded it (`teacher_layers` in its structure); empty when none did."""
    recorded: dict[str, list[int]] = {}
    for stage in (getattr(student.config, "leanformer", None) or {}).get("recipe", []):
        recorded.update((stage.get("structure") or {}).get("teacher_layers") or {})
    return recorded


def recorded_teacher_heads(student: nn.Module) -> list[list[int]] | None:
    """The teacher head each student head came from, per attention (layer order), composed over the
    recipe stages that removed heads (`head_indices` in their structure); None when none did."""
    kept = None
    for stage in (getattr(student.config, "leanformer", None) or {}).get("recipe", []):
        indices = (stage.get("structure") or {}).get("head_indices")
        if indices is None:
            continue
        if kept is not None and len(kept) != len(indices):
            raise ConfigError("two recipe stages removed heads from different numbers of attentions: distil without attention_weight")
        kept = indices if kept is None else [[before[h] for h in now] for before, now in zip(kept, indices)]
    return kept


def default_intermediate_pairs(student: nn.Module, teacher: nn.Module, config: DistillationConfig) -> list[IntermediatePair]:
    """The KroneckerBERT set: embedding output, every layer's output and attention scores. A student
    that records which teacher layer each of its layers came from learns from those; otherwise
    layers pair by `config.layer_map`."""
    pairs: list[IntermediatePair] = []
    if not config.uses_intermediate:
        return pairs
    spec_s, spec_t = get_architecture(student), get_architecture(teacher)
    if config.embedding_weight:
        if spec_s.embeddings_output is None or spec_t.embeddings_output is None:
            raise ConfigError(f"{spec_s.model_type} has no single embedding module to distil: set embedding_weight 0")
        pairs.append(
            IntermediatePair(
                CaptureTarget(base_prefix(student) + spec_s.embeddings_output),
                CaptureTarget(base_prefix(teacher) + spec_t.embeddings_output),
                config.embedding_weight,
                "embeddings",
            )
        )
    s_layers, t_layers = list(iter_layers(student)), list(iter_layers(teacher))
    recorded = recorded_teacher_layers(student)
    heads = recorded_teacher_heads(student) if config.attention_weight else None
    attention_index = {(layer.name, att.module): a for a, (layer, att) in enumerate((l, att) for l in s_layers for att in l.stack.attentions)}
    for stack_s, stack_t in zip(spec_s.stacks, spec_t.stacks):
        ls = [layer for layer in s_layers if layer.stack is stack_s]
        lt = [layer for layer in t_layers if layer.stack is stack_t]
        stream = "decoder" if stack_s.name == "decoder" else "encoder"
        mapped = recorded.get(stack_s.name)
        if mapped is not None and (len(mapped) != len(ls) or max(mapped, default=-1) >= len(lt)):
            raise ConfigError(f"the student records {stack_s.name} teacher layers {mapped} but has {len(ls)} layers and the teacher {len(lt)}: "
                              "distil it from the teacher it was built from")
        pairs_ij = list(enumerate(mapped)) if mapped is not None else layer_pairs(len(ls), len(lt), config.layer_map)
        for i, j in pairs_ij:
            if config.hidden_weight:
                pairs.append(
                    IntermediatePair(CaptureTarget(ls[i].name), CaptureTarget(lt[j].name), config.hidden_weight, "hidden", stream)
                )
            if config.attention_weight:
                for att_s, att_t in zip(stack_s.attentions, stack_t.attentions):
                    pairs.append(
                        IntermediatePair(
                            CaptureTarget(f"{ls[i].name}.{att_s.module}", "attention_scores"),
                            CaptureTarget(f"{lt[j].name}.{att_t.module}", "attention_scores"),
                            config.attention_weight,
                            "attention",
                            stream,
                            "encoder" if att_s.cross else stream,
                            tuple(heads[attention_index[(ls[i].name, att_s.module)]]) if heads else None,
                        )
                    )
    return pairs
