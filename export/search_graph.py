"""Build the beam-search head the runtime ships: log-softmax and per-row top-k of a logits batch, as ONNX.

`python -m modmt.export.search_graph` (re)writes runtime/search_fp32.onnx and runtime/search_fp16.onnx.
The runtime cannot build them itself (it does not depend on the `onnx` package), so they are
committed, and a test checks that they are what this builder makes. Run as a second session on the
decoder's device, the head turns a [rows, vocab] logits batch into [rows, k] log-probabilities and
token ids: ONNX Runtime's TopK instead of numpy's argpartition over the whole vocabulary, which took
a fifth of the beam-search time on the CPU (docs/results.md).
"""
from pathlib import Path

import onnx
from onnx import TensorProto, helper

RUNTIME = Path(__file__).resolve().parent.parent / "runtime"
VARIANTS = {"search_fp32.onnx": TensorProto.FLOAT, "search_fp16.onnx": TensorProto.FLOAT16}


def build(logits_type: int) -> onnx.ModelProto:
    """logits [rows, vocab] (fp32 or fp16), k int64 [1] -> logprobs [rows, k] fp32, ids [rows, k] int64.

    TopK returns its k largest sorted, equal values in index order (the ONNX spec): deterministic.
    """
    nodes = []
    source = "logits"
    if logits_type != TensorProto.FLOAT:  # log-softmax in fp32 whatever the model's precision
        nodes.append(helper.make_node("Cast", ["logits"], ["logits_fp32"], to=TensorProto.FLOAT))
        source = "logits_fp32"
    nodes += [helper.make_node("LogSoftmax", [source], ["logprobs_all"], axis=-1),
              helper.make_node("TopK", ["logprobs_all", "k"], ["logprobs", "ids"], axis=-1, largest=1, sorted=1)]
    graph = helper.make_graph(
        nodes, "modmt_search_head",
        [helper.make_tensor_value_info("logits", logits_type, ["rows", "vocab"]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("logprobs", TensorProto.FLOAT, ["rows", "k_out"]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, ["rows", "k_out"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modmt")
    model.ir_version = 8  # loadable by every ONNX Runtime modmt supports (>= 1.18)
    onnx.checker.check_model(model)
    return model


def main() -> None:
    for name, logits_type in VARIANTS.items():
        (RUNTIME / name).write_bytes(build(logits_type).SerializeToString())
        print(f"wrote {RUNTIME / name}")


if __name__ == "__main__":
    main()
