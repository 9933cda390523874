"""MatMulNBits (8/4 bits, blocks 32/128, accuracy level 0/4) against fp32 on one 896 x 4864 matrix: error,
rows that differ at M = 1 and M = 2 from M = 40, milliseconds (docs/results.md, "Precisions per CPU")."""
import numpy as np, onnx, onnxruntime as ort, time
from onnx import helper, TensorProto, numpy_helper
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer, DefaultWeightOnlyQuantConfig
rng=np.random.default_rng(0)
K,N=896,4864
W=(rng.standard_normal((K,N))*0.05).astype(np.float32)
def base_model():
    g=helper.make_graph([helper.make_node("MatMul",["x","w"],["y"],name="mm")],"g",[helper.make_tensor_value_info("x",TensorProto.FLOAT,["m",K])],[helper.make_tensor_value_info("y",TensorProto.FLOAT,None)],[numpy_helper.from_array(W,"w")])
    m=helper.make_model(g,opset_imports=[helper.make_opsetid("",17)]); m.ir_version=9; return m
def nbits(bits,block,acc):
    m=base_model()
    cfg=DefaultWeightOnlyQuantConfig(block_size=block,is_symmetric=True,accuracy_level=acc,bits=bits)
    q=MatMulNBitsQuantizer(m,bits=bits,block_size=block,is_symmetric=True,accuracy_level=acc,algo_config=cfg); q.process(); return q.model.model
def sess(m):
    o=ort.SessionOptions(); o.intra_op_num_threads=2
    return ort.InferenceSession(m.SerializeToString(),o,providers=["CPUExecutionProvider"])
x=rng.standard_normal((40,K)).astype(np.float32)
ref=x@W
def bench(s,M,reps=30):
    f={"x":x[:M]}; s.run(None,f)
    t=time.perf_counter()
    for _ in range(reps): s.run(None,f)
    return (time.perf_counter()-t)/reps*1e3
variants={"fp32":base_model()}
for bits,block,acc in ((8,32,4),(8,32,0),(8,128,4),(8,128,0),(4,32,4),(4,32,0)):
    variants[f"nbits{bits}-b{block}-acc{acc}"]=nbits(bits,block,acc)
for name,m in variants.items():
    s=sess(m); full=s.run(None,{"x":x})[0]
    alone=sum(int((s.run(None,{"x":x[i:i+1]})[0]!=full[i:i+1]).sum()) for i in range(8))
    two=sum(int((s.run(None,{"x":x[i:i+2]})[0]!=full[i:i+2]).sum()) for i in range(0,8,2))
    err=np.abs(full-ref).max()/np.abs(ref).max()
    print(f"{name:22s} err {err:.4f} diff@M=1 {alone:6d} diff@M=2 {two:6d}  ms M=1 {bench(s,1):.3f} M=8 {bench(s,8):.3f} M=40 {bench(s,40):.3f}")
