"""Encoder-decoder models as two ONNX graphs, and greedy generation with a key/value cache in onnxruntime.

The tensors both graphs hold (the token table; Marian's sinusoidal positions) are stored once, in
`shared.data` beside them (ONNX external data): copy the whole directory.

`encoder.onnx`: (input_ids, attention_mask) → encoder states and, for every decoder layer, the
cross-attention keys and values (computed once per sentence, through the architecture tables).
`decoder.onnx`: one step, (decoder_input_ids, encoder states, encoder mask, past self-attention
keys/values, cross keys/values) → next-token logits and the grown self-attention cache.
The step runs the model's own decoder through transformers' `EncoderDecoderCache`, so the graph
is whatever the PyTorch model computes (quantizers included: see `quantization.int8_export`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from ..architectures import attention_heads, get_architecture, iter_layers
from ..errors import LeanformerError
from ..runtime import DECODER, ENCODER, META, greedy_decode, onnx_session
SHARED = "shared.data"  # tensors both graphs hold (token table, position table), stored once
_ALIGN = 4096  # external tensors start on a page boundary, so onnxruntime can map them


def share_initializers(directory: Path, files: tuple[str, ...] = (ENCODER, DECODER), min_bytes: int = 4096) -> int:
    """Initializers that every graph in `files` holds with the same type, shape and bytes → written
    once to SHARED as ONNX external data, which each graph reads (onnxruntime resolves the location
    relative to the graph's file). Returns the bytes saved.

    The encoder and the decoder both embed tokens (and Marian both add the same sinusoidal
    positions): without this each file carries its own copy of the largest tensor.
    """
    import onnx
    from onnx import numpy_helper

    protos = {name: onnx.load(str(directory / name)) for name in files}
    by_content: list[dict[tuple, list]] = []
    for proto in protos.values():
        tensors: dict[tuple, list] = {}
        for init in proto.graph.initializer:
            array = numpy_helper.to_array(init)
            if array.nbytes >= min_bytes:
                tensors.setdefault((init.data_type, tuple(init.dims), array.tobytes()), []).append(init)
        by_content.append(tensors)
    common = set(by_content[0]).intersection(*by_content[1:]) if len(by_content) > 1 else set()
    if not common:
        return 0
    saved, offset = 0, 0
    with open(directory / SHARED, "wb") as f:
        for key in sorted(common, key=lambda k: -len(k[2])):
            data = key[2]
            offset += -offset % _ALIGN
            f.seek(offset)
            f.write(data)
            for tensors in by_content:
                for init in tensors[key]:
                    for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
                        init.ClearField(field)
                    del init.external_data[:]
                    for entry, value in (("location", SHARED), ("offset", offset), ("length", len(data))):
                        init.external_data.add(key=entry, value=str(value))
                    init.data_location = onnx.TensorProto.EXTERNAL
                    saved += len(data)
            saved -= len(data)
            offset += len(data)
    for name, proto in protos.items():
        (directory / name).write_bytes(proto.SerializeToString())  # as is: the tensors already point to SHARED
    return saved


def _cross_projections(model: nn.Module) -> list[tuple[nn.Module, nn.Module, int]]:
    """(key projection, value projection, heads) of each decoder layer's cross-attention."""
    out = []
    for layer in iter_layers(model):
        for att in layer.stack.attentions:
            if att.cross:
                out.append((layer.module.get_submodule(att.key), layer.module.get_submodule(att.value), attention_heads(layer.module, att)))
    return out


def _self_attention_heads(model: nn.Module) -> list[int]:
    """Heads of each decoder layer's self-attention (they differ per layer once pruning removed some)."""
    return [attention_heads(layer.module, att)
            for layer in iter_layers(model) if any(a.cross for a in layer.stack.attentions)
            for att in layer.stack.attentions if not att.cross]


def _heads(h: torch.Tensor, heads: int) -> torch.Tensor:
    b, s, d = h.shape
    return h.view(b, s, heads, d // heads).transpose(1, 2)


class _Encoder(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.cross = model, _cross_projections(model)

    def forward(self, input_ids, attention_mask):
        states = self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        kv = []
        for key, value, heads in self.cross:
            kv += [_heads(key(states), heads), _heads(value(states), heads)]
        return (states, *kv)


class _DecoderStep(nn.Module):
    def __init__(self, model: nn.Module, layers: int):
        super().__init__()
        self.model, self.layers = model, layers

    def forward(self, decoder_input_ids, encoder_states, encoder_attention_mask, *cache):
        n = self.layers
        past = [(cache[2 * i], cache[2 * i + 1]) for i in range(n)]
        cross = [(cache[2 * n + 2 * i], cache[2 * n + 2 * i + 1]) for i in range(n)]
        out = self.model.get_decoder()(
            input_ids=decoder_input_ids,
            encoder_hidden_states=encoder_states,
            encoder_attention_mask=encoder_attention_mask,
            past_key_values=EncoderDecoderCache(DynamicCache(past), DynamicCache(cross)),
            use_cache=True,
        )
        logits = self.model.get_output_embeddings()(out.last_hidden_state[:, -1])
        bias = getattr(self.model, "final_logits_bias", None)
        if bias is not None:
            logits = logits + bias[0]
        grown = [t for layer in out.past_key_values.self_attention_cache.layers for t in (layer.keys, layer.values)]
        return (logits, *grown)


def export_seq2seq_onnx(model: nn.Module, directory: str | os.PathLike, *, opset: int = 17, postprocess=None) -> Path:
    """Write encoder.onnx, decoder.onnx and generation.json to `directory` (atomically).

    `postprocess(onnx_path)` may rewrite each graph in place (e.g. store weights as int8).
    """
    if not get_architecture(model).is_encoder_decoder:
        raise LeanformerError(f"{type(model).__name__} is not an encoder-decoder: use leanformer.deploy.encoder.export_onnx")
    model = model.eval()
    config = model.config
    layers = len(_cross_projections(model))
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        b, s, t = 2, 7, 3
        ids = torch.randint(3, config.vocab_size, (b, s))
        mask = torch.ones(b, s, dtype=torch.long)
        encoder = _Encoder(model).eval()  # the exporter restores this mode recursively: not training
        cache_names = [f"{kind}_{i}" for i in range(layers) for kind in ("past_key", "past_value")]
        cross_names = [f"{kind}_{i}" for i in range(layers) for kind in ("cross_key", "cross_value")]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape logic are expected
            states, *cross = encoder(ids, mask)
            heads_axes = {0: "batch", 2: "source"}
            torch.onnx.export(
                encoder, (ids, mask), tmp / ENCODER, input_names=["input_ids", "attention_mask"],
                output_names=["encoder_states", *cross_names], opset_version=opset, dynamo=False,
                dynamic_axes={"input_ids": {0: "batch", 1: "source"}, "attention_mask": {0: "batch", 1: "source"},
                              "encoder_states": {0: "batch", 1: "source"}, **{n: heads_axes for n in cross_names}},
            )
            head_dim = int(cross[0].shape[-1])
            self_heads = _self_attention_heads(model)
            past = [torch.randn(b, heads, t, head_dim) for heads in self_heads for _ in ("key", "value")]
            step = torch.full((b, 1), config.decoder_start_token_id)
            grown_names = [n.replace("past_", "present_") for n in cache_names]
            torch.onnx.export(
                _DecoderStep(model, layers).eval(), (step, states, mask, *past, *cross), tmp / DECODER,
                input_names=["decoder_input_ids", "encoder_states", "encoder_attention_mask", *cache_names, *cross_names],
                output_names=["logits", *grown_names], opset_version=opset, dynamo=False,
                dynamic_axes={"decoder_input_ids": {0: "batch"}, "encoder_states": {0: "batch", 1: "source"},
                              "encoder_attention_mask": {0: "batch", 1: "source"}, "logits": {0: "batch"},
                              **{n: {0: "batch", 2: "past"} for n in cache_names},
                              **{n: {0: "batch", 2: "present"} for n in grown_names},
                              **{n: heads_axes for n in cross_names}},
            )
        if postprocess is not None:
            postprocess(tmp / ENCODER)
            postprocess(tmp / DECODER)
        share_initializers(tmp)
        meta = {"layers": layers, "self_attention_heads": self_heads, "head_dim": head_dim,
                "decoder_start_token_id": config.decoder_start_token_id, "eos_token_id": config.eos_token_id,
                "pad_token_id": config.pad_token_id, "forced_eos_token_id": getattr(config, "forced_eos_token_id", None)}
        (tmp / META).write_text(json.dumps(meta, indent=2))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return directory


class OnnxSeq2Seq:
    """Greedy generation with the exported graphs; `generate` mimics the transformers call that
    `leanformer.evaluation` makes, so BLEU is computed by the same code for every backend."""

    def __init__(self, directory: str | os.PathLike, *, threads: int | None = None, spinning: bool = True):
        directory = Path(directory)
        if not (directory / META).is_file():
            raise LeanformerError(f"{str(directory)!r} holds no exported encoder-decoder ({META} missing): run export_seq2seq_onnx first")
        self.meta = json.loads((directory / META).read_text())
        self.encoder = onnx_session(directory / ENCODER, threads=threads, spinning=spinning)
        self.decoder = onnx_session(directory / DECODER, threads=threads, spinning=spinning)

    def parameters(self):  # evaluation asks for the device of the first parameter
        yield torch.zeros(())

    def generate(self, input_ids, attention_mask, num_beams: int = 1, max_new_tokens: int = 128, stop_at_eos: bool = True, **_):
        """Greedy decoding; `stop_at_eos=False` always makes `max_new_tokens` steps (for timing)."""
        if num_beams != 1:
            raise LeanformerError("ONNX generation is greedy (num_beams=1)")
        ids = input_ids.numpy() if isinstance(input_ids, torch.Tensor) else np.asarray(input_ids)
        mask = attention_mask.numpy() if isinstance(attention_mask, torch.Tensor) else np.asarray(attention_mask)
        out = greedy_decode(self.encoder, self.decoder, self.meta, ids, mask, max_new_tokens=max_new_tokens, stop_at_eos=stop_at_eos)
        return torch.from_numpy(out)
