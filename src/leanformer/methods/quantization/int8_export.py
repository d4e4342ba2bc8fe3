"""Real int8 inference: export a fake-quantized model to ONNX with its learned ranges, run it in
onnxruntime's integer kernels.

The exporter turns each fake quantizer into QuantizeLinear → DequantizeLinear with the constant
scale and zero point the model trained with; weights are then stored as 8-bit initializers (one
DequantizeLinear each), so the file is about 4× smaller. Which 8-bit type each grid is stored in
decides which x86 kernels onnxruntime runs and whether they are exact (INTEGER_KERNELS,
`stored_grid`): by default every file is exact on every x86 CPU. onnxruntime's graph optimizer fuses the
DequantizeLinear → MatMul → QuantizeLinear patterns into integer matmuls (QLinearMatMul,
MatMulIntegerToFloat) on CPU.

Rewrites make that graph faster than onnxruntime's own dynamic quantization (measured in
benchmarks/quantization.md), all exact: an embedding lookup gathers int8 rows and dequantizes
only those (not the whole 30k-row table on every call); a table shared by the embedding and a
tied LM head is stored once, transposed, so the head stays an integer matmul; and the file is
stored as onnxruntime optimizes it, with each linear's bias folded into its integer matmul (a
2-D head included, which onnxruntime would otherwise turn into a float Gemm on a table
dequantized every decoding step); a weight reached through views (a Kronecker factor's term,
transposed) is stored as that view, so its matmul can run on integer kernels too; internal names are
shortened. `optimize=False` keeps the plain QDQ graph, which other ONNX
runtimes read too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ...errors import LeanformerError
from ...deploy.encoder import export_onnx
from ...deploy.seq2seq import export_seq2seq_onnx
from .quantizers import ActivationQuantizer, WeightQuantizer, grid


# Which x86 integer kernels an int8 file is written for (`kernels=`). onnxruntime multiplies a uint8
# activation by an int8 weight with VPMADDUBSW on CPUs without VNNI (AVX2; AVX-512 without VNNI):
# pairs of u8·s8 products are added in 16 bits and saturate above 32767 (255·127·2 = 64770), so a
# graph of 8-bit int8 weights is wrong on those CPUs (the logits of a test decoder were off by 0.19).
# uint8 × uint8 goes through 16-bit products added in 32 bits on every x86 path: exact everywhere.
INTEGER_KERNELS = {
    "any": "8-bit weights stored as uint8 (u8×u8 kernels): exact on every x86 CPU",
    "vnni": "8-bit weights stored as int8 (u8×s8 kernels): faster on CPUs with AVX512_VNNI, AVX_VNNI or AMX, "
            "wrong (saturating) on AVX2 and on AVX-512 without VNNI",
}


class StoredGrid(NamedTuple):
    """A quantizer's grid as the export stores it: an 8-bit container and the k-bit range within it."""

    scale: torch.Tensor
    zero_point: torch.Tensor
    q_min: int
    q_max: int
    c_min: int
    c_max: int


def stored_grid(quantizer: ActivationQuantizer | WeightQuantizer, scale: torch.Tensor, zero_point: torch.Tensor, kernels: str) -> StoredGrid:
    """The container a quantizer's grid is written in: the same real values either way, since a
    shift of the integers moves the zero point with them.

    Everything that enters an integer matmul is uint8 (signed grids shifted by 128), except signed
    weights that cannot saturate a u8·s8 pair (|q| ≤ 63: 7 bits or fewer, onnxruntime's
    `reduce_range`) or whose file is for VNNI CPUs: those stay int8, for the faster u8×s8 kernels.
    """
    if kernels not in INTEGER_KERNELS:
        raise LeanformerError(f"kernels must be one of {', '.join(INTEGER_KERNELS)}, got {kernels!r}")
    q_min, q_max = grid(quantizer.bits, quantizer.symmetric)
    signed_weight = isinstance(quantizer, WeightQuantizer) and q_min < 0 and (kernels == "vnni" or q_max <= 63)
    shift = 0 if q_min >= 0 or signed_weight else 128
    c_min, c_max = (-128, 127) if signed_weight else (0, 255)
    return StoredGrid(scale, zero_point + shift, q_min + shift, q_max + shift, c_min, c_max)


