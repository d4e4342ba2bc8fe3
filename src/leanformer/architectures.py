"""Where things live in each supported transformer family, as data.

Every method and every loss finds embeddings, Q/K/V, attention output and FFN in/out through
these tables, keyed by `config.model_type`. Supporting a new family means adding one entry
to `ARCHITECTURES`; nothing else changes. Paths are relative to `model.base_model` (the bare
transformer under any task head); attention and FFN paths are relative to one layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from .errors import ConfigError, UnsupportedModelError

if TYPE_CHECKING:  # torch is imported by what runs, not by the tables and configs
    from torch import nn


@dataclass(frozen=True)
class AttentionSpec:
    """One attention block of a layer. `module` holds the head count in `num_heads_attr`, or, where
    it keeps none (ModernBERT), the width of one head in `head_dim_attr`."""

    module: str
    query: str
    key: str
    value: str
    output: str
    num_heads_attr: str | None
    cross: bool = False  # keys/values come from the encoder (decoder cross-attention)
    # more projections whose output rows are per head (sliced with the heads when heads are
    # removed), where the model has them: DeBERTa's position projections without share_att_key
    head_projections: tuple[str, ...] = ()
    # Q, K and V are one linear (query = key = value), its rows [Q; K; V], each (heads × head_dim)
    fused_qkv: bool = False
    head_dim_attr: str | None = None

    @property
    def qkv_parts(self) -> int:
        """How many projections share the query linear's rows (3 when fused, else 1)."""
        return 3 if self.fused_qkv else 1


@dataclass(frozen=True)
class FFNSpec:
    input: str  # W1: hidden -> intermediate (gated: -> 2 × intermediate, rows [up; gate])
    output: str  # W2: intermediate -> hidden
    # W1 holds an up and a gate projection (act(up) ⊙ gate): intermediate dim i is rows i and
    # intermediate + i of W1 and column i of W2
    gated: bool = False

    @property
    def input_parts(self) -> int:
        return 2 if self.gated else 1


@dataclass(frozen=True)
class StackSpec:
    """A stack of identical layers: the encoder, or the decoder of an encoder-decoder."""

    name: str
    layers: str  # the nn.ModuleList
    attentions: tuple[AttentionSpec, ...]
    ffn: FFNSpec
    num_layers_attr: str  # the config attribute that holds the stack's layer count
    # config attributes that list one value per layer (ModernBERT's layer_types): they follow the layers kept
    per_layer_config: tuple[str, ...] = ()
    # the stack's first layer is built differently from the others (ModernBERT's has no attention
    # norm): a shallower model keeps it, else transformers would rebuild it without that module
    keeps_first_layer: bool = False


@dataclass(frozen=True)
class ArchitectureSpec:
    model_type: str
    word_embeddings: str  # the token table (shared by encoder and decoder in Marian/BART)
    embedding_modules: tuple[str, ...]  # every module that holds embedding parameters
    embeddings_output: str | None  # module whose output is "the embedding-layer output", if one exists
    stacks: tuple[StackSpec, ...]
    # config attribute names, so code can read sizes without knowing the family
    hidden_size: str
    num_heads: str
    intermediate_size: str
    # attention dispatched through transformers' attention interface (`config._attn_implementation`),
    # so a registered function can replace it (quantized attention matmuls)
    attention_interface: bool = True
    # position ids start at pad_token_id + 1 (RoBERTa, MPNet): that many positions are never used
    positions_after_padding: bool = False
    # forward argument of the attention module holding a per-head bias computed once for all layers
    # with the model's full head count (MPNet's relative position bias), or None: a method that
    # removes heads must hand each layer its kept heads' slice of it
    shared_head_bias: str | None = None

    @property
    def is_encoder_decoder(self) -> bool:
        return len(self.stacks) > 1


_BERT_ATTENTION = AttentionSpec(
    module="attention.self",
    query="attention.self.query",
    key="attention.self.key",
    value="attention.self.value",
    output="attention.output.dense",
    num_heads_attr="num_attention_heads",
)
_BERT_CONFIG = dict(
    hidden_size="hidden_size",
    num_heads="num_attention_heads",
    intermediate_size="intermediate_size",
)


def _bert_like(model_type: str, attention: AttentionSpec = _BERT_ATTENTION, **options) -> ArchitectureSpec:
    """BERT's layout (embeddings, encoder.layer[i] with one attention and intermediate/output FFN);
    `attention` names the family's attention modules, `options` the rest of its ArchitectureSpec."""
    return ArchitectureSpec(
        model_type=model_type,
        word_embeddings="embeddings.word_embeddings",
        embedding_modules=("embeddings",),
        embeddings_output="embeddings",
        stacks=(StackSpec(name="encoder", layers="encoder.layer", attentions=(attention,),
                          ffn=FFNSpec(input="intermediate.dense", output="output.dense"), num_layers_attr="num_hidden_layers"),),
        **_BERT_CONFIG,
        **options,
    )


