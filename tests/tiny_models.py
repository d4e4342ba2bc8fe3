"""Tiny random models built from configs, one per supported family (no downloads)."""

from __future__ import annotations

import torch
import transformers

# hidden 32, 4 heads, FFN 64, 2 layers: big enough to have structure, small enough for milliseconds
_COMMON = dict(vocab_size=100, max_position_embeddings=64)


def tiny_config(model_type: str, num_labels: int = 2, dropout: float = 0.0):
    if model_type in ("bert", "roberta", "mpnet", "xlm-roberta", "electra"):
        cls = {"bert": transformers.BertConfig, "roberta": transformers.RobertaConfig, "mpnet": transformers.MPNetConfig,
               "xlm-roberta": transformers.XLMRobertaConfig, "electra": transformers.ElectraConfig}[model_type]
        # ELECTRA: narrower embeddings than layers, as its released checkpoints have (small: 128 vs 256)
        extra = {"embedding_size": 16} if model_type == "electra" else {}
        return cls(
            hidden_size=32, num_attention_heads=4, intermediate_size=64, num_hidden_layers=2,
            hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, num_labels=num_labels,
            pad_token_id=0 if model_type in ("bert", "electra") else 1, **extra, **_COMMON,
        )
    if model_type == "deberta-v2":  # v3's settings: relative positions through shared key/query projections
        return transformers.DebertaV2Config(
            hidden_size=32, num_attention_heads=4, intermediate_size=64, num_hidden_layers=2, hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout, num_labels=num_labels, relative_attention=True, position_buckets=16,
            max_relative_positions=32, pos_att_type=["p2c", "c2p"], share_att_key=True, position_biased_input=False,
            pad_token_id=0, **_COMMON,
        )
    if model_type == "modernbert":  # layer 0 global, layer 1 local (a window of 4 tokens, shorter than the inputs)
        return transformers.ModernBertConfig(
            hidden_size=32, num_attention_heads=4, intermediate_size=64, num_hidden_layers=2, global_attn_every_n_layers=2,
            local_attention=4, embedding_dropout=dropout, mlp_dropout=dropout, attention_dropout=dropout, num_labels=num_labels,
            pad_token_id=0, bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3, **_COMMON,
        )
    if model_type == "distilbert":
        return transformers.DistilBertConfig(
            dim=32, n_heads=4, hidden_dim=64, n_layers=2, dropout=dropout, attention_dropout=dropout,
            num_labels=num_labels, **_COMMON,
        )
    if model_type in ("marian", "bart"):
        cls = {"marian": transformers.MarianConfig, "bart": transformers.BartConfig}[model_type]
        return cls(
            d_model=32, encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
            decoder_ffn_dim=64, encoder_layers=2, decoder_layers=2, dropout=dropout, attention_dropout=dropout,
            activation_dropout=dropout, pad_token_id=0, eos_token_id=2, decoder_start_token_id=0,
            forced_eos_token_id=2, **_COMMON,
        )
    raise ValueError(model_type)


def tiny_model(model_type: str = "bert", num_labels: int = 2, seed: int = 0, dropout: float = 0.0):
    torch.manual_seed(seed)
    config = tiny_config(model_type, num_labels, dropout)
    if config.is_encoder_decoder:
        return transformers.AutoModelForSeq2SeqLM.from_config(config).eval()
    return transformers.AutoModelForSequenceClassification.from_config(config).eval()


def tiny_inputs(model, batch: int = 3, seq: int = 10, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, model.config.vocab_size, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    mask[0, seq - 3:] = 0  # one padded row so masks matter
    inputs = {"input_ids": ids, "attention_mask": mask}
    if model.config.is_encoder_decoder:
        inputs["decoder_input_ids"] = torch.randint(3, model.config.vocab_size, (batch, seq - 2), generator=g)
    return inputs


WORDS = [f"w{i}" for i in range(95)]


def tiny_tokenizer():
    """A BERT word-piece tokenizer over "[PAD] [UNK] [CLS] [SEP] [MASK] w0 … w94" (ids 0–99)."""
    import transformers

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    return transformers.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})


def write_tiny_task(directory, rows: int = 60):
    """A tiny BERT classification teacher (with tokenizer) at directory/teacher and a CSV task at directory/data.csv."""
    import transformers

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    teacher = transformers.BertForSequenceClassification(tiny_config("bert"))
    teacher.save_pretrained(directory / "teacher")
    tokenizer.save_pretrained(directory / "teacher")
    lines = ["text,label"] + [f"{' '.join(WORDS[(i * 3 + j) % 95] for j in range(6))},{'pos' if i % 2 else 'neg'}" for i in range(rows)]
    (directory / "data.csv").write_text("\n".join(lines))
    return directory


def write_tiny_translation_task(directory, rows: int = 60):
    """A tiny EN→FR-like task at directory/pairs.jsonl (word i → word i + 40), with the training
    budget and from-scratch Marian size that train a teacher on it in seconds: (task config, train, size)."""
    import json

    from leanformer.data import TaskConfig
    from leanformer.training import TrainConfig
    from leanformer.translation_teacher import ScratchTranslationConfig

    pairs = [{"source": " ".join(WORDS[(i + j) % 40] for j in range(5)), "target": " ".join(WORDS[(i + j) % 40 + 40] for j in range(5))} for i in range(rows)]
    (directory / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in pairs))
    task_config = TaskConfig(task=str(directory / "pairs.jsonl"), kind="translation")
    train = TrainConfig(max_steps=4, batch_size=8, max_length=12, eval_batch_size=32, report_to="none", progress=False, learning_rate=1e-3)
    size = ScratchTranslationConfig(vocab_size=60, d_model=16, encoder_layers=1, decoder_layers=1, attention_heads=2, ffn_dim=32)
    return task_config, train, size