@contextlib.contextmanager
def frozen_for_export(model: nn.Module, kernels: str = "any"):
    """Fix every quantizer's grid as constants computed outside the trace, in the container that
    `kernels` (a key of INTEGER_KERNELS) computes exactly."""
    quantizers = [m for m in model.modules() if isinstance(m, (ActivationQuantizer, WeightQuantizer))]
    if not quantizers:
        raise LeanformerError("this model has no quantizers: compress it with QuantizationConfig before exporting it as int8")
    sources = {q: t for m in model.modules() if hasattr(m, "weight_sources") for q, t in m.weight_sources().items()}
    try:
        for q in quantizers:
            if isinstance(q, WeightQuantizer):
                params = q.qparams(sources[q])
            else:
                if int(q.observed) == 0:
                    raise LeanformerError("an activation quantizer has no range yet: train or calibrate the model before exporting it")
                params = q.qparams()
            q.frozen = stored_grid(q, *(t.clone() for t in params), kernels)
        yield model
    finally:
        for q in quantizers:
            q.frozen = None


def _attr(node: onnx.NodeProto, name: str, default=None):
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _set_attr(node: onnx.NodeProto, name: str, value) -> None:
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend([*kept, onnx.helper.make_attribute(name, value)])


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Values of the graph's initializers and Constant nodes, by name."""
    values = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant" and n.attribute[0].name == "value"}
    values.update({i.name: numpy_helper.to_array(i) for i in graph.initializer})
    return values


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """The nodes that read each tensor, by name."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def _left_of_a_matmul(quantize: onnx.NodeProto, consumers: dict[str, list[onnx.NodeProto]]) -> bool:
    """Whether a weight's QuantizeLinear reaches the left operand of a MatMul (through its
    DequantizeLinear and views): a Kronecker factor A in the A-major layout."""
    frontier = list(consumers.get(quantize.output[0], []))  # its DequantizeLinear, then views
    while frontier:
        node = frontier.pop()
        for user in (u for o in node.output for u in consumers.get(o, [])):
            if user.op_type == "MatMul" and user.input[0] == node.output[0]:
                return True
            if user.op_type in _WEIGHT_VIEWS:
                frontier.append(user)
    return False


def _as_int8(q: np.ndarray) -> np.ndarray:
    """A grid shifted into uint8 (deploy.stored_grid) back in int8: q and its zero point both move
    by −128, so (q − z)·s is unchanged."""
    return (q.astype(np.int16) - 128).astype(np.int8)


def fold_weight_quantization(model_proto: onnx.ModelProto) -> int:
    """QuantizeLinear applied to a float initializer → the integer initializer itself. Returns how many."""
    graph = model_proto.graph
    inits = {i.name for i in graph.initializer}
    value = _constants(graph).get

    consumers = _consumers(graph)
    folded, keep = 0, []
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] in inits:
            x, scale, zero_point = (value(n) for n in node.input[:3])
            if scale is not None and zero_point is not None:
                axis = _attr(node, "axis", 1)
                per_axis = scale.ndim == 1
                if per_axis:  # broadcast along `axis`
                    shape = [1] * x.ndim
                    shape[axis] = -1
                    scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
                info = np.iinfo(zero_point.dtype)
                q = np.clip(np.rint(x / scale) + zero_point.astype(np.int32), info.min, info.max).astype(zero_point.dtype)
                if per_axis and q.dtype == np.uint8 and _left_of_a_matmul(node, consumers):
                    # onnxruntime fuses a uint8 left operand with per-row zero points into an integer
                    # matmul that rejects them at run time; as int8 it stays a float MatMul, as before
                    signed_zero_point = f"{node.output[0]}/zero_point_int8"
                    graph.initializer.append(numpy_helper.from_array(_as_int8(value(node.input[2])), signed_zero_point))
                    for dq in consumers.get(node.output[0], []):
                        dq.input[2] = signed_zero_point
                    q = _as_int8(q)
                graph.initializer.append(numpy_helper.from_array(q, node.output[0]))
                folded += 1
                continue
        keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    _drop_unused(graph)
    return folded


def gather_quantized_rows(model_proto: onnx.ModelProto) -> int:
    """Gather(DequantizeLinear(int8 table), ids) → rows gathered in int8, then dequantized. Returns how many.

    Same arithmetic as DequantizeLinear, (q − zero_point) · scale in float, on the looked-up rows
    only; a table that also feeds a matmul (a tied LM head) keeps its DequantizeLinear for that.
    """
    graph = model_proto.graph
    inits = _constants(graph)
    producer = {n.output[0]: n for n in graph.node}
    rewritten, nodes = 0, []
    for node in graph.node:
        dq = producer.get(node.input[0]) if node.op_type == "Gather" else None
        axis = _attr(node, "axis", 0)
        if dq is None or dq.op_type != "DequantizeLinear" or axis != 0 or not all(n in inits for n in dq.input[:3]):
            nodes.append(node)
            continue
        table, ids, out = dq.input[0], node.input[1], node.output[0]
        scale, zero_point = inits[dq.input[1]], inits[dq.input[2]].astype(np.float32)
        prefix = f"{out}_int8rows"
        nodes += [
            onnx.helper.make_node("Gather", [table, ids], [f"{prefix}/q"], axis=0),
            onnx.helper.make_node("Cast", [f"{prefix}/q"], [f"{prefix}/qf"], to=onnx.TensorProto.FLOAT),
        ]
        if scale.ndim == 1:  # one range per row: look the rows' scale and zero point up too
            for name, value in (("scale", scale), ("zero_point", zero_point)):
                graph.initializer.append(numpy_helper.from_array(value.reshape(-1, 1).astype(np.float32), f"{prefix}/{name}_table"))
                nodes.append(onnx.helper.make_node("Gather", [f"{prefix}/{name}_table", ids], [f"{prefix}/{name}"], axis=0))
        else:
            graph.initializer.append(numpy_helper.from_array(scale.astype(np.float32), f"{prefix}/scale"))
            graph.initializer.append(numpy_helper.from_array(zero_point, f"{prefix}/zero_point"))
        nodes += [
            onnx.helper.make_node("Sub", [f"{prefix}/qf", f"{prefix}/zero_point"], [f"{prefix}/centred"]),
            onnx.helper.make_node("Mul", [f"{prefix}/centred", f"{prefix}/scale"], [out]),
        ]
        rewritten += 1
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused(graph)  # what only fed the replaced dequantizations
    return rewritten


_WEIGHT_VIEWS = ("Reshape", "Gather", "Transpose", "Squeeze", "Unsqueeze")


def _apply_view(node: onnx.NodeProto, x: np.ndarray, value) -> np.ndarray:
    """`node` (one of _WEIGHT_VIEWS, constant operands) applied to the array `x`."""
    if node.op_type == "Reshape":
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(value(node.input[1]).astype(np.int64).tolist())]
        return x.reshape(shape)
    if node.op_type == "Gather":
        return np.take(x, value(node.input[1]), axis=_attr(node, "axis", 0))
    if node.op_type == "Transpose":
        return np.transpose(x, _attr(node, "perm"))
    axes = tuple(int(a) for a in np.atleast_1d(value(node.input[1]) if len(node.input) > 1 else _attr(node, "axes")))
    return np.squeeze(x, axes) if node.op_type == "Squeeze" else np.expand_dims(x, axes)


def fold_weight_views(model_proto: onnx.ModelProto) -> int:
    """DequantizeLinear(int8 W) → Reshape/Gather/Transpose… → MatMul becomes DequantizeLinear(int8 W')
    → MatMul, W' the view computed once. Returns how many.

    A Kronecker factor reaches its matmul through such views (the term's slice, transposed), and
    onnxruntime only fuses a DequantizeLinear that feeds the MatMul directly into an integer kernel:
    without this every B product ran in float on dequantized weights. (A's product, A on the left with
    per-row ranges, is not fused by onnxruntime 1.x's QDQ rules and stays a float MatMul of the two
    dequantized int8 operands; it is the small one.) Per-row ranges follow their rows through the
    views (each row's index is carried along); exact, same int8 values and scales.
    """
    graph = model_proto.graph
    value = _constants(graph).get
    consumers = _consumers(graph)
    replaced: dict[int, onnx.NodeProto] = {}  # id(last view node) -> the DequantizeLinear of the folded view
    removed: set[int] = set()
    for dq in [n for n in graph.node if n.op_type == "DequantizeLinear"]:
        q, scale, zero_point = (value(name) for name in dq.input[:3])
        if q is None or scale is None or zero_point is None:
            continue
        for node in consumers.get(dq.output[0], []):
            chain = []
            while node.op_type in _WEIGHT_VIEWS and all(value(i) is not None for i in node.input[1:]) and len(consumers.get(node.output[0], [])) == 1:
                chain.append(node)
                node = consumers[node.output[0]][0]
            if not chain or node.op_type != "MatMul":
                continue
            w, rows, axis = q, None, None
            if scale.ndim == 1:  # per-axis ranges: carry each element's range index through the views
                shape = [1] * q.ndim
                shape[_attr(dq, "axis", 1) % q.ndim] = -1
                rows = np.broadcast_to(np.arange(scale.size).reshape(shape), q.shape)
            for view in chain:
                w = _apply_view(view, w, value)
                rows = None if rows is None else _apply_view(view, rows, value)
            if rows is not None:
                by_axis = [np.moveaxis(rows, k, 0).reshape(rows.shape[k], -1) for k in range(rows.ndim)]
                axes = [k for k, r in enumerate(by_axis) if (r == r[:, :1]).all()]
                if not axes:  # ranges no longer lie along one axis: leave it
                    continue
                axis = axes[-1]
                scale, zero_point = scale[by_axis[axis][:, 0]], zero_point[by_axis[axis][:, 0]]
            out = chain[-1].output[0]
            for array, suffix in ((w, "q"), (scale, "scale"), (zero_point, "zero_point")):
                graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), f"{out}/{suffix}"))
            replaced[id(chain[-1])] = onnx.helper.make_node(
                "DequantizeLinear", [f"{out}/q", f"{out}/scale", f"{out}/zero_point"], [out], **({} if axis is None else {"axis": axis}))
            removed.update(id(view) for view in chain[:-1])
    nodes = [replaced.get(id(n), n) for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused(graph)
    return len(replaced)


def _drop_unused(graph: onnx.GraphProto) -> None:
    """Remove DequantizeLinear/Constant nodes and initializers nothing reads any more."""
    outputs = {o.name for o in graph.output}
    nodes = list(graph.node)
    for kind in ("DequantizeLinear", "Constant"):
        used = {i for n in nodes for i in n.input} | outputs
        nodes = [n for n in nodes if n.op_type != kind or n.output[0] in used]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def _ranks(model_proto: onnx.ModelProto) -> dict[str, int]:
    """Rank of every tensor whose shape onnx's shape inference knows."""
    inferred = onnx.shape_inference.infer_shapes(model_proto).graph
    return {v.name: len(v.type.tensor_type.shape.dim) for v in [*inferred.input, *inferred.value_info, *inferred.output]
            if v.type.tensor_type.HasField("shape")}


def _transpose_gathered_table(graph: onnx.GraphProto, table: onnx.TensorProto, gathers: list, ranks: list[int], added: list) -> str:
    """Store `table` transposed; its row `gathers` become column gathers, each followed by a
    Transpose of the looked-up vectors back (appended to `added` as (gather, transpose) pairs).
    Returns the transposed table's name."""
    transposed = numpy_helper.from_array(np.ascontiguousarray(numpy_helper.to_array(table).T), f"{table.name}/transposed")
    graph.initializer.remove(table)
    graph.initializer.append(transposed)
    for gather, rank in zip(gathers, ranks):
        out = gather.output[0]
        gather.input[0], gather.output[0] = transposed.name, f"{out}/columns"
        _set_attr(gather, "axis", 1)
        added.append((gather, onnx.helper.make_node("Transpose", [gather.output[0]], [out], perm=[*range(1, rank + 1), 0])))
    return transposed.name


def _insert_after(graph: onnx.GraphProto, added: list, drop: set[int] = frozenset()) -> None:
    """Put each (node, new) pair's new node right after its node; remove the nodes in `drop` (by id)."""
    after = {id(node): new for node, new in added}
    nodes = [m for n in graph.node if id(n) not in drop for m in ([n, after[id(n)]] if id(n) in after else [n])]
    del graph.node[:]
    graph.node.extend(nodes)


def store_tied_tables_transposed(model_proto: onnx.ModelProto) -> int:
    """An int8 table that is both gathered (embedding) and multiplied transposed (tied LM head) →
    stored once, transposed. Returns how many.

    onnxruntime folds a weight's Transpose into its initializer, so DequantizeLinear → MatMul
    becomes an integer matmul, but not when another node (the embedding Gather) reads the same
    table: the LM head then dequantized its whole [vocab × d] table on every decoding step. Stored
    transposed, the LM head is a plain DequantizeLinear(axis=1) → MatMul and the embedding gathers
    columns (Gather axis=1, then a Transpose of the few looked-up vectors). Exact: same integers,
    same scales, one copy of the table.
    """
    graph = model_proto.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers = _consumers(graph)
    rewritten, drop, added, known_ranks = 0, set(), [], None
    for transpose in [n for n in graph.node if n.op_type == "Transpose"]:
        dq = producer.get(transpose.input[0])
        if _attr(transpose, "perm") != [1, 0] or dq is None or dq.op_type != "DequantizeLinear" or len(consumers[dq.output[0]]) != 1:
            continue
        table = inits.get(dq.input[0])
        if table is None or len(table.dims) != 2 or _attr(dq, "axis", 1) != 0:
            continue
        others = [n for n in consumers[table.name] if n is not dq]
        if not others or not all(n.op_type == "Gather" and n.input[0] == table.name and _attr(n, "axis", 0) == 0 for n in others):
            continue
        known_ranks = known_ranks if known_ranks is not None else _ranks(model_proto)
        ranks = [known_ranks.get(n.input[1]) for n in others]
        if None in ranks:
            continue
        transposed = _transpose_gathered_table(graph, table, others, ranks, added)
        dq.input[0] = transposed
        _set_attr(dq, "axis", 1)
        for user in consumers.get(transpose.output[0], []):
            user.input[:] = [dq.output[0] if i == transpose.output[0] else i for i in user.input]
        drop.add(id(transpose))
        rewritten += 1
    _insert_after(graph, added, drop)
    return rewritten


def store_gathered_tables_transposed(model_proto: onnx.ModelProto) -> int:
    """An integer table that is only gathered by rows (an encoder's token table) → stored
    transposed and gathered by columns, then the few looked-up vectors transposed back. Returns
    how many.

    For encoder-decoders: the decoder stores its tied table transposed (for the LM head, see
    store_tied_tables_transposed), so with this the encoder holds the same bytes and the two
    graphs can share one copy (deploy.seq2seq.share_initializers). Exact: a layout change.
    """
    graph = model_proto.graph
    consumers = _consumers(graph)
    integer = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    rewritten, added, known_ranks = 0, [], None
    for table in [i for i in graph.initializer if len(i.dims) == 2 and i.data_type in integer]:
        users = consumers.get(table.name, [])
        if not users or not all(n.op_type == "Gather" and n.input[0] == table.name and _attr(n, "axis", 0) == 0 for n in users):
            continue
        known_ranks = known_ranks if known_ranks is not None else _ranks(model_proto)
        ranks = [known_ranks.get(n.input[1]) for n in users]
        if None in ranks:
            continue
        _transpose_gathered_table(graph, table, users, ranks, added)
        rewritten += 1
    _insert_after(graph, added)
    return rewritten


def fuse_bias_into_integer_matmul(model_proto: onnx.ModelProto) -> int:
    """MatMulIntegerToFloat followed by Add(constant bias) → one MatMulIntegerToFloat with its bias input."""
    graph = model_proto.graph
    inits = {i.name for i in graph.initializer}
    consumers = _consumers(graph)
    outputs = {o.name for o in graph.output}
    fused, drop = 0, set()
    for node in graph.node:
        if node.op_type != "MatMulIntegerToFloat" or len(node.input) > 6 or node.output[0] in outputs:
            continue
        users = consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "Add":
            continue
        add = users[0]
        bias = [n for n in add.input if n != node.output[0]]
        if len(bias) != 1 or bias[0] not in inits:
            continue
        node.input.extend([""] * (6 - len(node.input)) + bias)
        node.output[0] = add.output[0]
        drop.add(id(add))
        fused += 1
    keep = [n for n in graph.node if id(n) not in drop]
    del graph.node[:]
    graph.node.extend(keep)
    return fused


def integer_gemm_from_dequantized(model_proto: onnx.ModelProto) -> int:
    """Gemm(DequantizeLinear(a), DequantizeLinear(int8 weight), bias) → MatMulIntegerToFloat with the bias.

    onnxruntime fuses a 2-D MatMul and its bias Add into a Gemm before its QDQ fusions run, and
    DQ → Gemm is not one of them, so a decoder's LM head (the last position only: 2-D) would
    dequantize its whole weight on every step. Same arithmetic, (qa − za)·sa · (qb − zb)·sb + bias.
    """
    graph = model_proto.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    per_tensor = lambda name: name in inits and int(np.prod(inits[name].dims)) == 1  # noqa: E731  (the op's a_scale is one number)
    rewritten, nodes = 0, []
    for node in graph.node:
        a, b = (producer.get(i) for i in node.input[:2]) if node.op_type == "Gemm" else (None, None)
        plain = node.op_type == "Gemm" and _attr(node, "alpha", 1.0) == 1.0 and _attr(node, "beta", 1.0) == 1.0 \
            and not _attr(node, "transA", 0) and not _attr(node, "transB", 0)
        if not (plain and a is not None and b is not None and a.op_type == b.op_type == "DequantizeLinear" and b.input[0] in inits
                and len(a.input) == len(b.input) == 3 and per_tensor(a.input[1]) and len(node.input) == 3 and node.input[2] in inits):
            nodes.append(node)
            continue
        nodes.append(onnx.helper.make_node(
            "MatMulIntegerToFloat", [a.input[0], b.input[0], a.input[1], b.input[1], a.input[2], b.input[2], node.input[2]],
            list(node.output), domain="com.microsoft", name=f"{node.name or node.output[0]}/integer"))
        rewritten += 1
    used = {i for n in nodes for i in n.input} | {o.name for o in graph.output}
    nodes = [n for n in nodes if n.op_type != "DequantizeLinear" or n.output[0] in used]
    del graph.node[:]
    graph.node.extend(nodes)
    if rewritten and not any(o.domain == "com.microsoft" for o in model_proto.opset_import):
        model_proto.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    return rewritten


def compact_names(model_proto: onnx.ModelProto) -> int:
    """Drop node names and give the activations between nodes short names ("t12"); weights and the
    graph's inputs and outputs keep theirs. The exporter's scoped names ("/model/bert/encoder/
    layer.5/...") on ~2000 nodes are ~15% of a small int8 file and are never read at run time.
    Returns the number of tensors renamed (0 when a node carries a subgraph, whose references this
    pass does not follow)."""
    graph = model_proto.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        return 0
    keep = {v.name for v in graph.input} | {v.name for v in graph.output} | {i.name for i in graph.initializer} | {""}  # "": an omitted optional input
    outputs = [o for n in graph.node for o in n.output if o not in keep]
    prefix = "t"
    while any(name.startswith(prefix) and name[len(prefix):].isdigit() for name in keep):
        prefix = "_" + prefix
    renamed = {name: f"{prefix}{i}" for i, name in enumerate(dict.fromkeys(outputs))}
    for node in graph.node:
        node.name = ""
        node.input[:] = [renamed.get(n, n) for n in node.input]
        node.output[:] = [renamed.get(n, n) for n in node.output]
    del graph.value_info[:]  # shape hints keyed by the old names
    return len(renamed)


def optimize_for_onnxruntime(path: Path) -> None:
    """Store the graph as onnxruntime's CPU optimizer rewrites it (integer matmul kernels), biases fused.

    Extended level only: its rewrites hold on any CPU, unlike the layout ones of the highest level.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    optimized = path.with_suffix(".ort-optimized.onnx")
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    proto = onnx.load(str(optimized))
    integer_gemm_from_dequantized(proto)
    fuse_bias_into_integer_matmul(proto)
    compact_names(proto)
    onnx.save(proto, str(path))
    optimized.unlink()


def _int8_postprocess(optimize: bool, tables_transposed: bool = False):
    """The graph rewrites of an int8 file; `tables_transposed`: every gathered table stored
    transposed, as a tied decoder stores its own (encoder-decoders: one layout, one shared copy)."""
    def postprocess(path: Path) -> None:
        proto = onnx.load(str(path))
        if fold_weight_quantization(proto) == 0:
            raise LeanformerError("the exported graph has no quantized weights to store as int8")
        gather_quantized_rows(proto)
        store_tied_tables_transposed(proto)
        if tables_transposed:
            store_gathered_tables_transposed(proto)
        fold_weight_views(proto)
        compact_names(proto)
        onnx.save(proto, str(path))
        if optimize:
            optimize_for_onnxruntime(path)

    return postprocess


def export_int8_seq2seq(model: nn.Module, directory: str | os.PathLike, *, optimize: bool = True, kernels: str = "any") -> Path:
    """Encoder and cached decoder step of a fake-quantized encoder-decoder, as int8 ONNX graphs
    (`kernels`: see INTEGER_KERNELS)."""
    with frozen_for_export(model, kernels), torch.no_grad():
        return export_seq2seq_onnx(model, directory, postprocess=_int8_postprocess(optimize, tables_transposed=True))


def export_int8_onnx(model: nn.Module, path: str | os.PathLike, *, seq_len: int = 16, optimize: bool = True, kernels: str = "any") -> Path:
    """Write the fake-quantized `model` as an int8 ONNX model, atomically.

    `optimize` stores onnxruntime's optimized graph (integer matmul kernels, biases fused); without
    it the file is the plain QDQ graph with 8-bit integer weights. `kernels` picks the x86 integer
    kernels the file is exact on (INTEGER_KERNELS): "any" by default.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        float_path = Path(tmp) / "qdq.onnx"
        with frozen_for_export(model, kernels), torch.no_grad():
            export_onnx(model, float_path, seq_len=seq_len)
        _int8_postprocess(optimize)(float_path)
        os.replace(float_path, path)
    return path
