"""Analytic FLOPs per token of a forward pass (FLOPs = 2 x multiply-adds), for comparing models.

Rules, applied by walking the module tree from the root:
- A module that defines a method `flops_per_token(seq_len)` is asked, and its children are not
  visited. Compression methods define it on their layers (a Kronecker layer knows its two small
  GEMMs; a quantized layer may count its own way). If an attention module itself defines it, its
  answer replaces the score/weighted-sum matmuls below too.
- `nn.Linear`: 2 * in_features * out_features. Biases, LayerNorms, activations, softmax, residual
  adds and dropout are ignored: they are a few percent of the total and the same for teacher and
  student.
- `nn.Embedding`: 0 (a lookup).
- Each attention block named in the architecture tables adds its two matmuls, Q.K^T and
  softmax.V: 2 * 2 * seq_len * (num_heads * head_dim) per token. The head count is read from the
  attention module (`architectures.attention_heads`), so a model whose layers were pruned to
  different head counts counts right; head_dim = the query projection's width / heads (a third of
  a fused Q/K/V linear's rows; the value head size is assumed equal). A block with 0 heads adds nothing.
- Encoder models: the encoder, per token. Encoder-decoders: encoder + decoder per token, as if
  source and target both had `seq_len` tokens; decoder self-attention is counted over the full
  `seq_len` (what a training or teacher-forced forward computes; causal masking saves nothing in
  eager attention), and cross-attention attends to `seq_len` source tokens.
- Modules that run once per sequence are divided by `seq_len`: a pooler (any linear inside the
  base model but outside the layer stacks and embeddings) always, and the task head outside the
  base model when the task is sequence-level (`...ForSequenceClassification`,
  `...ForMultipleChoice`; override with `per_sequence_head`). Token-level heads (question
  answering, token classification, MLM and seq2seq LM heads) run per token and are counted in full.

The result is rounded to an int at the end, so per-sequence parts may round.
"""

from __future__ import annotations

from torch import nn

from ..architectures import attention_heads, base_prefix, embedding_module_names, get_architecture, iter_layers

_SEQUENCE_LEVEL_HEADS = ("ForSequenceClassification", "ForMultipleChoice")


def _is_under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def attention_matmul_flops(num_heads: int, query_out_features: int, seq_len: int) -> float:
    """Q.K^T and softmax.V, per query token: 2 matmuls x 2 FLOPs x seq_len x (heads x head_dim)."""
    if num_heads == 0:
        return 0.0
    head_dim = query_out_features // num_heads
    return 2 * 2 * seq_len * num_heads * head_dim


def flops_per_token(model: nn.Module, seq_len: int = 128, *, per_sequence_head: bool | None = None) -> int:
    """FLOPs per token of a forward pass over `seq_len` tokens (rules: module docstring)."""
    spec = get_architecture(model)  # raises UnsupportedModelError for unknown families
    prefix = base_prefix(model)
    if per_sequence_head is None:
        per_sequence_head = type(model).__name__.endswith(_SEQUENCE_LEVEL_HEADS)

    attention_blocks = {}  # attention module name -> (heads, query projection width)
    for layer in iter_layers(model):
        for att in layer.stack.attentions:
            width = layer.module.get_submodule(att.query).out_features // att.qkv_parts
            attention_blocks[f"{layer.name}.{att.module}"] = (attention_heads(layer.module, att), width)
    stacks = [prefix + stack.layers for stack in spec.stacks]
    embeddings = embedding_module_names(model)
    base = prefix.rstrip(".")

    def per_token_share(name: str) -> float:
        """1 for modules that run on every token, 1/seq_len for those that run once per sequence."""
        if _is_under(name, stacks) or _is_under(name, embeddings):
            return 1.0
        inside_base = not base or _is_under(name, [base])
        if inside_base or per_sequence_head:
            return 1.0 / seq_len  # pooler, or a sequence-level task head
        return 1.0

    total = 0.0

    def visit(name: str, module: nn.Module) -> None:
        nonlocal total
        own = getattr(module, "flops_per_token", None)
        if callable(own):
            total += own(seq_len) * per_token_share(name)
            return
        if name in attention_blocks:
            total += attention_matmul_flops(*attention_blocks[name], seq_len)
        if isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features * per_token_share(name)
        for child_name, child in module.named_children():
            visit(f"{name}.{child_name}" if name else child_name, child)

    visit("", model)
    return round(total)
