"""Quantized attention matmuls through transformers' attention interface (no per-model attention code).

Every family in the tables that dispatches attention through `ALL_ATTENTION_FUNCTIONS` (BERT,
RoBERTa, DistilBERT, Marian, BART) hands the attention module and the projected Q, K, V to the
function named by `config._attn_implementation`. Registering one function here quantizes Q and K
before QKᵀ and the softmax output and V before the weighted sum, in every such model, using the
quantizers attached to each attention module (`module.attention_quantizers`).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

NAME = "leanformer_quantized"


def quantized_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
):
    quant = module.attention_quantizers
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(quant["query"](query), quant["key"](key).transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = nn.functional.softmax(scores, dim=-1)
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    output = torch.matmul(quant["probs"](probs), quant["value"](value))
    return output.transpose(1, 2).contiguous(), probs


def register() -> None:
    # The additive float mask of eager attention is what the function above expects.
    AttentionInterface.register(NAME, quantized_attention)
    AttentionMaskInterface.register(NAME, eager_mask)
