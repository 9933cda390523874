"""The routed graph of a shared base: every direction in one session, each batch row choosing its own.

Beside each adapted matrix W (y = x @ W, quantized or not) the graph computes a side path over a
*bank* of LoRA factors, the concatenation of every loaded adapter's A^T [K, R] and B^T [R, N]
(R = the sum of their ranks), given by the runtime (runtime/routed_translator.py). Two graphs:
routed-fixed.onnx holds the bank (and MIX) as initializers of a fixed rank, the pool's total rank
when the base was exported, that the runtime replaces when it opens the session (its adapters'
columns first, zeros after); routed.onnx takes them as graph inputs of any rank, for a bank that
has outgrown the fixed one. The fixed graph is the one used: ONNX Runtime's float MatMul with an
input on its right computes a row differently depending on how many rows share the call (its two
threads split the work by rows or by columns; on the real model's base a sentence's logits alone
and in a batch of 16 differed from the first step), while with a constant right side every row's
arithmetic is the same whatever the batch. Its placeholders are zeros read from one small file
(routed-zeros.bin) that every placeholder points at, so they cost no disk:

    u   = (x @ A_bank) * cA[row]                  per-row coefficients select and scale adapters
    low = f[row] * u + (1 - f[row]) * v,  v = u @ MIX    MIX sums each adapter's rank slots (Setting 2)
    y  += (low * cB[row]) @ B_bank

Setting 1 (f = 1, cA = w*s on the row's two adapters, cB = 1) gives w_in s_in B_in A_in x +
w_out s_out B_out A_out x; Setting 2 (f = 0, cA = cB = sqrt(w*s)) gives (sum c B)(sum c A) x.
cA, cB and f come per layer (learned weights) from a small table [slots, layers, 3, R] indexed by
each row's slot, `modmt_route` [rows]: so a batch mixes directions and weights, and the base
weights exist once. The graph is saved as routed.onnx beside model.onnx and reads the same
model.onnx.data, so it costs a few hundred kilobytes on disk.
"""
import math
from pathlib import Path

import onnx
from onnx import TensorProto, helper, numpy_helper

from modmt.runtime.errors import ModmtError
from modmt.runtime.lora_merge import layer_index
from modmt.runtime.routed_translator import COEF, MIX, ROUTE

ROUTED_GRAPH = "routed.onnx"
FIXED_GRAPH = "routed-fixed.onnx"
ZEROS_FILE = "routed-zeros.bin"


