"""ONNX graph steps after Optimum's export: last-position logits, fp16, weight-only int8/int4, side paths."""
import os
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from modmt.runtime.errors import ModmtError

EXTERNAL_DATA_ABOVE = 1 << 30  # bytes of weights; above this they go to model.onnx.data


def save(model: onnx.ModelProto, path: Path, weight_bytes: int, external_data: bool = False) -> None:
    """Save; weights go to one `<name>.data` file when large (or when asked: shared bases index it)."""
    if external_data or weight_bytes > EXTERNAL_DATA_ABOVE:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
        os.chmod(path.with_name(path.name + ".data"), 0o644)  # onnx writes it private; exports are shared
    else:
        onnx.save_model(model, str(path))


# Elementwise steps a family may put after its output projection: Gemma 2 soft-caps its logits as
# tanh(logits / cap) * cap. Slicing before the projection cuts them to the last position as well.
ELEMENTWISE_AFTER_HEAD = {"Div", "Mul", "Tanh", "Add", "Sub", "Cast"}


def output_projection(graph) -> onnx.NodeProto:
    """The MatMul that computes the logits, found through any elementwise steps after it."""
    producers = {out: node for node in graph.node for out in node.output}
    constants = {i.name for i in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}
    node = producers.get("logits")
    while node is not None and node.op_type in ELEMENTWISE_AFTER_HEAD:
        flowing = [i for i in node.input if i not in constants]
        if len(flowing) != 1:
            break
        node = producers.get(flowing[0])
    if node is None or node.op_type != "MatMul":
        raise ModmtError("unexpected ONNX graph: no MatMul (followed by elementwise steps only) produces "
                         "'logits'; export with --all-logits")
    return node


def last_position_logits(model: onnx.ModelProto) -> onnx.ModelProto:
    """Make `logits` [batch, 1, vocab]: slice the last position before the LM head.

    Decoding needs only the next-token distribution; Optimum's graph computes logits for every
    prompt position, which for a 151,936-token vocabulary is most of the prefill's memory.
    """
    graph = model.graph
    head = output_projection(graph)
    names = {"starts": "modmt_last_starts", "ends": "modmt_last_ends", "axes": "modmt_last_axes"}
    graph.initializer.extend([
        helper.make_tensor(names["starts"], TensorProto.INT64, [1], [-1]),
        helper.make_tensor(names["ends"], TensorProto.INT64, [1], [2**62]),
        helper.make_tensor(names["axes"], TensorProto.INT64, [1], [1]),
    ])
    sliced = head.input[0] + "_modmt_last"
    slice_node = helper.make_node("Slice", [head.input[0], names["starts"], names["ends"], names["axes"]],
                                  [sliced], name="modmt_last_position")
    head.input[0] = sliced
    index = list(graph.node).index(head)
    graph.node.insert(index, slice_node)
    for output in graph.output:
        if output.name == "logits":
            output.type.tensor_type.shape.dim[1].ClearField("dim_param")
            output.type.tensor_type.shape.dim[1].dim_value = 1
    return model


def to_fp16(src: Path, dst: Path, weight_bytes: int) -> None:
    """Weights, activations and the KV cache in float16 (for the CUDA execution provider)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=False, disable_shape_infer=True)
    save(model, dst, weight_bytes // 2)


def to_quantized(src: Path, dst: Path, weight_bytes: int, recipe, calibration: list | None = None,
                 pad_id: int = 0) -> None:
    """Quantization by `recipe` (modmt.export.quantize), saved beside its weights.

    calibration: token-id sequences of training text, for recipes that smooth (export/smoothquant.py).
    """
    from modmt.export.quantize import CALIBRATION_NEEDED, quantize

    maxima = None
    if recipe.smooth:
        if not calibration:
            raise ModmtError(CALIBRATION_NEEDED)
        from modmt.export.smoothquant import activation_max, smoothing_groups

        # A tied output projection is untied (a weight of its own) only later: measure what it reads now.
        groups = smoothing_groups(onnx.load(str(src), load_external_data=False), recipe.smooth, weights_only=False)
        maxima = activation_max(src, [g.tensor for g in groups], calibration, pad_id)
    # int8 keeps about a quarter of the float bytes, int4 about a sixth: external data only when large.
    save(quantize(onnx.load(str(src)), recipe, activation_max=maxima), dst, weight_bytes * recipe.bits // 32)


def add_lora_side_paths(model: onnx.ModelProto, index: dict, rank: int) -> tuple[onnx.ModelProto, dict]:
    """Beside each indexed weight matrix W (a MatMul y = x @ W), add y += (x @ A) @ B with A, B zeros.

    A quantized shared base keeps W quantized and receives each direction's merged delta as the
    low-rank factors A [K, rank] and B [rank, N] at session creation (runtime/shared_fold.py):
    the delta stays exact in float, no matrix is quantized twice, and loading a direction costs
    a few megabytes instead of a re-quantization. Returns the model and {weight name: {a, b, rank}}.
    """
    from onnx import numpy_helper
    import numpy as np

    graph = model.graph
    consumers = {}
    for node in graph.node:
        if node.op_type == "MatMul":
            consumers.setdefault(node.input[1], []).append(node)
    paths, new_nodes = {}, []
    for i, (name, entry) in enumerate(sorted(index.items())):
        nodes = consumers.get(entry["initializer"], [])
        if len(nodes) != 1 or not entry["transposed"]:
            raise ModmtError(f"unexpected ONNX graph: {name} is not the weight of exactly one MatMul")
        node = nodes[0]
        k, n = entry["shape"]
        a, b = f"modmt_lora_a.{i}", f"modmt_lora_b.{i}"
        graph.initializer.extend([numpy_helper.from_array(np.zeros((k, rank), np.float32), a),
                                  numpy_helper.from_array(np.zeros((rank, n), np.float32), b)])
        y = node.output[0]
        node.output[0] = f"{y}_modmt_base"
        new_nodes.append((node, [
            helper.make_node("MatMul", [node.input[0], a], [f"{y}_modmt_xa"], name=f"modmt_lora_xa.{i}"),
            helper.make_node("MatMul", [f"{y}_modmt_xa", b], [f"{y}_modmt_delta"], name=f"modmt_lora_xab.{i}"),
            helper.make_node("Add", [f"{y}_modmt_base", f"{y}_modmt_delta"], [y], name=f"modmt_lora_add.{i}"),
        ]))
        paths[name] = {"a": a, "b": b, "rank": rank, "shape": [k, n]}
    for node, added in new_nodes:  # keep the graph topologically sorted: each path right after its MatMul
        at = list(graph.node).index(node) + 1
        for offset, extra in enumerate(added):
            graph.node.insert(at + offset, extra)
    return model, paths
