"""Build the small graphs the runtime ships beside an export: the beam-search head and the row gather.

`python -m modmt.export.search_graph` (re)writes runtime/search_{fp32,fp16}.onnx and
runtime/rows_{fp32,fp16}.onnx. The runtime cannot build them itself (it does not depend on the
`onnx` package), so they are committed, and a test checks that they are what this builder makes.
Run as second sessions on the decoder's device, the head turns a [rows, positions, vocab] logits
batch into [rows, k] log-probabilities and token ids of the last position (ONNX Runtime's TopK
instead of numpy's argpartition over the whole vocabulary, which took a fifth of the beam-search
time on the CPU), and the row gather picks a tensor's rows (the beams kept) without it leaving the
device (runtime/device_rows.py).
"""
from pathlib import Path

import onnx
from onnx import TensorProto, helper

RUNTIME = Path(__file__).resolve().parent.parent / "runtime"
VARIANTS = {"search_fp32.onnx": TensorProto.FLOAT, "search_fp16.onnx": TensorProto.FLOAT16}
ROWS_VARIANTS = {"rows_fp32.onnx": TensorProto.FLOAT, "rows_fp16.onnx": TensorProto.FLOAT16}


def _finish(graph: onnx.GraphProto, check: bool = True) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modmt")
    model.ir_version = 8  # loadable by every ONNX Runtime modmt supports (>= 1.18)
    if check:
        onnx.checker.check_model(model)
    return model


def build(logits_type: int) -> onnx.ModelProto:
    """logits [rows, positions, vocab] (fp32 or fp16), k int64 [1] -> logprobs [rows, k] fp32, ids [rows, k] int64.

    The last position's distribution, as the decoder's logits output holds it (one position, or every
    prompt position in an --all-logits export). TopK returns its k largest sorted, equal values in
    index order (the ONNX spec): deterministic.
    """
    nodes = [helper.make_node("Constant", [], ["last"], value=helper.make_tensor("last", TensorProto.INT64, [], [-1])),
             helper.make_node("Gather", ["logits", "last"], ["logits_last"], axis=1)]
    source = "logits_last"
    if logits_type != TensorProto.FLOAT:  # log-softmax in fp32 whatever the model's precision
        nodes.append(helper.make_node("Cast", [source], ["logits_fp32"], to=TensorProto.FLOAT))
        source = "logits_fp32"
    nodes += [helper.make_node("LogSoftmax", [source], ["logprobs_all"], axis=-1),
              helper.make_node("TopK", ["logprobs_all", "k"], ["logprobs", "ids"], axis=-1, largest=1, sorted=1)]
    graph = helper.make_graph(
        nodes, "modmt_search_head",
        [helper.make_tensor_value_info("logits", logits_type, ["rows", "positions", "vocab"]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("logprobs", TensorProto.FLOAT, ["rows", "k_out"]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, ["rows", "k_out"])])
    return _finish(graph)


def build_rows(element_type: int) -> onnx.ModelProto:
    """x [rows, ...] (any rank), rows int64 [n] -> x[rows]: the beam reorder of a KV-cache tensor."""
    graph = helper.make_graph(
        [helper.make_node("Gather", ["x", "rows"], ["y"], axis=0)], "modmt_rows",
        [helper.make_tensor_value_info("x", element_type, None),
         helper.make_tensor_value_info("rows", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("y", element_type, None)])
    return _finish(graph, check=False)  # the checker wants a rank; ONNX Runtime takes any (tests run it)


def main() -> None:
    for variants, builder in ((VARIANTS, build), (ROWS_VARIANTS, build_rows)):
        for name, element_type in variants.items():
            (RUNTIME / name).write_bytes(builder(element_type).SerializeToString())
            print(f"wrote {RUNTIME / name}")


if __name__ == "__main__":
    main()