def _float_input(name: str, dims: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def _zeros_placeholder(name: str, dims: list) -> onnx.TensorProto:
    """An fp32 initializer whose bytes are the start of ZEROS_FILE (the runtime replaces it)."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", ZEROS_FILE), ("offset", "0"), ("length", str(4 * math.prod(dims)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def routed_graph(model: onnx.ModelProto, matrices: dict, bank_rank: int | None = None) -> tuple[onnx.ModelProto, dict]:
    """Rewire side paths into routed ones. `matrices`: {weight name: {"xa": node, "xab": node}}, where
    xa = MatMul(x, A) and xab = MatMul(x @ A, B) are the side path's two products (their B inputs are
    replaced by the bank: graph inputs, or with bank_rank initializers of that rank). Returns the model
    and {weight name: {bank_a, bank_b, layer, shape}}."""
    import numpy as np

    graph = model.graph
    graph.input.extend([helper.make_tensor_value_info(ROUTE, TensorProto.INT64, ["rows"]),
                        _float_input(COEF, ["slots", "layers", 3, "bank_rank"])])
    if bank_rank is None:
        graph.input.append(_float_input(MIX, ["bank_rank", "bank_rank"]))
    else:
        graph.initializer.append(_zeros_placeholder(MIX, [bank_rank, bank_rank]))
    constants = {f"modmt_route_idx{i}": i for i in range(3)}
    layers = sorted({_layer(name) for name in matrices})
    constants.update({f"modmt_route_layer{l}": l for l in layers})
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), k) for k, v in constants.items())
    head = []  # per layer: the rows' cA, cB, f [rows, 1, R], computed once from graph inputs only
    for l in layers:
        t = f"modmt_route_l{l}"
        head += [helper.make_node("Gather", [COEF, f"modmt_route_layer{l}"], [f"{t}_slots"], axis=1),
                 helper.make_node("Gather", [f"{t}_slots", ROUTE], [f"{t}_rows"], axis=0)]
        for i, part in enumerate(("ca", "cb", "f")):
            head += [helper.make_node("Gather", [f"{t}_rows", f"modmt_route_idx{i}"], [f"{t}_{part}2"], axis=1),
                     helper.make_node("Unsqueeze", [f"{t}_{part}2", "modmt_route_axis1"], [f"{t}_{part}"])]
        # 1 - f, so that a Setting-1 row's low is exactly u (u*1 + v*0) and a Setting-2 row's exactly v.
        head.append(helper.make_node("Sub", ["modmt_route_one", f"{t}_f"], [f"{t}_g"]))
    graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "modmt_route_axis1"))
    graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "modmt_route_one"))
    for offset, node in enumerate(head):
        graph.node.insert(offset, node)

    banks = {}
    for i, (name, nodes) in enumerate(sorted(matrices.items())):
        xa, xab = nodes["xa"], nodes["xab"]
        l = _layer(name)
        t, y = f"modmt_route_l{l}", xa.output[0]
        k, n = nodes["shape"]
        a, b = f"modmt_bank_a.{i}", f"modmt_bank_b.{i}"
        if bank_rank is None:
            graph.input.extend([_float_input(a, [k, "bank_rank"]), _float_input(b, ["bank_rank", n])])
        else:
            graph.initializer.extend([_zeros_placeholder(a, [k, bank_rank]), _zeros_placeholder(b, [bank_rank, n])])
        xa.input[1] = a
        mixing = [
            helper.make_node("Mul", [y, f"{t}_ca"], [f"{y}_u"], name=f"modmt_route_u.{i}"),
            helper.make_node("MatMul", [f"{y}_u", MIX], [f"{y}_v"], name=f"modmt_route_mix.{i}"),
            helper.make_node("Mul", [f"{y}_u", f"{t}_f"], [f"{y}_fu"], name=f"modmt_route_fu.{i}"),
            helper.make_node("Mul", [f"{y}_v", f"{t}_g"], [f"{y}_gv"], name=f"modmt_route_gv.{i}"),
            helper.make_node("Add", [f"{y}_fu", f"{y}_gv"], [f"{y}_low"], name=f"modmt_route_low.{i}"),
            helper.make_node("Mul", [f"{y}_low", f"{t}_cb"], [f"{y}_lowb"], name=f"modmt_route_lowb.{i}"),
        ]
        xab.input[0], xab.input[1] = f"{y}_lowb", b
        at = list(graph.node).index(xab)
        for offset, node in enumerate(mixing):
            graph.node.insert(at + offset, node)
        banks[name] = {"bank_a": a, "bank_b": b, "layer": l, "shape": [k, n]}
    used = {i for node in graph.node for i in node.input}
    keep = [init for init in graph.initializer if init.name in used]  # the replaced zero factors go
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return model, banks


def _layer(name: str) -> int:
    layer = layer_index(name)
    if layer is None:
        raise ModmtError(f"cannot route {name}: it is not a decoder-layer matrix")
    return layer


def write_routed_graph(base_dir: Path, record: dict, bank_rank: int | None = None) -> dict:
    """routed.onnx from the base's model.onnx (graph only: the weights stay in model.onnx.data), and with
    bank_rank routed-fixed.onnx, whose bank is initializers of that rank.

    A quantized base already has a zero side path per matrix (export/onnx_graph.add_lora_side_paths);
    an fp32 base gets one here. Returns what the base manifest records under "routed".
    """
    import tempfile

    from modmt.export.onnx_graph import add_lora_side_paths
    from modmt.export.onnx_weights import GraphWeights

    template = onnx.load(str(base_dir / "model.onnx"), load_external_data=False)
    with tempfile.TemporaryDirectory() as scratch:
        if record.get("side_paths"):
            paths = record["side_paths"]
        else:  # zero factors as placeholders: routed_graph below replaces every one by the banks
            weights = GraphWeights(template, base_dir, scratch_dir=Path(scratch))
            paths = add_lora_side_paths(weights, record["weights_index"], 1)
            weights.close()
        for file, rank in {ROUTED_GRAPH: None, **({FIXED_GRAPH: bank_rank} if bank_rank else {})}.items():
            model = onnx.ModelProto()
            model.CopyFrom(template)  # routed_graph rewires the graph it is given
            by_name = {node.name: node for node in model.graph.node}
            matrices = {}
            for name, path in paths.items():
                index = path["a"].rsplit(".", 1)[1]
                xa, xab = by_name.get(f"modmt_lora_xa.{index}"), by_name.get(f"modmt_lora_xab.{index}")
                if xa is None or xab is None:
                    raise ModmtError(f"unexpected shared-base graph: no side path for {name}; re-export the base")
                matrices[name] = {"xa": xa, "xab": xab, "shape": path["shape"]}
            model, banks = routed_graph(model, matrices, rank)
            onnx.save_model(model, str(base_dir / file))
    routed = {"graph": ROUTED_GRAPH, "matrices": banks, "layers": 1 + max(b["layer"] for b in banks.values())}
    if bank_rank:  # every placeholder reads the start of one file, as long as the largest of them
        widest = max(max(k, n) for k, n in (b["shape"] for b in banks.values()))
        (base_dir / ZEROS_FILE).write_bytes(bytes(4 * bank_rank * max(widest, bank_rank)))
        routed.update(fixed_graph=FIXED_GRAPH, fixed_bank_rank=bank_rank)
    return routed