def _seq2seq(model_type: str) -> ArchitectureSpec:
    def attention(name: str, cross: bool = False) -> AttentionSpec:
        return AttentionSpec(
            module=name,
            query=f"{name}.q_proj",
            key=f"{name}.k_proj",
            value=f"{name}.v_proj",
            output=f"{name}.out_proj",
            num_heads_attr="num_heads",
            cross=cross,
        )

    ffn = FFNSpec(input="fc1", output="fc2")
    return ArchitectureSpec(
        model_type=model_type,
        word_embeddings="shared",
        embedding_modules=(
            "shared",
            "encoder.embed_tokens",
            "encoder.embed_positions",
            "decoder.embed_tokens",
            "decoder.embed_positions",
            "encoder.layernorm_embedding",
            "decoder.layernorm_embedding",
        ),
        # token and position embeddings are added inside the stack's forward: no single module to hook
        embeddings_output=None,
        stacks=(
            StackSpec(
                name="encoder",
                layers="encoder.layers",
                attentions=(attention("self_attn"),),
                ffn=ffn,
                num_layers_attr="encoder_layers",
            ),
            StackSpec(
                name="decoder",
                layers="decoder.layers",
                attentions=(attention("self_attn"), attention("encoder_attn", cross=True)),
                ffn=ffn,
                num_layers_attr="decoder_layers",
            ),
        ),
        hidden_size="d_model",
        num_heads="encoder_attention_heads",
        intermediate_size="encoder_ffn_dim",
    )


ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "bert": _bert_like("bert"),
    "roberta": _bert_like("roberta", positions_after_padding=True),
    "xlm-roberta": _bert_like("xlm-roberta", positions_after_padding=True),  # RoBERTa's layout, a multilingual vocabulary
    # ELECTRA's discriminator: BERT's layers; its embeddings may be narrower than the hidden size
    # (then `embeddings_project` widens them inside the base model, before the first layer)
    "electra": _bert_like("electra"),
    # DeBERTa-v2/v3: BERT's layout with disentangled attention, computed by the attention module
    # itself. Q·Kᵀ (captured for distillation) is its content-to-content term; the position terms
    # reuse key_proj/query_proj when share_att_key (v3), else their own projections, sliced with the heads.
    "deberta-v2": _bert_like(
        "deberta-v2",
        AttentionSpec(
            module="attention.self",
            query="attention.self.query_proj",
            key="attention.self.key_proj",
            value="attention.self.value_proj",
            output="attention.output.dense",
            num_heads_attr="num_attention_heads",
            head_projections=("attention.self.pos_key_proj", "attention.self.pos_query_proj"),
        ),
        attention_interface=False,
    ),
    "mpnet": _bert_like(
        "mpnet",
        AttentionSpec(
            module="attention.attn",
            query="attention.attn.q",
            key="attention.attn.k",
            value="attention.attn.v",
            output="attention.attn.o",
            num_heads_attr="num_attention_heads",
        ),
        attention_interface=False,  # MPNet computes attention with its relative position bias itself
        positions_after_padding=True,
        shared_head_bias="position_bias",
    ),
    "distilbert": ArchitectureSpec(
        model_type="distilbert",
        word_embeddings="embeddings.word_embeddings",
        embedding_modules=("embeddings",),
        embeddings_output="embeddings",
        stacks=(
            StackSpec(
                name="encoder",
                layers="transformer.layer",
                attentions=(
                    AttentionSpec(
                        module="attention",
                        query="attention.q_lin",
                        key="attention.k_lin",
                        value="attention.v_lin",
                        output="attention.out_lin",
                        num_heads_attr="n_heads",
                    ),
                ),
                ffn=FFNSpec(input="ffn.lin1", output="ffn.lin2"),
                num_layers_attr="n_layers",
            ),
        ),
        hidden_size="dim",
        num_heads="n_heads",
        intermediate_size="hidden_dim",
    ),
    # ModernBERT: fused Wqkv, gated Wi, rotary positions (inside the attention, after the projections:
    # distillation's captured Q·Kᵀ is before rotation, as MPNet's leaves out its relative bias),
    # alternating local/global layers (`layer_types`), no biases
    "modernbert": ArchitectureSpec(
        model_type="modernbert",
        word_embeddings="embeddings.tok_embeddings",
        embedding_modules=("embeddings",),
        embeddings_output="embeddings",
        stacks=(
            StackSpec(
                name="encoder",
                layers="layers",
                attentions=(AttentionSpec(module="attn", query="attn.Wqkv", key="attn.Wqkv", value="attn.Wqkv", output="attn.Wo",
                                          num_heads_attr=None, head_dim_attr="head_dim", fused_qkv=True),),
                ffn=FFNSpec(input="mlp.Wi", output="mlp.Wo", gated=True),
                num_layers_attr="num_hidden_layers",
                per_layer_config=("layer_types",),
                keeps_first_layer=True,
            ),
        ),
        **_BERT_CONFIG,
    ),
    "marian": _seq2seq("marian"),
    "bart": _seq2seq("bart"),
}


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_divides(setting: str, shape, name: str, rows: int, cols: int) -> None:
    """A (rows x cols) weight split into `shape` blocks or factors: a clear error naming the choices if it does not divide."""
    if rows % shape[0] or cols % shape[1]:
        raise ConfigError(
            f"{setting} {list(shape)} does not divide the {rows} x {cols} weight of {name}: rows must divide {rows} "
            f"({', '.join(map(str, divisors(rows)))}), cols must divide {cols} ({', '.join(map(str, divisors(cols)))})"
        )


