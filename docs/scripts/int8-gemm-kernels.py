"""int8 x int8 formulations of one 896 x 4864 matrix on this CPU: error against fp32, rows that change when
decoded alone, milliseconds at M = 1, 8, 40 (docs/results.md, "Precisions per CPU"). Timings of one op in
cache: compare within a run."""
import numpy as np, onnx, onnxruntime as ort, time
from onnx import helper, TensorProto, numpy_helper as nh
rng=np.random.default_rng(0)
K,N=896,4864
W=(rng.standard_normal((K,N))*0.05).astype(np.float32)
W[:, :50] *= 4  # a few large columns
x=rng.standard_normal((40,K)).astype(np.float32); x[:,::97]*=6
ref=x@W
col=np.abs(W).max(0)/127; Wq=np.clip(np.rint(W/col),-127,127).astype(np.int8)
def model(nodes, inits):
    g=helper.make_graph(nodes,"g",[helper.make_tensor_value_info("x",TensorProto.FLOAT,["m",K])],[helper.make_tensor_value_info("y",TensorProto.FLOAT,None)],inits)
    m=helper.make_model(g,opset_imports=[helper.make_opsetid("",17),helper.make_opsetid("com.microsoft",1)]); m.ir_version=9; return m
def dqmm_s8(bits=8):
    s=np.abs(W).max(0)/(2**(bits-1)-1); q=np.clip(np.rint(W/s),-(2**(bits-1)-1),2**(bits-1)-1).astype(np.int8)
    return model([helper.make_node("DynamicQuantizeMatMul",["x","w","s"],["y"],domain="com.microsoft")],[nh.from_array(q,"w"),nh.from_array(s.astype(np.float32),"s")])
def dqmm_u8():
    return model([helper.make_node("DynamicQuantizeMatMul",["x","w","s","zp"],["y"],domain="com.microsoft")],[nh.from_array((Wq.astype(np.int16)+128).astype(np.uint8),"w"),nh.from_array(col.astype(np.float32),"s"),nh.from_array(np.full(N,128,np.uint8),"zp")])
def perrow(u8w=True):
    # per-row symmetric: q = round(x*127/max|x_row|)+128 (u8), MatMulInteger(q, w, 128, zp) * rowscale * colscale
    nodes=[helper.make_node("Abs",["x"],["ax"]),helper.make_node("ReduceMax",["ax"],["mx"],keepdims=1,axes=[-1]),
      helper.make_node("Max",["mx","tiny"],["mx2"]),
      helper.make_node("Div",["c127","mx2"],["inv"]),helper.make_node("Mul",["x","inv"],["xs"]),helper.make_node("Add",["xs","c128"],["xs2"]),
      helper.make_node("Round",["xs2"],["xr"]),helper.make_node("Cast",["xr"],["xq"],to=TensorProto.UINT8),
      helper.make_node("MatMulInteger",["xq","w","azp","zp"],["yi"]),helper.make_node("Cast",["yi"],["yf"],to=TensorProto.FLOAT),
      helper.make_node("Div",["mx2","c127"],["rs"]),helper.make_node("Mul",["yf","rs"],["y1"]),helper.make_node("Mul",["y1","s"],["y"])]
    inits=[nh.from_array(np.array([-1],np.int64),"axes"),nh.from_array(np.array(1e-12,np.float32),"tiny"),nh.from_array(np.array(127,np.float32),"c127"),nh.from_array(np.array(128,np.float32),"c128"),nh.from_array(np.array(128,np.uint8),"azp"),nh.from_array(col.astype(np.float32),"s")]
    if u8w: inits+=[nh.from_array((Wq.astype(np.int16)+128).astype(np.uint8),"w"),nh.from_array(np.full(N,128,np.uint8),"zp")]
    else: inits+=[nh.from_array(Wq,"w"),nh.from_array(np.zeros(N,np.int8),"zp")]
    return model(nodes,inits)
fp=model([helper.make_node("MatMul",["x","w"],["y"])],[nh.from_array(W,"w")])
def sess(m):
    o=ort.SessionOptions(); o.intra_op_num_threads=2
    return ort.InferenceSession(m.SerializeToString(),o,providers=["CPUExecutionProvider"])
