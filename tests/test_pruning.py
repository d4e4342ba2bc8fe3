"""Block pruning on whole models: finalize is exact, the head-removal rule, save/load, ONNX, report."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
import transformers
from torch import nn

import leanformer
from leanformer.api import finalize_stage
from leanformer.architectures import iter_layers
from leanformer.deploy.encoder import export_onnx
from leanformer.deploy.seq2seq import OnnxSeq2Seq, export_seq2seq_onnx
from leanformer.measure import count_parameters, dummy_inputs, flops_per_token
from leanformer.methods.pruning import (
    BlockPruningConfig,
    MaskedLinear,
    find_state,
    finish_state,
    pruning_report,
    surviving_heads,
)
from tiny_models import tiny_config, tiny_inputs, tiny_model

# hidden 32, 4 heads of 8, FFN 64: rows of 8 = one head in Q, K, V
HEAD_ROWS = BlockPruningConfig.hybrid(block_shape=[8, 32])
KILL, KEEP = -5.0, 5.0  # sigmoid(-5) < τ_f = 0.1 < sigmoid(5)


def _masked(model, scores_by_layer: dict[int, dict[str, list]], config=HEAD_ROWS):
    """Compress, then set the scores of layer i's 'query'/'key'/'value' (per head) and 'ffn' (per dim) by hand."""
    model = leanformer.compress(model, config)
    for layer in iter_layers(model):
        (att,) = layer.stack.attentions
        modules = {"query": att.query, "key": att.key, "value": att.value, "ffn": layer.stack.ffn.input}
        with torch.no_grad():
            for role, values in scores_by_layer.get(layer.index, {}).items():
                scores = layer.module.get_submodule(modules[role]).mask_scores
                scores.copy_(torch.tensor(values, dtype=scores.dtype).reshape(scores.shape))
    finish_state(find_state(model), config)
    return model


def _head_scores(killed: list[int]) -> list[float]:
    return [KILL if h in killed else KEEP for h in range(4)]


# layer 0: head 1 empty in Q, K and V (removed), head 2 empty in Q only (stays), head 3 empty in V only
# (removed: its output is zero), even FFN dims pruned;
# layer 1: heads 0, 1, 3 empty everywhere, head 2 empty in K and V (removed: its output is zero), but
# one head always stays (head 2, the most weight left), all but 5 FFN dims pruned.
SCENARIO = {
    0: {"query": _head_scores([1, 2]), "key": _head_scores([1]), "value": _head_scores([1, 3]),
        "ffn": [KILL if d % 2 == 0 else KEEP for d in range(64)]},
    1: {"query": _head_scores([0, 1, 3]), "key": _head_scores([0, 1, 2, 3]), "value": _head_scores([0, 1, 2, 3]),
        "ffn": [KEEP if d in (3, 9, 20, 41, 63) else KILL for d in range(64)]},
}


def _logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


def _tiny(model_type: str):
    if model_type == "deberta-v2 separate positions":  # DeBERTa-v2 without share_att_key: pos_key/pos_query projections
        config = tiny_config("deberta-v2")
        config.share_att_key = False
        torch.manual_seed(0)
        return transformers.DebertaV2ForSequenceClassification(config).eval()
    return tiny_model(model_type)


@pytest.mark.parametrize("model_type", ["bert", "roberta", "distilbert", "mpnet", "electra", "xlm-roberta", "deberta-v2",
                                        "deberta-v2 separate positions"])
def test_finalized_model_computes_what_the_masked_model_did(model_type):
    model = _masked(_tiny(model_type), SCENARIO)
    inputs = tiny_inputs(model, batch=4, seq=12)
    masked = _logits(model, inputs)
    final = finalize_stage(model, HEAD_ROWS)
    assert not any(isinstance(m, MaskedLinear) for m in final.modules())
    assert type(final).__module__.startswith("transformers.")
    assert (masked - _logits(final, inputs)).abs().max() < 1e-4
    structure = leanformer.recipe_of(final)[-1]["structure"]
    assert structure == {"heads": [2, 1], "head_indices": [[0, 2], [2]], "ffn_dims": [32, 5]}
    layer = next(iter_layers(final))
    (att,) = layer.stack.attentions
    assert getattr(layer.module.get_submodule(att.module), att.num_heads_attr) == 2
    assert layer.module.get_submodule(att.query).out_features == 16
    assert layer.module.get_submodule(att.output).in_features == 16
    assert layer.module.get_submodule(layer.stack.ffn.output).in_features == 32