def get_architecture(model_or_config) -> ArchitectureSpec:
    """The table entry for a model or config; a clear error names the supported families."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise UnsupportedModelError(
            f"model_type {model_type!r} is not supported; supported: {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[model_type]


def base_prefix(model: nn.Module) -> str:
    """Name prefix of the bare transformer inside `model` ('' when `model` is the bare transformer)."""
    base = getattr(model, "base_model", model)
    if base is model:
        return ""
    for name, module in model.named_modules():
        if module is base:
            return name + "."
    raise UnsupportedModelError(f"cannot locate the base model inside {type(model).__name__}")


@dataclass(frozen=True)
class LayerRef:
    """One transformer layer: its stack, index, full module name and the module itself."""

    stack: StackSpec
    index: int
    name: str
    module: nn.Module


def iter_layers(model: nn.Module) -> Iterator[LayerRef]:
    spec = get_architecture(model)
    prefix = base_prefix(model)
    for stack in spec.stacks:
        layers = model.get_submodule(prefix + stack.layers)
        for i, layer in enumerate(layers):
            yield LayerRef(stack, i, f"{prefix}{stack.layers}.{i}", layer)


def replace_module(root: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` at dotted `name` under `root`, in the train/eval mode of the module it replaces
    (a fresh module is in train mode, which would leave an eval model half in training)."""
    parent, _, child = name.rpartition(".")
    owner = root.get_submodule(parent) if parent else root
    module.train(getattr(owner, child).training)
    setattr(owner, child, module)


def attention_heads(layer_module: nn.Module, att: AttentionSpec) -> int:
    """The head count of one layer's attention `att` (what pruning may have left)."""
    attention = layer_module.get_submodule(att.module)
    if att.num_heads_attr is not None:
        return getattr(attention, att.num_heads_attr)
    return layer_module.get_submodule(att.query).out_features // att.qkv_parts // getattr(attention, att.head_dim_attr)


def set_attention_heads(layer_module: nn.Module, att: AttentionSpec, heads: int, head_dim: int) -> None:
    """Record a new head count where the attention module keeps one (ModernBERT's follows its linears)."""
    attention = layer_module.get_submodule(att.module)
    if att.num_heads_attr is not None:
        setattr(attention, att.num_heads_attr, heads)
    if hasattr(attention, "all_head_size"):
        attention.all_head_size = heads * head_dim


def linear_roles(model: nn.Module) -> dict[str, str]:
    """Full module name -> role ('query', 'key', 'value' or, fused, 'qkv'; 'attention_output', 'ffn_in', 'ffn_out')."""
    roles: dict[str, str] = {}
    for layer in iter_layers(model):
        for att in layer.stack.attentions:
            projections = (("qkv", att.query),) if att.fused_qkv else (("query", att.query), ("key", att.key), ("value", att.value))
            for role, rel in (*projections, ("attention_output", att.output)):
                roles[f"{layer.name}.{rel}"] = role
        roles[f"{layer.name}.{layer.stack.ffn.input}"] = "ffn_in"
        roles[f"{layer.name}.{layer.stack.ffn.output}"] = "ffn_out"
    return roles


def embedding_module_names(model: nn.Module) -> list[str]:
    """Full names of the embedding modules that exist in this model."""
    spec = get_architecture(model)
    prefix = base_prefix(model)
    names = dict(model.named_modules())
    return [prefix + rel for rel in spec.embedding_modules if prefix + rel in names]


def max_sequence_length(config) -> int | None:
    """Longest input the position embeddings allow, for any family: fine-tuning, evaluating and
    benchmarking a model do not need it to be in the tables."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None:
        return None
    spec = ARCHITECTURES.get(getattr(config, "model_type", None))
    if spec is not None and spec.positions_after_padding:
        return positions - (config.pad_token_id or 0) - 1
    return positions


def check_sequence_length(config, length: int, source: str) -> None:
    """Refuse inputs longer than the position embeddings, naming the fix."""
    limit = max_sequence_length(config)
    if limit is not None and length > limit:
        raise UnsupportedModelError(f"max_length {length} exceeds the maximum sequence length {limit} of {source}: pass --max_length {limit} or less")
