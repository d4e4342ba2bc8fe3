"""Capture intermediate activations with forward hooks: no model surgery, any attention backend.

Two things can be captured at a module name:
- `output`: the module's output (first element when it returns a tuple): embedding-layer output,
  a layer's hidden state.
- `attention_scores`: pre-softmax scores Q·Kᵀ/√d of an attention module, shape
  (batch, heads, query_len, key_len), without the mask. They are computed from the outputs of
  the module's query and key projections (found through the architecture tables), so the
  model keeps its normal attention implementation (sdpa) whether or not the loss is on; only
  when this capture is requested do the scores get materialised. Relative-position biases
  (MPNet) are not part of Q·Kᵀ/√d and are not included, as in KroneckerBERT's loss; rotary
  positions (ModernBERT) are applied after the projections and are not either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..architectures import attention_heads, get_architecture, iter_layers
from ..errors import ConfigError

CaptureKind = Literal["output", "attention_scores"]


@dataclass(frozen=True)
class CaptureTarget:
    name: str  # full module name in the model (as in `model.named_modules()`)
    kind: CaptureKind = "output"


def _attention_parts(model: nn.Module, name: str):
    """(layer module, AttentionSpec) of an attention module name."""
    for layer in iter_layers(model):
        for att in layer.stack.attentions:
            if f"{layer.name}.{att.module}" == name:
                return layer.module, att
    raise ConfigError(f"{name!r} is not an attention module of this {get_architecture(model).model_type} model")


class ActivationCapture:
    """Registers hooks once; `values[target]` holds the latest forward pass's activation."""

    def __init__(self, model: nn.Module, targets: list[CaptureTarget]):
        self.values: dict[CaptureTarget, torch.Tensor] = {}
        self._handles = []
        modules = dict(model.named_modules())
        for target in targets:
            if target.kind == "output":
                if target.name not in modules:
                    raise ConfigError(f"no module named {target.name!r} in {type(model).__name__}")
                self._handles.append(modules[target.name].register_forward_hook(self._store_output(target)))
            elif target.kind == "attention_scores":
                self._hook_scores(model, target)
            else:
                raise ConfigError(f"unknown capture kind {target.kind!r}; use 'output' or 'attention_scores'")

    def _store_output(self, target: CaptureTarget):
        def hook(module, args, output):
            self.values[target] = output[0] if isinstance(output, (tuple, list)) else output

        return hook

    def _hook_scores(self, model: nn.Module, target: CaptureTarget) -> None:
        layer, att = _attention_parts(model, target.name)
        query, key = layer.get_submodule(att.query), layer.get_submodule(att.key)
        if att.fused_qkv:  # one linear computes [Q; K; V]: the scores come from its thirds
            def on_qkv(module, args, output):
                q, k, _ = output.chunk(3, dim=-1)
                self.values[target] = attention_scores(q, k, attention_heads(layer, att))

            self._handles.append(query.register_forward_hook(on_qkv))
            return
        pending: dict[str, torch.Tensor] = {}

        def on_key(module, args, output):
            q = pending.pop("q", None)
            if q is None:  # key projection ran before the query one: pair them in on_query
                pending["k"] = output
                return
            self.values[target] = attention_scores(q, output, attention_heads(layer, att))

        def on_query(module, args, output):
            k = pending.pop("k", None)
            if k is not None:
                self.values[target] = attention_scores(output, k, attention_heads(layer, att))
            else:
                pending["q"] = output

        self._handles.append(query.register_forward_hook(on_query))
        self._handles.append(key.register_forward_hook(on_key))

    def clear(self) -> None:
        self.values.clear()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.values.clear()

    def __enter__(self) -> "ActivationCapture":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def attention_scores(q: torch.Tensor, k: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Q·Kᵀ/√d per head from projection outputs (batch, len, heads·d) -> (batch, heads, q_len, k_len)."""
    batch, q_len, width = q.shape
    head_dim = width // num_heads
    qh = q.view(batch, q_len, num_heads, head_dim).transpose(1, 2)
    kh = k.view(batch, k.shape[1], num_heads, head_dim).transpose(1, 2)
    return torch.matmul(qh, kh.transpose(-1, -2)) / math.sqrt(head_dim)
