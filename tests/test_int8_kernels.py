"""w8a8's int8 x int8 GEMMs compute exactly what the recipe defines, on whatever CPU runs the tests.

ONNX Runtime picks its int8 kernel by instruction set: vpdpbusd with VNNI, vpmaddubsw without (which
adds pairs of u8 x s8 products in 16 bits with saturation), dot products on ARM64. The recipe keeps
every pair of products inside int16 (export/quantize.py, ACTIVATION_LEVELS), so every kernel gives the
integers numpy gives. The tolerances below come from float32 arithmetic, not from any CPU's luck.
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from modmt.export.onnx_weights import GraphWeights
from modmt.export.quantize import (ACTIVATION_LEVELS, ACTIVATION_ZERO, dynamic_int8, emulated_in_float,
                                   quantize_columns)
from modmt.runtime.cpu_features import int8_features

FLOAT32 = np.finfo(np.float32).eps


def cpu_int8_flags() -> str:
    return " ".join(sorted(int8_features())) or "none"


# A whole model against its float emulation (every matrix of the tiny models has K < 2,097, where the
# emulation is exact): equal but for float32 rounding of the two scalings, a few ulp. A kernel that
# clips is off by 20-40 % of the largest logit (the saturating recipe: 0.28-0.37 on an AVX2-only CPU).
EMULATION_BOUND = 1e-5


def kernel_error_against_emulation(export_dir, ids, mask, got) -> float:
    """max |logits of the w8a8 export - logits of its float emulation| / max |emulation| (last position)."""
    import tempfile

    from modmt.runtime.onnx_decoder import OnnxDecoder

    with tempfile.TemporaryDirectory() as scratch:  # the emulation holds its weights inline
        onnx.save(emulated_in_float(onnx.load(str(export_dir / "model.onnx"))), f"{scratch}/emulated.onnx")
        want = OnnxDecoder(f"{scratch}/emulated.onnx", provider="cpu").prefill(ids, mask)[0]
    return float(np.abs(want - got).max() / np.abs(want).max())


def one_matmul(tmp_path, weight: np.ndarray, opset: int):
    k, n = weight.shape
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="/model/layers.0/mlp/up_proj/MatMul")],
                              "one", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    onnx.save(model, str(tmp_path / "float.onnx"))
    weights = GraphWeights.load(tmp_path / "float.onnx", scratch_dir=tmp_path)
    dynamic_int8(weights, ["/model/layers.0/mlp/up_proj/MatMul"])
    weights.save(tmp_path / "int8.onnx", external_data=False)
    weights.close()
    return onnx.load(str(tmp_path / "int8.onnx"))


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("opset", [17, 18])
def test_the_int8_gemm_gives_numpys_integers_even_where_saturation_would_clip(tmp_path, opset):
    rng = np.random.default_rng(opset)
    k, n = 896, 96
    # Worst cases for a 16-bit pair sum: columns whose every weight is at +-127 after quantization and
    # rows whose every value is at the top of the activation range, of both signs.
    weight = rng.standard_normal((k, n)).astype(np.float32)
    weight[:, :8] = np.sign(weight[:, :8])
    x = rng.standard_normal((12, k)).astype(np.float32) * rng.uniform(0.01, 100, (12, 1)).astype(np.float32)
    x[:4] = np.sign(x[:4]) * 3.0
    x[4, ::2] = 0  # a row with zeros, and a row of zeros (a padded position)
    x[5] = 0
    model = one_matmul(tmp_path, weight, opset)
    assert [n.op_type for n in model.graph.node].count("MatMulIntegerToFloat") == 1
    got = session(model).run(None, {"x": x})[0]
    # The recipe in numpy: rows to 7 bits around the zero point, columns to 8 bits, integer products.
    step = np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-12) / ACTIVATION_LEVELS
    q = np.rint(x * np.float32(ACTIVATION_LEVELS / np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-12))
                + ACTIVATION_ZERO) - ACTIVATION_ZERO
    assert np.abs(q).max() <= ACTIVATION_LEVELS and (q[:4] != 0).all()
    wq, scale = quantize_columns(weight)
    assert (np.abs(wq[:, :8]) == 127).all()
    integers = q.astype(np.int64) @ wq.astype(np.int64)
    assert np.abs(integers).max() > 32767, "the test reaches sums a 16-bit accumulator could not hold"
    want = integers * scale.astype(np.float64) * step.astype(np.float64)
    # float32 rounding of the scales' two products on exact integers: a few ulp of each value.
    np.testing.assert_allclose(got, want, rtol=8 * FLOAT32, atol=1e-30, err_msg=f"CPU int8 flags: {cpu_int8_flags()}")
    # The float emulation of the same graph: the same integers (exact in float32 at this K).
    emulated = session(emulated_in_float(model)).run(None, {"x": x})[0]
    np.testing.assert_allclose(emulated, want, rtol=8 * FLOAT32, atol=1e-30)


def test_each_row_is_quantized_on_its_own(tmp_path):
    """A row's output does not depend on the other rows of the batch, nor on how many there are."""
    rng = np.random.default_rng(1)
    model = one_matmul(tmp_path, rng.standard_normal((64, 40)).astype(np.float32), 18)
    x = rng.standard_normal((9, 64)).astype(np.float32) * rng.uniform(0.1, 50, (9, 1)).astype(np.float32)
    run = session(model)
    together = run.run(None, {"x": x})[0]
    for i in range(9):
        assert np.array_equal(run.run(None, {"x": x[i:i + 1]})[0][0], together[i])
    assert np.array_equal(run.run(None, {"x": x[3:7]})[0], together[3:7])


