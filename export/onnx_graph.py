"""ONNX graph steps after Optimum's export: last-position logits, fp16, int8 and int4 weights."""
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


def to_int8(src: Path, dst: Path, weight_bytes: int) -> None:
    """Dynamic int8 quantization of the MatMul weights (per channel), activations quantized on the fly."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], use_external_data_format=weight_bytes // 4 > EXTERNAL_DATA_ABOVE)


def to_int4(src: Path, dst: Path, weight_bytes: int, block_size: int = 32) -> None:
    """Blockwise int4 weights with ONNX Runtime's MatMulNBits (CPU and CUDA kernels)."""
    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ImportError as e:
        raise ModmtError(f"int4 quantization needs onnxruntime's MatMulNBits quantizer ({e}); "
                         "pip install onnx-ir") from None
    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), block_size=block_size, is_symmetric=True,
                                     accuracy_level=4)
    quantizer.process()
    save(quantizer.model.model, dst, weight_bytes // 8)
