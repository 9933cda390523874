"""Why routed outputs can depend on batch composition: ORT CPU MatMul rows with B as a graph input vs a constant.

x [M, 1, 896] @ A [896, 80] @ B [80, 896], rows computed at M=16, M=4 and M=1: with A and B as initializers
every row is bitwise the same at any M; fed as inputs, M=1 differs from M>1 by ~1e-7 (another kernel path).
Run: python docs/scripts/matmul-input-vs-constant.py
"""
import numpy as np, onnx, onnxruntime as ort
from onnx import helper, TensorProto, numpy_helper
rng = np.random.default_rng(0)
K, R, N = 896, 80, 896
A = rng.standard_normal((K, R)).astype(np.float32) * 0.02
B = rng.standard_normal((R, N)).astype(np.float32) * 0.02
x = rng.standard_normal((16, 1, K)).astype(np.float32)
def build(const):
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", 1, K])]
    inits = []
    if const:
        inits = [numpy_helper.from_array(A, "A"), numpy_helper.from_array(B, "B")]
    else:
        inputs += [helper.make_tensor_value_info("A", TensorProto.FLOAT, [K, "r"]), helper.make_tensor_value_info("B", TensorProto.FLOAT, ["r", N])]
    g = helper.make_graph([helper.make_node("MatMul", ["x", "A"], ["u"]), helper.make_node("MatMul", ["u", "B"], ["y"])], "g", inputs,
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", 1, N])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]); m.ir_version = 9
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
for const in (True, False):
    s = build(const)
    feed = lambda xs: {"x": xs} if const else {"x": xs, "A": A, "B": B}
    full = s.run(None, feed(x))[0]
    single = np.concatenate([s.run(None, feed(x[i:i+1]))[0] for i in range(16)])
    four = np.concatenate([s.run(None, feed(x[i:i+4]))[0] for i in range(0, 16, 4)])
    print("constant" if const else "input", "rows equal M=16 vs M=1:", int((full == single).all(axis=(1,2)).sum()), "M=16 vs M=4:", int((full == four).all(axis=(1,2)).sum()), "max diff", float(np.abs(full-single).max()))
