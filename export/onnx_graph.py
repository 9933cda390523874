"""ONNX graph steps after the export: folded weight transposes, last-position logits, fp16, quantization, side paths."""
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


def fold_weight_transposes(weights) -> dict[str, str]:
    """Store each Linear weight that a MatMul reads through a Transpose transposed, one tensor at a time.

    Torch's exporter without constant folding (export/torch_to_onnx.py) writes a Linear's weight
    [out, in] under its parameter name and transposes it in the graph; the quantizers, SmoothQuant
    and the shared base's index want the MatMul's constant [in, out] matrix, as constant folding
    gave. A weight that something else reads as well (a tied embedding, which the token ids'
    Gather reads) keeps its Transpose, so it is written once; ONNX Runtime folds that one when it
    creates the session. weights: a GraphWeights. Returns {parameter name: transposed initializer}.
    """
    graph = weights.graph
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    folded = {}
    for node in list(graph.node):
        if node.op_type != "Transpose" or node.input[0] not in weights or len(readers[node.input[0]]) != 1:
            continue
        perm = [list(a.ints) for a in node.attribute if a.name == "perm"]
        shape = weights.initializers[node.input[0]].dims
        if len(shape) != 2 or perm not in ([], [[1, 0]]) \
                or not all(r.op_type == "MatMul" for r in readers.get(node.output[0], [])):
            continue
        param, name = node.input[0], node.input[0] + "_transposed"
        weights.put(name, weights.array(param).T, over=param)  # the parameter's bytes are read once, here
        for reader in readers.get(node.output[0], []):
            reader.input[1] = name
        graph.node.remove(node)
        weights.remove(param)
        folded[param] = name
    return folded


def to_fp16(weights) -> None:
    """Weights, activations and the KV cache in float16 (for the CUDA execution provider), in place.

    ONNX Runtime's converter decides which tensors become float16 and rewrites the graph; it
    converts only the values it holds, so the weights on disk are converted here afterwards, one at
    a time, with its own rounding (values clamped into float16's range as it does).
    """
    from unittest import mock

    from onnxruntime.transformers import float16

    before = {name: t.data_type for name, t in weights.initializers.items()}
    # The converter reads each converted initializer's values only for its shape: the dims give it
    # without loading a weight that stays on disk.
    shape_only = lambda t: helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))  # noqa: E731
    with mock.patch.object(float16, "make_value_info_from_tensor", shape_only):
        weights.model = float16.convert_float_to_float16(weights.model, keep_io_types=False, disable_shape_infer=True)
    for name, tensor in list(weights.initializers.items()):
        if before.get(name) == TensorProto.FLOAT and tensor.data_type == TensorProto.FLOAT16 \
                and tensor.data_location == TensorProto.EXTERNAL:
            tensor.data_type = TensorProto.FLOAT
            weights.put(name, float16.convert_np_to_float16(weights.array(name)))


def to_quantized(weights, recipe, calibration_path: Path | None = None, calibration: list | None = None,
                 pad_id: int = 0) -> str:
    """Quantization by `recipe` (modmt.export.quantize), in place on a GraphWeights.

    calibration: token-id sequences of training text, for recipes that smooth (export/smoothquant.py),
    run through the float graph saved at calibration_path. Returns what smoothing did (for the manifest).
    """
    from modmt.export.quantize import CALIBRATION_NEEDED, quantize

    maxima = None
    if recipe.smooth:
        if not calibration:
            raise ModmtError(CALIBRATION_NEEDED)
        from modmt.export.smoothquant import activation_max, smoothing_groups

        # A tied output projection is untied (a weight of its own) only later: measure what it reads now.
        groups = smoothing_groups(weights.model, recipe.smooth, weights_only=False)
        maxima = activation_max(calibration_path, [g.tensor for g in groups], calibration, pad_id)
    return quantize(weights, recipe, activation_max=maxima)


def add_lora_side_paths(weights, index: dict, rank: int) -> dict:
    """Beside each indexed weight matrix W (a MatMul y = x @ W), add y += (x @ A) @ B with A, B zeros.

    A quantized shared base keeps W quantized and receives each direction's merged delta as the
    low-rank factors A [K, rank] and B [rank, N] at session creation (runtime/shared_fold.py):
    the delta stays exact in float, no matrix is quantized twice, and loading a direction costs
    a few megabytes instead of a re-quantization. weights: a GraphWeights, changed in place.
    Returns {weight name: {a, b, rank}}.
    """
    import numpy as np

    graph = weights.graph
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
        weights.put(a, np.zeros((k, rank), np.float32))
        weights.put(b, np.zeros((rank, n), np.float32))
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
    return paths
