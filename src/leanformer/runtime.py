"""Text in, labels / answers / translations out, from an exported model: onnxruntime and the
tokenizer only. Importing this module imports neither torch nor transformers, so a deployment
needs `pip install --no-deps leanformer` plus onnxruntime, tokenizers, numpy (and sentencepiece
for translation models):

    from leanformer import runtime
    classify = runtime.load("student/")          # student/model.onnx, from `leanformer export`
    classify(["a gripping, funny film", "dull"])  # [{"label": "positive", "score": 0.98}, ...]

A model directory (what `leanformer compress` writes) holds config.json and the tokenizer; the
ONNX file is `model.onnx` in it (encoders) or the folder `onnx/` (encoder-decoders), or the path
given to `load`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .architectures import max_sequence_length
from .errors import ConfigError

ENCODER, DECODER, META = "encoder.onnx", "decoder.onnx", "generation.json"  # an encoder-decoder's folder


def onnx_session(path: str | os.PathLike, *, threads: int | None = None, spinning: bool = True):
    """An onnxruntime CPU session. `spinning=False` stops its idle threads from busy-waiting after a
    run, which would otherwise steal the CPU from whatever is timed next (interleaved benchmarks)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def greedy_decode(encoder, decoder, meta: dict, ids: np.ndarray, mask: np.ndarray, *, max_new_tokens: int = 128,
                  stop_at_eos: bool = True) -> np.ndarray:
    """Greedy generation with an exported encoder and cached decoder step (`deploy.seq2seq`):
    token ids, decoder start token first. `stop_at_eos=False` always makes `max_new_tokens` steps."""
    ids, mask = ids.astype(np.int64), mask.astype(np.int64)
    states, *cross = encoder.run(None, {"input_ids": ids, "attention_mask": mask})
    b = ids.shape[0]
    # heads of each decoder layer (pruning may remove some); older exports recorded one count for all
    heads = meta.get("self_attention_heads") or [meta["heads"]] * meta["layers"]
    past = [np.zeros((b, h, 0, meta["head_dim"]), np.float32) for h in heads for _ in ("key", "value")]
    token = np.full((b, 1), meta["decoder_start_token_id"], np.int64)
    out, done = [token], np.zeros(b, bool)
    names = [i.name for i in decoder.get_inputs()]
    for step in range(max_new_tokens):
        logits, *past = decoder.run(None, dict(zip(names, [token, states, mask, *past, *cross])))
        nxt = logits.argmax(-1)
        if step == max_new_tokens - 1 and meta.get("forced_eos_token_id") is not None:
            nxt[:] = meta["forced_eos_token_id"]  # as transformers does when the length limit is hit
        nxt = np.where(done & stop_at_eos, meta["pad_token_id"], nxt)
        done |= nxt == meta["eos_token_id"]
        token = nxt[:, None].astype(np.int64)
        out.append(token)
        if stop_at_eos and done.all():
            break
    return np.concatenate(out, axis=1)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class _Encoder:
    """A tokenizers.Tokenizer (tokenizer.json) and an encoder graph with a task head."""

    def __init__(self, directory: Path, onnx: Path, config: dict, max_length: int | None, threads: int | None):
        from tokenizers import Tokenizer

        if not (directory / "tokenizer.json").is_file():
            raise ConfigError(f"{str(directory)!r} has no tokenizer.json: pass the directory leanformer saved the model in")
        self.config = config
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        settings = json.loads((directory / "tokenizer_config.json").read_text()) if (directory / "tokenizer_config.json").is_file() else {}
        pad = settings.get("pad_token") or "[PAD]"
        self.max_length = max_length or min(512, max_sequence_length(SimpleNamespace(**config)) or 512)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id(pad) or 0, pad_token=pad)
        self.tokenizer.no_truncation()
        self.session = onnx_session(onnx, threads=threads)
        self.inputs = [i.name for i in self.session.get_inputs()]

    def _run(self, encodings) -> list[np.ndarray]:
        feed = {"input_ids": np.array([e.ids for e in encodings], np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], np.int64)}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.array([e.type_ids for e in encodings], np.int64)
        return self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})


class Classifier(_Encoder):
    """`classifier(texts, pairs=None)`: one {"label", "score"} per text (regression: {"score"})."""

    def __call__(self, texts: str | list[str], pairs: str | list[str] | None = None) -> list[dict]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        pairs = [pairs] if isinstance(pairs, str) else pairs
        self.tokenizer.enable_truncation(self.max_length)
        inputs = list(zip(texts, pairs)) if pairs is not None else texts
        (logits,) = self._run(self.tokenizer.encode_batch(inputs))
        if logits.shape[-1] == 1:
            return [{"score": float(v)} for v in logits[:, 0]]
        labels = {int(k): v for k, v in self.config.get("id2label", {}).items()}
        probabilities = _softmax(logits)
        # transformers' own default names when config.json stores none
        return [{"label": labels.get(int(i), f"LABEL_{int(i)}"), "score": float(p[i])} for i, p in zip(probabilities.argmax(-1), probabilities)]