@pytest.mark.parametrize(
    "config",
    [
        BlockPruningConfig.struct(),
        BlockPruningConfig.block(block_shape=[8, 8]),
        BlockPruningConfig.hybrid(block_shape=[4, 8], mask_method="topk", final_sparsity=0.6),
        BlockPruningConfig.block(block_shape=[8, 4], mask_method="magnitude", final_sparsity=0.7),
    ],
    ids=["struct", "block", "topk", "magnitude"],
)
def test_every_structure_and_mask_method_finalizes_exactly(config):
    model = leanformer.compress(tiny_model("bert", seed=3), config)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, MaskedLinear) and module.owns_scores:
                module.mask_scores.copy_(torch.randn(module.mask_scores.shape, generator=g) * 3)
    finish_state(find_state(model), config)
    inputs = tiny_inputs(model)
    masked = _logits(model, inputs)
    params_before = count_parameters(model)["attention"] + count_parameters(model)["ffn"]
    final = finalize_stage(model, config)
    assert (masked - _logits(final, inputs)).abs().max() < 1e-4
    assert count_parameters(final)["attention"] + count_parameters(final)["ffn"] < params_before


def test_heads_are_removed_exactly_when_their_output_is_zero():
    torch.manual_seed(0)
    q, k, v, o = (nn.Linear(32, 32) for _ in range(4))
    with torch.no_grad():
        q.weight[0:8] = 0
        q.bias[0:8] = 0  # head 0: empty in Q only -> stays (uniform attention over V is not zero)
        for lin in (k, v):
            lin.weight[8:16] = 0
            lin.bias[8:16] = 0  # head 1: empty in K and V -> removed (V empty: output zero)
        for lin in (q, k, v):
            lin.weight[16:24] = 0
            lin.bias[16:24] = 0  # head 2: empty in Q, K and V -> removed
            lin.weight[24:32] = 0
        q.bias[24:32] = 0
        k.bias[24:32] = 0  # head 3: only V's bias left -> stays (it still adds a constant)
    assert surviving_heads(q, k, v, o, 4) == [0, 3]

    # independent check: zeroing the removed heads' attention output leaves the layer's output unchanged
    x = torch.randn(2, 5, 32)
    def attend(keep_heads):
        Q, K, V = (lin(x).view(2, 5, 4, 8).transpose(1, 2) for lin in (q, k, v))
        heads = torch.softmax(Q @ K.transpose(-1, -2) / 8**0.5, -1) @ V
        heads = heads * torch.tensor([1.0 if h in keep_heads else 0.0 for h in range(4)]).view(1, 4, 1, 1)
        return o(heads.transpose(1, 2).reshape(2, 5, 32))
    assert torch.allclose(attend([0, 1, 2, 3]), attend([0, 3]), atol=1e-6)
    assert not torch.allclose(attend([0, 1, 2, 3]), attend([3]), atol=1e-3)  # head 0 matters
    with torch.no_grad():
        for lin in (q, k, v):
            lin.weight.zero_()
            lin.bias.zero_()
        o.weight.zero_()
        o.weight[:, 8:16] = 1.0  # every head empty: the one with the most weight left stays
    assert surviving_heads(q, k, v, o, 4) == [1]


@pytest.mark.parametrize("model_type", ["bert", "mpnet"])
def test_save_load_gives_identical_logits_and_counts(tmp_path, model_type):
    final = finalize_stage(_masked(tiny_model(model_type), SCENARIO), HEAD_ROWS)
    leanformer.save(final, tmp_path / "pruned")
    loaded = leanformer.load(tmp_path / "pruned")
    inputs = tiny_inputs(final, batch=2, seq=9)
    assert torch.equal(_logits(final.eval(), inputs), _logits(loaded, inputs))
    assert flops_per_token(loaded) == flops_per_token(final) < flops_per_token(tiny_model(model_type))
    assert count_parameters(loaded) == count_parameters(final)
    assert pruning_report(loaded) == pruning_report(final)


def test_a_masked_model_saved_before_finalize_loads_at_its_final_masks(tmp_path):
    model = _masked(tiny_model("bert"), SCENARIO)
    leanformer.save(model, tmp_path / "masked")
    loaded = leanformer.load(tmp_path / "masked")
    assert sum(isinstance(m, MaskedLinear) for m in loaded.modules()) == 12
    inputs = tiny_inputs(model)
    assert torch.equal(_logits(model, inputs), _logits(loaded, inputs))