def test_an_export_with_the_saturating_recipe_is_named_on_a_cpu_without_vnni():
    from modmt.export.quantize import RECIPES
    from modmt.runtime.cpu_features import recipe_notice

    avx2 = int8_features("processor : 0\nflags : fpu sse2 avx avx2 fma\n")
    vnni = int8_features("flags : avx2 avx512f avx512bw avx512_vnni\n")
    arm = int8_features("Features : fp asimd asimddp i8mm\n")
    assert avx2 == {"avx2"} and vnni == {"avx2", "avx512bw", "avx512_vnni"} and arm == {"asimddp", "i8mm"}
    current = RECIPES["w8a8"].to_json()
    before = {k: v for k, v in current.items() if k not in ("activations", "int8_products")}  # as exported until now
    notice = recipe_notice(before, avx2)
    assert notice.startswith("warning: this w8a8 export") and "avx2" in notice and "export it again" in notice
    assert "\n" not in notice
    assert recipe_notice(before, vnni) is None and recipe_notice(before, arm) is None
    assert recipe_notice(current, avx2) is None and recipe_notice(current, vnni) is None
    assert recipe_notice(None, avx2) is None and recipe_notice(RECIPES["int4"].to_json(), avx2) is None
    for int8 in ("int8", "int8-b128"):  # weight-only int8 is slow at batch without VNNI: said, not refused
        slow = recipe_notice(RECIPES[int8].to_json(), avx2)
        assert slow.startswith("note: without VNNI") and "w8a8" in slow and "\n" not in slow
        assert recipe_notice(RECIPES[int8].to_json(), arm) is None
    # With VNNI the 8-bit kernel is faster than fp32 per step (measured at equal work): no notice.
    assert recipe_notice(RECIPES["int8"].to_json(), vnni) is None
    assert recipe_notice(RECIPES["int8-b128"].to_json(), vnni) is None


def test_a_speed_figure_names_the_cpu_model_and_its_int8_flags():
    from modmt.runtime.cpu_features import cpu_description

    epyc = ("processor : 0\nvendor_id : AuthenticAMD\ncpu family : 25\nmodel : 1\n"
            "model name : AMD EPYC 7B13\nflags : fpu sse2 avx2 fma\nprocessor : 1\nmodel name : AMD EPYC 7B13\n")
    assert cpu_description(epyc) == "AMD EPYC 7B13 (family 25, model 1), int8 flags: avx2"
    xeon = "cpu family : 6\nmodel : 207\nmodel name : Intel(R) Xeon(R) Processor\nflags : avx_vnni avx2 avx512_vnni avx512bw\n"
    assert cpu_description(xeon).endswith("(family 6, model 207), int8 flags: avx2 avx512bw avx512_vnni avx_vnni")
    arm = "processor : 0\nFeatures : fp asimd asimddp\nCPU implementer : 0x41\n"
    assert cpu_description(arm).endswith("int8 flags: asimddp")