class QuestionAnswerer(_Encoder):
    """`answerer(question, context)`: {"answer", "score", "start", "end"} (character offsets in
    `context`): the best span of at most `max_answer_tokens` tokens inside the context."""

    max_answer_tokens = 30

    def __call__(self, question: str, context: str) -> dict:
        self.tokenizer.enable_truncation(self.max_length, strategy="only_second")
        encoding = self.tokenizer.encode(question, context)
        start_logits, end_logits = (x[0] for x in self._run([encoding]))
        in_context = np.array([s == 1 for s in encoding.sequence_ids])
        start_logits = np.where(in_context, start_logits, -np.inf)
        end_logits = np.where(in_context, end_logits, -np.inf)
        scores = start_logits[:, None] + end_logits[None, :]
        n = len(scores)
        allowed = np.triu(np.ones((n, n), bool)) & ~np.triu(np.ones((n, n), bool), self.max_answer_tokens)
        scores = np.where(allowed, scores, -np.inf)
        first, last = np.unravel_index(int(scores.argmax()), scores.shape)
        start, end = encoding.offsets[first][0], encoding.offsets[last][1]
        probability = float(_softmax(start_logits[in_context])[in_context[:first].sum()] * _softmax(end_logits[in_context])[in_context[:last].sum()])
        return {"answer": context[start:end], "score": probability, "start": start, "end": end}


class Translator:
    """`translator(texts)`: greedy translations (the exported encoder and cached decoder step,
    Marian's SentencePiece tokenizer read with sentencepiece)."""

    def __init__(self, directory: Path, onnx: Path, config: dict, max_length: int | None, threads: int | None):
        import sentencepiece

        files = [directory / f for f in ("source.spm", "target.spm", "vocab.json")]
        if not all(f.is_file() for f in files) or not (onnx / META).is_file():
            raise ConfigError(f"{str(directory)!r} with {str(onnx)!r}: a translation model needs source.spm, target.spm, vocab.json and "
                              f"the exported folder ({ENCODER}, {DECODER}, {META}): `leanformer export --model DIR --output DIR/onnx`")
        self.source, self.target = (sentencepiece.SentencePieceProcessor(model_file=str(f)) for f in files[:2])
        self.vocab = json.loads(files[2].read_text())
        self.pieces = {i: p for p, i in self.vocab.items()}
        self.meta = json.loads((onnx / META).read_text())
        self.special = {self.vocab.get(t) for t in ("<unk>", "</s>", "<pad>")}
        self.max_length = max_length or 128
        self.encoder, self.decoder = onnx_session(onnx / ENCODER, threads=threads), onnx_session(onnx / DECODER, threads=threads)

    def __call__(self, texts: str | list[str], max_new_tokens: int = 128) -> list[str]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        unk, eos, pad = (self.vocab[t] for t in ("<unk>", "</s>", "<pad>"))
        rows = [[self.vocab.get(p, unk) for p in self.source.encode(t, out_type=str)][: self.max_length - 1] + [eos] for t in texts]
        width = max(len(r) for r in rows)
        ids = np.array([r + [pad] * (width - len(r)) for r in rows], np.int64)
        mask = np.array([[1] * len(r) + [0] * (width - len(r)) for r in rows], np.int64)
        out = greedy_decode(self.encoder, self.decoder, self.meta, ids, mask, max_new_tokens=max_new_tokens)
        return [self.target.decode_pieces([self.pieces[int(i)] for i in row if int(i) not in self.special]) for row in out]


def load(directory: str | os.PathLike, onnx: str | os.PathLike | None = None, *, max_length: int | None = None,
         threads: int | None = None) -> Classifier | QuestionAnswerer | Translator:
    """The runtime of a saved model directory and its exported ONNX file (default: `model.onnx`
    in the directory, or its `onnx/` folder for a translation model)."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise ConfigError(f"{str(directory)!r} is not a saved model: no config.json")
    config = json.loads((directory / "config.json").read_text())
    seq2seq = bool(config.get("is_encoder_decoder"))
    path = Path(onnx) if onnx is not None else directory / ("onnx" if seq2seq else "model.onnx")
    if not path.exists():
        output = "DIR/onnx" if seq2seq else "DIR/model.onnx"
        raise ConfigError(f"no exported model at {str(path)!r}: run `leanformer export --model {directory} --output {output.replace('DIR', str(directory))}`"
                          " (or pass the .onnx path)")
    if seq2seq:
        return Translator(directory, path, config, max_length, threads)
    architectures = " ".join(config.get("architectures") or [])
    kind = QuestionAnswerer if "QuestionAnswering" in architectures else Classifier
    return kind(directory, path, config, max_length, threads)