@pytest.mark.parametrize("model_type", ["bert", "mpnet"])
def test_onnx_export_of_the_pruned_model(tmp_path, model_type):
    final = finalize_stage(_masked(tiny_model(model_type), SCENARIO), HEAD_ROWS).eval()
    path = export_onnx(final, tmp_path / "pruned.onnx")
    inputs = dummy_inputs(final, 3, 11, seed=2)
    inputs["attention_mask"][0, 7:] = 0
    onnx_logits = ort.InferenceSession(str(path)).run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    np.testing.assert_allclose(onnx_logits, _logits(final, inputs).numpy(), rtol=1e-4, atol=1e-5)


def test_hybrid_filled_refills_zeros_inside_kept_heads_only():
    config = BlockPruningConfig.hybrid_filled(block_shape=[8, 8], fill_noise_std=1e-3)
    model = leanformer.compress(tiny_model("bert"), config)
    attention = model.bert.encoder.layer[0].attention.self
    with torch.no_grad():  # Q/K/V grids are 4 x 4 blocks of 8 x 8: block row h = head h
        for lin in (attention.query, attention.key, attention.value):
            lin.mask_scores.fill_(KEEP)
            lin.mask_scores[1] = KILL  # head 1 empty in Q, K and V: removed
        attention.query.mask_scores[0, 1] = KILL  # two blocks inside kept heads
        attention.query.mask_scores[3, 0] = KILL
    finish_state(find_state(model), config)
    rows = torch.tensor([*range(0, 8), *range(16, 32)])
    kept_before = attention.query.masked_parameters()[0].detach()[rows].clone()
    final = finalize_stage(model, config)
    query = final.bert.encoder.layer[0].attention.self.query.weight.detach()
    assert query.shape == (24, 32)
    assert (query != 0).all()  # the zeros inside kept heads are small noise now
    refilled = kept_before == 0
    assert refilled.sum() == 2 * 64
    assert 0 < query[refilled].abs().max() < 0.01
    assert torch.equal(query[~refilled], kept_before[~refilled])


def test_report_lists_heads_and_ffn_width_per_layer():
    final = finalize_stage(_masked(tiny_model("bert"), SCENARIO), HEAD_ROWS)
    report = pruning_report(final)
    assert [(row["heads"], row["ffn_dims"]) for row in report["layers"]] == [(2, 32), (1, 5)]
    assert report["heads_kept"] == 3 and report["heads_total"] == 8 and report["ffn_dims_total"] == 128
    dense = tiny_model("bert")
    assert report["dense_flops_per_token"] == flops_per_token(dense)
    assert report["flop_reduction"] == pytest.approx(flops_per_token(dense) / flops_per_token(final))
    assert 0 < report["density"] < 1 and report["mask_density"] == 1.0


# Encoder-decoders: every attention (encoder self; decoder self and cross) and every FFN is pruned.
# (stack, layer, attention index) -> heads killed in V, so removed; FFN dims killed per (stack, layer)
SEQ2SEQ_HEADS = {("encoder", 0, 0): [3], ("decoder", 0, 0): [0, 2], ("decoder", 1, 1): [1, 2, 3], ("decoder", 1, 0): [0, 1, 2, 3]}
SEQ2SEQ_FFN = {("decoder", 1): [d for d in range(64) if d % 4], ("encoder", 1): list(range(10))}


def _masked_seq2seq(model_type: str, config=HEAD_ROWS):
    model = leanformer.compress(tiny_model(model_type), config)
    with torch.no_grad():
        for layer in iter_layers(model):
            for i, att in enumerate(layer.stack.attentions):
                killed = SEQ2SEQ_HEADS.get((layer.stack.name, layer.index, i), [])
                layer.module.get_submodule(att.value).mask_scores.copy_(torch.tensor(_head_scores(killed)).reshape(4, 1))
            killed = SEQ2SEQ_FFN.get((layer.stack.name, layer.index), [])
            scores = layer.module.get_submodule(layer.stack.ffn.input).mask_scores
            scores.copy_(torch.tensor([KILL if d in killed else KEEP for d in range(64)]).reshape(scores.shape))
    finish_state(find_state(model), config)
    return model


