"""Graph steps one tensor at a time (export/onnx_weights.py): same results as the whole-model library calls,
and memory bounded by a tensor, not the model."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modmt.export.onnx_weights import GraphWeights


def matmul_chain(path: Path, shapes: list[tuple[int, int]], vocab: int = 0, seed: int = 0) -> Path:
    """ids -> [Gather(table)] -> MatMul(W0) -> ... -> y, saved with every weight external."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", shapes[0][0]])]
    if vocab:
        inits.append(numpy_helper.from_array(rng.standard_normal((vocab, shapes[0][0])).astype(np.float32),
                                             "model.embed_tokens.weight"))
        nodes.append(helper.make_node("Gather", ["model.embed_tokens.weight", "ids"], ["x"], name="/model/embed/Gather"))
        inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b"])]
    for i, (k, n) in enumerate(shapes):
        inits.append(numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"y{i}"], name=f"/model/layers.{i}/mlp/up_proj/MatMul"))
        x = f"y{i}"
    graph = helper.make_graph(nodes, "chain", inputs, [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=1024)
    return path


def run(path: Path, feed: dict) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]


def test_weights_are_read_replaced_and_saved_one_at_a_time(tmp_path):
    source = matmul_chain(tmp_path / "a" / "model.onnx", [(16, 32), (32, 8)])
    full = onnx.load(str(source))
    weights = GraphWeights.load(source, scratch_dir=tmp_path)
    assert not any(init.raw_data for init in weights.graph.initializer), "loaded without its weights"
    w0 = numpy_helper.to_array(next(i for i in full.graph.initializer if i.name == "w0"))
    np.testing.assert_array_equal(weights.array("w0"), w0)
    weights.put("w0", 2 * weights.array("w0"))
    weights.put("tiny", np.ones(3, np.float32))              # small: stays in the graph
    assert weights.initializers["tiny"].raw_data and "tiny" in weights
    weights.remove("tiny")
    weights.save(tmp_path / "b" / "model.onnx")
    weights.close()
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["model.onnx", "model.onnx.data"]
    assert not list(tmp_path.glob(".modmt-scratch-*")), "the scratch file is removed"
    x = np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32)
    np.testing.assert_allclose(run(tmp_path / "b" / "model.onnx", {"x": x}), 2 * run(source, {"x": x}), rtol=1e-5)


def test_saving_over_its_own_data_file_reads_the_old_bytes_first(tmp_path):
    source = matmul_chain(tmp_path / "model.onnx", [(16, 32), (32, 8)])
    x = np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32)
    want = run(source, {"x": x})
    weights = GraphWeights.load(source)
    weights.put("w1", weights.array("w1") * 3)
    weights.save(source)
    weights.close()
    np.testing.assert_allclose(run(source, {"x": x}), 3 * want, rtol=1e-5)


@pytest.mark.parametrize("bits,symmetric", [(8, True), (4, False)])
def test_one_node_at_a_time_quantization_equals_the_whole_graph_quantizer(tmp_path, bits, symmetric):
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    from modmt.export.quantize import RECIPES, _quantize

    source = matmul_chain(tmp_path / "m" / "model.onnx", [(64, 96), (96, 32)], vocab=40)
    recipe = RECIPES["int8" if bits == 8 else "int4"]
    ops = ("MatMul", "Gather") if bits == 4 else ("MatMul",)
    config = DefaultWeightOnlyQuantConfig(block_size=recipe.block_size, is_symmetric=symmetric,
                                          accuracy_level=recipe.accuracy_level, bits=bits, op_types_to_quantize=ops,
                                          quant_axes=(("MatMul", 0), ("Gather", 1)))
    whole = MatMulNBitsQuantizer(onnx.load(str(source)), bits=bits, block_size=recipe.block_size,
                                 is_symmetric=symmetric, accuracy_level=recipe.accuracy_level, algo_config=config)
    whole.process()
    want = whole.model.model

    weights = GraphWeights.load(source, scratch_dir=tmp_path)
    names = [n.name for n in weights.graph.node]
    _quantize(weights, names, bits, recipe, "MatMul", symmetric)
    if bits == 4:
        _quantize(weights, names, bits, recipe, "Gather", symmetric)
    assert [n.op_type for n in weights.graph.node] == [n.op_type for n in want.graph.node]
    assert "MatMulNBits" in [n.op_type for n in weights.graph.node]
    got = {name: weights.array(name) for name in weights.initializers}
    expected = {i.name: numpy_helper.to_array(i) for i in want.graph.initializer}
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    weights.close()


def test_fp16_converts_the_weights_on_disk_as_the_converter_does_in_memory(tmp_path):
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from modmt.export.onnx_graph import to_fp16

    source = matmul_chain(tmp_path / "m" / "model.onnx", [(16, 32), (32, 8)])
    want = convert_float_to_float16(onnx.load(str(source)), keep_io_types=False, disable_shape_infer=True)
    weights = GraphWeights.load(source, scratch_dir=tmp_path)
    to_fp16(weights)
    for init in want.graph.initializer:
        assert weights.initializers[init.name].data_type == TensorProto.FLOAT16
        np.testing.assert_array_equal(weights.array(init.name), numpy_helper.to_array(init))
    weights.save(tmp_path / "fp16" / "model.onnx")
    weights.close()
    x = np.random.default_rng(2).standard_normal((2, 16)).astype(np.float16)
    np.testing.assert_array_equal(run(tmp_path / "fp16" / "model.onnx", {"x": x}),
                                  run_model(want, {"x": x}))


