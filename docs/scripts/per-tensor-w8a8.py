"""Side by side on one CPU: a w8a8 export rewritten to the per-tensor recipe it replaced (same int8 weights).

Each per-row quantizer + MatMulIntegerToFloat (the row's step its a_scale) becomes DynamicQuantizeMatMul(x, the same
int8 weights, the same column scales): 8-bit activations per tensor, whose u8 x s8 products saturate
on x86 without VNNI. Usage: per-tensor-w8a8.py W8A8_EXPORT OUT
"""
import json
import shutil
import sys
from pathlib import Path

import onnx
from onnx import helper

from modmt.runtime.manifest import MANIFEST, write_manifest

source, out = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree(source, out)
model = onnx.load(str(out / "model.onnx"), load_external_data=False)
graph = model.graph
for node in [n for n in graph.node if n.op_type == "MatMulIntegerToFloat"]:
    values, weight, _, scale, _ = node.input
    x = values.removesuffix("_rowq_u8")
    at = list(graph.node).index(node)
    graph.node.remove(node)
    graph.node.insert(at, helper.make_node("DynamicQuantizeMatMul", [x, weight, scale], list(node.output),
                                           name=node.name, domain="com.microsoft"))
while True:  # the quantizers' nodes, from their last one back
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    dead = [n for n in graph.node if "/modmt_rowq_" in n.name and not set(n.output) & used]
    if not dead:
        break
    for node in dead:
        graph.node.remove(node)
onnx.save_model(model, str(out / "model.onnx"))
manifest = json.loads((out / MANIFEST).read_text())
manifest["quantization_recipe"]["method"] = "DynamicQuantizeMatMul (int8 x int8), per-tensor 8-bit activations"
for key in ("activations", "int8_products"):
    manifest["quantization_recipe"].pop(key, None)
manifest.pop("files")
manifest.pop("format")
write_manifest(out, manifest)
print(f"{out}: {sum(n.op_type == 'DynamicQuantizeMatMul' for n in graph.node)} DynamicQuantizeMatMul")
