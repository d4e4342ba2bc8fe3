"""Translation teachers trained from scratch: no pre-trained translation model ships in a package.

A joint SentencePiece vocabulary is trained on the training split only (source and target
sentences), wrapped as a `MarianTokenizer`, and a small `MarianMTModel` (tied embeddings, pre-set
size below) is trained with label smoothing through the plain `transformers.Trainer`, resumable
from its checkpoints. `teacher.finetune` routes translation tasks here; the result is cached like
every other teacher.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import sentencepiece as spm
import transformers
from transformers import MarianConfig, MarianMTModel, MarianTokenizer

from .errors import ConfigError
from .teacher_config import ScratchTranslationConfig

UNK, EOS, PAD = "<unk>", "</s>", "<pad>"


def train_tokenizer(sources: list[str], targets: list[str], vocab_size: int, directory: Path, *, seed: int = 0) -> MarianTokenizer:
    """A joint unigram SentencePiece model over both languages, as a MarianTokenizer saved in `directory`.

    Ids: 0 <unk>, 1 </s>, 2 <pad> (Marian starts decoding from <pad>); no <s>.
    """
    directory.mkdir(parents=True, exist_ok=True)
    sentences = [s for s in sources + targets if s.strip()]
    if not sentences:
        raise ConfigError("the training split has no text to build a vocabulary from")
    # Unigram training is deterministic for fixed input and one thread (no seed option exists).
    try:
        _train_spm(sentences, vocab_size, directory)
    except RuntimeError as err:
        limit = re.search(r"value <= (\d+)", str(err))
        if not limit:
            raise
        raise ConfigError(
            f"vocab_size {vocab_size} is more than the training text supports (at most {limit.group(1)}): "
            f"pass --vocab_size {limit.group(1)} or less, or train on more text"
        ) from None
    processor = spm.SentencePieceProcessor(model_file=str(directory / "spm.model"))
    vocab = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    model_file = str(directory / "spm.model")
    return MarianTokenizer(
        source_spm=model_file,
        target_spm=model_file,
        vocab=str(directory / "vocab.json"),
        unk_token=UNK,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=512,
    )


def _train_spm(sentences: list[str], vocab_size: int, directory: Path) -> None:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_prefix=str(directory / "spm"),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        unk_id=0, eos_id=1, pad_id=2, bos_id=-1,
        unk_piece=UNK, eos_piece=EOS, pad_piece=PAD,
        num_threads=1,
        minloglevel=2,
    )


def build_model(config: ScratchTranslationConfig, tokenizer: MarianTokenizer, max_length: int) -> MarianMTModel:
    vocab = len(tokenizer)
    marian = MarianConfig(
        vocab_size=vocab,
        decoder_vocab_size=vocab,
        d_model=config.d_model,
        encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers,
        encoder_attention_heads=config.attention_heads,
        decoder_attention_heads=config.attention_heads,
        encoder_ffn_dim=config.ffn_dim,
        decoder_ffn_dim=config.ffn_dim,
        dropout=config.dropout,
        attention_dropout=0.0,
        activation_dropout=0.0,
        max_position_embeddings=max(512, max_length),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
    )
    return MarianMTModel(marian)


def scratch_tokenizer(train_split, config: ScratchTranslationConfig, work_dir: Path, seed: int) -> MarianTokenizer:
    """The tokenizer of a run, trained once and kept in the run directory so a resumed run reuses it."""
    spm_dir = work_dir / "tokenizer"
    if (spm_dir / "spm.model").is_file() and (spm_dir / "vocab.json").is_file():
        model_file = str(spm_dir / "spm.model")
        return MarianTokenizer(source_spm=model_file, target_spm=model_file, vocab=str(spm_dir / "vocab.json"),
                               unk_token=UNK, eos_token=EOS, pad_token=PAD, model_max_length=512)
    tmp = Path(tempfile.mkdtemp(dir=work_dir))  # renamed into place when complete: no half-written vocabulary
    train_tokenizer(list(train_split["source"]), list(train_split["target"]), config.vocab_size, tmp, seed=seed)
    tmp.rename(spm_dir)
    return scratch_tokenizer(train_split, config, work_dir, seed)


def model_and_tokenizer(train_split, config: ScratchTranslationConfig, work_dir: Path, max_length: int, seed: int):
    work_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = scratch_tokenizer(train_split, config, work_dir, seed)
    transformers.set_seed(seed)
    return build_model(config, tokenizer, max_length), tokenizer