def run_model(model: onnx.ModelProto, feed: dict) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]


MEASURE = """
import json, sys
from pathlib import Path
from modmt.export.onnx_weights import GraphWeights
from modmt.export.quantize import RECIPES, _quantize, dynamic_int8

def status(key):  # KiB
    return int(next(l for l in open("/proc/self/status") if l.startswith(key + ":")).split()[1])

def step(path, out):
    weights = GraphWeights.load(path)
    names = [n.name for n in weights.graph.node]
    if sys.argv[3] == "int8":
        _quantize(weights, names, 8, RECIPES["int8"], "MatMul", True)
    else:
        dynamic_int8(weights, names)
    weights.save(out)
    weights.close()

step(Path(sys.argv[1]), Path(sys.argv[1]).with_name("warm.onnx"))  # the first call's imports and caches
open("/proc/self/clear_refs", "w").write("5")  # peak RSS (VmHWM) := current RSS
before = status("VmRSS")
step(Path(sys.argv[2]), Path(sys.argv[2]).with_name("out.onnx"))
print(json.dumps({"grew_kib": status("VmHWM") - before}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")
@pytest.mark.parametrize("recipe", ["int8", "w8a8"])
def test_quantizing_holds_a_tensor_at_a_time_not_the_model(tmp_path, recipe):
    """16 matrices of 16 MB (256 MB): quantizing them all raises the peak by a few matrices' worth (measured:
    about 0.3x the model), where loading the model as onnx.load did raised it by 1.5x."""
    small = matmul_chain(tmp_path / "small" / "model.onnx", [(256, 256)] * 2)
    big = matmul_chain(tmp_path / "big" / "model.onnx", [(2048, 2048)] * 16)
    model_kib = 16 * 2048 * 2048 * 4 / 1024
    result = subprocess.run([sys.executable, "-c", MEASURE, str(small), str(big), recipe], capture_output=True,
                            text=True, check=True)
    grew = json.loads(result.stdout.strip().splitlines()[-1])["grew_kib"]
    assert grew < 0.5 * model_kib, f"peak grew {grew / 1024:.0f} MiB for a {model_kib / 1024:.0f} MiB model"


def test_constants_that_optimum_moved_to_its_data_file_move_with_the_weights(tmp_path):
    """Optimum gathers a large model's weights with convert_attribute=True: Constant nodes' values go to
    the data file as well, and a saved export must carry them (ONNX Runtime: "External data path does not
    exist" otherwise)."""
    offset = np.arange(64, dtype=np.float32).reshape(1, 64)
    source = matmul_chain(tmp_path / "a" / "model.onnx", [(16, 64)])
    model = onnx.load(str(source))
    model.graph.node.append(helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(offset, "c")))
    model.graph.node.append(helper.make_node("Add", ["y0", "c"], ["z"]))
    model.graph.output[0].name = "z"
    (tmp_path / "b").mkdir()
    onnx.save_model(model, str(tmp_path / "b" / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx_data", size_threshold=100, convert_attribute=True)
    weights = GraphWeights.load(tmp_path / "b" / "model.onnx", scratch_dir=tmp_path)
    weights.save(tmp_path / "c" / "model.onnx")
    weights.close()
    x = np.ones((1, 16), np.float32)
    np.testing.assert_allclose(run(tmp_path / "c" / "model.onnx", {"x": x}), run(source, {"x": x}) + offset, rtol=1e-6)


def test_rewriting_a_weight_reuses_its_bytes_only_in_files_the_export_owns(tmp_path):
    """A weight transposed, then smoothed, is written over its own bytes: the disk holds one copy (a 3B
    w8a8 export filled the disk when every rewrite appended). Files the export does not own (another
    export it re-quantizes) are never written."""
    source = matmul_chain(tmp_path / "a" / "model.onnx", [(64, 64), (64, 32)])
    data = tmp_path / "a" / "model.onnx.data"
    before = data.read_bytes()
    borrowed = GraphWeights.load(source, scratch_dir=tmp_path)
    borrowed.put("w0", borrowed.array("w0") * 2)
    assert data.read_bytes() == before, "a file the export does not own is left alone"
    borrowed.close()

    owned = GraphWeights.load(source, owned=("model.onnx.data",))
    w0 = owned.array("w0")
    owned.put("w0_transposed", w0.T, over="w0")
    owned.remove("w0")
    owned.put("w0_transposed", owned.array("w0_transposed") * 3)
    assert data.stat().st_size == len(before) and not owned.scratch_path.exists(), "no byte appended anywhere"
    np.testing.assert_array_equal(owned.array("w0_transposed"), 3 * w0.T)
    owned.close()