@pytest.mark.parametrize("model_type", ["marian", "bart"])
def test_translation_models_lose_heads_and_ffn_dims_in_every_attention_exactly(tmp_path, model_type):
    model = _masked_seq2seq(model_type)
    assert sum(isinstance(m, MaskedLinear) for m in model.modules()) == 2 * 6 + 2 * 10  # encoder 4+2, decoder 4+4+2 per layer
    inputs = tiny_inputs(model, batch=3, seq=11)
    masked = _logits(model, inputs)
    final = finalize_stage(model, HEAD_ROWS).eval()
    assert (masked - _logits(final, inputs)).abs().max() < 1e-4
    # one entry per attention: encoder 0, encoder 1, decoder 0 self, decoder 0 cross, decoder 1 self, decoder 1 cross;
    # decoder 1's self-attention lost every head in V: the one with the most weight left stays
    structure = leanformer.recipe_of(final)[-1]["structure"]
    assert structure["head_indices"][:3] == [[0, 1, 2], [0, 1, 2, 3], [1, 3]]
    assert structure["head_indices"][3] == [0, 1, 2, 3] and structure["head_indices"][5] == [0]
    assert len(structure["head_indices"][4]) == 1
    assert structure["ffn_dims"] == [64, 54, 64, 16]
    report = pruning_report(final)
    assert [(r["stack"], r["heads"], r.get("cross_heads")) for r in report["layers"]] == [
        ("encoder", 3, None), ("encoder", 4, None), ("decoder", 2, 4), ("decoder", 1, 1)]
    assert report["heads_kept"] == 15 and report["heads_total"] == 24 and report["flop_reduction"] > 1

    leanformer.save(final, tmp_path / "pruned")
    loaded = leanformer.load(tmp_path / "pruned")
    assert torch.equal(_logits(loaded, inputs), _logits(final, inputs))
    # the cached decoder with a different head count per layer: ONNX greedy decoding = transformers' generate
    export_seq2seq_onnx(loaded, tmp_path / "onnx")
    got = OnnxSeq2Seq(tmp_path / "onnx").generate(inputs["input_ids"], inputs["attention_mask"], max_new_tokens=8)
    with torch.no_grad():
        want = loaded.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], max_new_tokens=8, num_beams=1, do_sample=False)
    assert torch.equal(got, want)


@pytest.mark.parametrize("config", [HEAD_ROWS, BlockPruningConfig.struct(), BlockPruningConfig.block(block_shape=[8, 8])],
                         ids=["hybrid", "struct", "block"])
def test_fused_qkv_and_gated_ffn_lose_heads_and_dims_exactly(tmp_path, config):
    """ModernBERT: Wqkv rows are [Q; K; V] (4 heads of 8 each), Wi rows [up; gate] (64 each). A head
    goes with its Q, K and V rows and Wo columns, an FFN dim with its up and gate rows and Wo column."""
    model = leanformer.compress(tiny_model("modernbert"), config)
    wqkv = model.model.layers[0].attn.Wqkv
    if config.attention_structure == "head":  # one score per head: kill heads 1 and 3 of layer 0
        with torch.no_grad():
            wqkv.mask_scores.copy_(torch.tensor(_head_scores([1, 3])).reshape(4, 1))
    else:  # block rows of 8 = one head of Q, K or V: layer 0 loses V of heads 1, 3 and Q of head 2 (stays)
        with torch.no_grad():
            scores = wqkv.mask_scores
            scores.fill_(KEEP)
            scores[[2, 9, 11]] = KILL  # block rows: Q head 2; V (rows 8 to 11) heads 1 and 3
    ffn_kill = {0: [d for d in range(64) if d % 3 == 0], 1: [d for d in range(64) if d >= 20]}
    with torch.no_grad():
        for i, layer in enumerate(model.model.layers):
            wi = layer.mlp.Wi
            if config.ffn_structure == "row_column":  # one score per dim, for its up and gate rows
                wi.mask_scores.copy_(torch.tensor([KILL if d in ffn_kill[i] else KEEP for d in range(64)]).reshape(64, 1))
    finish_state(find_state(model), config)
    inputs = tiny_inputs(model, batch=3, seq=12)
    masked = _logits(model, inputs)
    final = finalize_stage(model, config).eval()
    assert (masked - _logits(final, inputs)).abs().max() < 1e-4
    structure = leanformer.recipe_of(final)[-1]["structure"]
    assert structure["head_indices"] == [[0, 2], [0, 1, 2, 3]]
    assert final.model.layers[0].attn.Wqkv.out_features == 3 * 2 * 8 and final.model.layers[0].attn.Wo.in_features == 16
    if config.ffn_structure == "row_column":
        assert structure["ffn_dims"] == [64 - len(ffn_kill[0]), 20]
        assert final.model.layers[1].mlp.Wi.out_features == 2 * 20 and final.model.layers[1].mlp.Wo.in_features == 20
    leanformer.save(final, tmp_path / "pruned")
    assert torch.equal(_logits(leanformer.load(tmp_path / "pruned"), inputs), _logits(final, inputs))
    assert pruning_report(final)["heads_kept"] == 6
