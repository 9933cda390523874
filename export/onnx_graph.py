"""ONNX graph steps after Optimum's export: last-position logits, fp16, and weight-only int8/int4."""
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
    else:
        onnx.save_model(model, str(path))


def last_position_logits(model: onnx.ModelProto) -> onnx.ModelProto:
    """Make `logits` [batch, 1, vocab]: slice the last position before the LM head.

    Decoding needs only the next-token distribution; Optimum's graph computes logits for every
    prompt position, which for a 151,936-token vocabulary is most of the prefill's memory.
    """
    graph = model.graph
    heads = [n for n in graph.node if "logits" in n.output]
    if len(heads) != 1 or heads[0].op_type != "MatMul":
        raise ModmtError("unexpected ONNX graph: no single MatMul producing 'logits'; export with "
                         "--all-logits")
    head = heads[0]
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


def to_quantized(src: Path, dst: Path, weight_bytes: int, recipe) -> None:
    """Weight-only quantization by `recipe` (modmt.export.quantize), saved beside its weights."""
    from modmt.export.quantize import quantize

    # int8 keeps about a quarter of the float bytes, int4 about a sixth: external data only when large.
    save(quantize(onnx.load(str(src)), recipe), dst, weight_bytes * recipe.bits // 32)