def bench(s,M,reps=40):
    f={"x":x[:M]}; s.run(None,f); t=time.perf_counter()
    for _ in range(reps): s.run(None,f)
    return (time.perf_counter()-t)/reps*1e3
for name,m in [("fp32",fp),("dqmm s8 (u8s8)",dqmm_s8()),("dqmm s7 reduce_range",dqmm_s8(7)),("dqmm u8 zp128 (u8u8)",dqmm_u8()),("per-row u8u8",perrow(True)),("per-row u8s8",perrow(False))]:
    s=sess(m); full=s.run(None,{"x":x})[0]
    err=np.abs(full-ref).max()/np.abs(ref).max(); rms=np.sqrt(((full-ref)**2).mean())/np.sqrt((ref**2).mean())
    alone=sum(int((s.run(None,{"x":x[i:i+1]})[0]!=full[i:i+1]).sum()) for i in range(8))
    print(f"{name:24s} maxerr {err:.4f} rms {rms:.4f} rows-differ-alone {alone:6d} ms M=1 {bench(s,1):.3f} M=8 {bench(s,8):.3f} M=40 {bench(s,40):.3f}")
print("---- 7-bit per-row activations")
def perrow7(fused):
    nodes=[helper.make_node("Abs",["x"],["ax"]),helper.make_node("ReduceMax",["ax"],["mx"],keepdims=1,axes=[-1]),
      helper.make_node("Max",["mx","tiny"],["mx2"]),
      helper.make_node("Div",["c63","mx2"],["inv"]),helper.make_node("Mul",["x","inv"],["xs"]),helper.make_node("Add",["xs","c64"],["xs2"]),
      helper.make_node("Round",["xs2"],["xr"]),helper.make_node("Cast",["xr"],["xq"],to=TensorProto.UINT8),
      helper.make_node("Div",["mx2","c63"],["rs"])]
    if fused:
        nodes+=[helper.make_node("MatMulIntegerToFloat",["xq","w","one","s","azp"],["y1"],domain="com.microsoft"),helper.make_node("Mul",["y1","rs"],["y"])]
    else:
        nodes+=[helper.make_node("MatMulInteger",["xq","w","azp"],["yi"]),helper.make_node("Cast",["yi"],["yf"],to=TensorProto.FLOAT),helper.make_node("Mul",["yf","rs"],["y1"]),helper.make_node("Mul",["y1","s"],["y"])]
    inits=[nh.from_array(np.array(1e-12,np.float32),"tiny"),nh.from_array(np.array(63,np.float32),"c63"),nh.from_array(np.array(64,np.float32),"c64"),nh.from_array(np.array(64,np.uint8),"azp"),nh.from_array(col.astype(np.float32),"s"),nh.from_array(np.array(1.0,np.float32),"one"),nh.from_array(Wq,"w")]
    return model(nodes,inits)
for name,m in [("per-row7 u8s8 MatMulInteger",perrow7(False)),("per-row7 u8s8 MMIntToFloat",perrow7(True))]:
    s=sess(m); full=s.run(None,{"x":x})[0]
    err=np.abs(full-ref).max()/np.abs(ref).max(); rms=np.sqrt(((full-ref)**2).mean())/np.sqrt((ref**2).mean())
    alone=sum(int((s.run(None,{"x":x[i:i+1]})[0]!=full[i:i+1]).sum()) for i in range(8))
    # emulate exactly in numpy
    mx=np.maximum(np.abs(x).max(1,keepdims=True),1e-12); q=np.rint(x*(63/mx)+64)-64
    emu=(q@Wq.astype(np.float64))*(mx/63)*col
    print(f"{name:28s} maxerr {err:.4f} rms {rms:.4f} vs-emulation {np.abs(full-emu).max()/np.abs(ref).max():.2e} rows-differ-alone {alone:6d} ms M=1 {bench(s,1):.3f} M=8 {bench(s,8):.3f} M=40 {bench(s,40):.3f}")
