"""Why a routed base's answers depended on the batch beyond M = 1: ORT's CPU MatMul with its right side a graph
input, two threads, computes the first rows differently once M reaches N for some N (32, 64: the bank widths of
the test pool and the real en/fr pool); one thread, or the right side an initializer, never.

x [M, 896] @ B [896, N], the first 5 rows compared with M = 5, M from 5 to 96.
Run: python docs/scripts/matmul-input-threads.py   (docs/results.md, "Batch invariance")
"""
import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)
K = 896
A = rng.standard_normal((96, K)).astype(np.float32)
for threads in (1, 2):
    for n in (8, 16, 32, 64, 128, 256):
        B = (rng.standard_normal((K, n)) * 0.05).astype(np.float32)
        for kind in ("input", "initializer"):
            inputs = [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", K])]
            inits = []
            if kind == "input":
                inputs.append(helper.make_tensor_value_info("B", TensorProto.FLOAT, [K, n]))
            else:
                inits.append(numpy_helper.from_array(B, "B"))
            graph = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["Y"])], "g", inputs,
                                      [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])], inits)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                                           .SerializeToString(), options, providers=["CPUExecutionProvider"])
            feed = (lambda m: {"A": A[:m], "B": B}) if kind == "input" else (lambda m: {"A": A[:m]})
            reference = session.run(None, feed(5))[0]
            differ = [m for m in range(5, 97) if not np.array_equal(session.run(None, feed(m))[0][:5], reference)]
            print(f"threads {threads}, N {n:3d}, B an {kind:11s}: rows differ at {len(differ):2d} of 92 M values"
                  + (f" (from M = {differ[0]})" if differ else ""))
