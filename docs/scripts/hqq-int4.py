"""HQQ against round-to-nearest for int4 MatMulNBits, on real matrices of the base model: output error
and kernel speed. ONNX Runtime's HQQ quantizer (it needs torch) fits each block's scale and a float
zero point; RTN with an integer zero point is what `--quantize int4` uses.

    .venv/bin/python docs/scripts/hqq-int4.py
"""
import os
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.matmul_nbits_quantizer import (DefaultWeightOnlyQuantConfig, HQQWeightOnlyQuantConfig,
                                                             MatMulNBitsQuantizer)
from safetensors import safe_open

WEIGHTS = os.path.expanduser("~/.cache/modmt/models/qwen2.5-coder-0.5b-instruct/hf/model.safetensors")
MATRICES = ["model.layers.0.self_attn.q_proj.weight", "model.layers.5.mlp.gate_proj.weight",
            "model.layers.12.mlp.down_proj.weight", "model.layers.20.mlp.up_proj.weight"]


def one_matmul(w: np.ndarray):
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", w.shape[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", w.shape[1]])],
                              [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def ms_per_call(s, x, calls=200):
    s.run(None, {"x": x})
    started = time.perf_counter()
    for _ in range(calls):
        s.run(None, {"x": x})
    return (time.perf_counter() - started) / calls * 1e3


with safe_open(WEIGHTS, "np") as f:
    for name in MATRICES:
        w = f.get_tensor(name).astype(np.float32).T.copy()  # [in, out], as the ONNX MatMul holds it
        x = np.random.default_rng(0).standard_normal((64, w.shape[0])).astype(np.float32)
        reference = session(one_matmul(w)).run(None, {"x": x})[0]
        row = []
        for label, config in (("RTN", DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=False,
                                                                   accuracy_level=4, bits=4)),
                              ("HQQ", HQQWeightOnlyQuantConfig(block_size=32, bits=4))):
            quantizer = MatMulNBitsQuantizer(one_matmul(w), block_size=32, is_symmetric=False, algo_config=config)
            quantizer.process()
            s = session(quantizer.model.model)
            y = s.run(None, {"x": x})[0]
            error = float(np.sqrt(((y - reference) ** 2).mean() / (reference ** 2).mean()))
            row.append(f"{label}: relative output error {error:.4f}, {ms_per_call(s, x[:1]):.3f} ms at 1 row, "
                       f"{ms_per_call(s, x[:40], 50):.3f} ms at 40 rows")
        print(name, *row, sep="\n  ", flush=True)
