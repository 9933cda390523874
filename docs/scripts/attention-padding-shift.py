"""Softmax and P@V on ONNX Runtime's CPU kernels: are a row's values the same bits when its keys are shifted
right by j*Q masked (zero) positions? Prints the differing elements per length L and multiple Q
(docs/results.md, "Batch invariance")."""
import numpy as np, onnx, onnxruntime as ort
from onnx import helper, TensorProto
def sess(nodes, ins, outs):
    g=helper.make_graph(nodes,"g",[helper.make_tensor_value_info(n,TensorProto.FLOAT,None) for n in ins],[helper.make_tensor_value_info(n,TensorProto.FLOAT,None) for n in outs])
    m=helper.make_model(g,opset_imports=[helper.make_opsetid("",17)]); m.ir_version=9
    o=ort.SessionOptions(); o.intra_op_num_threads=2
    return ort.InferenceSession(m.SerializeToString(),o,providers=["CPUExecutionProvider"])
sm=sess([helper.make_node("Softmax",["x"],["y"],axis=-1)],["x"],["y"])
mm=sess([helper.make_node("MatMul",["p","v"],["y"])],["p","v"],["y"])
rng=np.random.default_rng(0)
for L in (5,13,40,100,200,250,300,700):
  for Q in (8,16,32,64):
    bad_sm=bad_mm=0
    a=(-L)%Q
    x=rng.standard_normal((3,7,L)).astype(np.float32); v=rng.standard_normal((3,L,64)).astype(np.float32)
    def lay(off):
        xx=np.full((3,7,off+L),-3.4e38,np.float32); xx[...,off:]=x
        vv=np.zeros((3,off+L,64),np.float32); vv[:,off:]=v
        p=sm.run(None,{"x":xx})[0]
        return p[...,off:], mm.run(None,{"p":p,"v":vv})[0]
    p0,y0=lay(a)
    for j in (1,2,5):
        p1,y1=lay(a+j*Q)
        bad_sm+=int((p0!=p1).sum()); bad_mm+=int((y0!=y1).sum())
    print(L,Q,"softmax diffs",bad_sm,"pv diffs",bad_mm)
