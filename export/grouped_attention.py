"""Grouped-query attention without repeating the KV heads: a rewrite of Optimum's attention graph.

Qwen2.5-0.5B has 14 query heads over 2 key/value heads. Optimum's graph (transformers' repeat_kv)
expands the whole cache to 14 heads at every step, per layer, for keys and for values: at a
batch-8 beam-5 step that copy was 8 % of ONNX Runtime's kernel time on the CPU (docs/results.md),
and it grows with the cache. Here the 7 query heads that share a KV head are folded into the
sequence axis instead: q [B, 14, S, D] -> [B, 2, 7S, D] (a reshape: heads are grouped in order),
one MatMul against the cache's own [B, 2, D, T], and back to [B, 14, S, T] for the mask and the
softmax; the same for the values. Every dot product is the one the original computes.
A graph without this pattern (no GQA, another exporter) is left unchanged, and the manifest says so.
"""
import onnx
from onnx import TensorProto, helper

from modmt.runtime.errors import ModmtError


def _only(nodes: list, op_type: str):
    found = [n for n in nodes if n.op_type == op_type]
    return found[0] if len(found) == 1 else None


def grouped_attention(model: onnx.ModelProto, heads: int, kv_heads: int) -> str:
    """Rewrite in place; returns what was done, for the manifest (a family whose attention has another
    shape is left as it was, and says so)."""
    graph = model.graph
    if heads == kv_heads:
        return "skipped: no grouped KV heads (as many KV heads as query heads)"
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    constants = {"modmt_gqa_grouped": [0, kv_heads, -1, 0], "modmt_gqa_heads": [0, heads, -1, 0]}
    graph.initializer.extend(helper.make_tensor(name, TensorProto.INT64, [4], shape)
                             for name, shape in constants.items())
    rewritten = 0
    for output in [o.name for o in graph.output if o.name.startswith("present.") and o.name.endswith(".key")]:
        key, value = output, output[:-len("key")] + "value"
        # keys: present -> Unsqueeze -> Expand -> Reshape (repeated) -> Transpose -> Mul(scale) -> MatMul(q, .)
        chain, name = [], key
        for op in ("Unsqueeze", "Expand", "Reshape", "Transpose", "Mul", "MatMul"):
            node = _only(readers.get(name, []), op)
            if node is None:
                break
            chain.append(node)
            name = node.output[0]
        # values: present -> Unsqueeze -> Expand -> Reshape (repeated) -> MatMul(probs, .)
        v_chain, name = [], value
        for op in ("Unsqueeze", "Expand", "Reshape", "MatMul"):
            node = _only(readers.get(name, []), op)
            if node is None:
                break
            v_chain.append(node)
            name = node.output[0]
        if len(chain) != 6 or len(v_chain) != 4 or chain[5].input[1] != chain[4].output[0] \
                or v_chain[3].input[1] != v_chain[2].output[0]:
            continue
        transpose, scale_k, scores, mix = chain[3], chain[4], chain[5], v_chain[3]
        repeated_key = chain[2].output[0]
        scale = scale_k.input[1] if scale_k.input[0] == transpose.output[0] else scale_k.input[0]
        p = f"{key}_modmt_gqa"
        keys_side = [
            helper.make_node("Transpose", [key], [f"{p}_kt"], perm=[0, 1, 3, 2], name=f"{p}/Transpose"),
            helper.make_node("Mul", [f"{p}_kt", scale], [f"{p}_kt_scaled"], name=f"{p}/Mul"),
            helper.make_node("Reshape", [scores.input[0], "modmt_gqa_grouped"], [f"{p}_q"], name=f"{p}/ReshapeQ"),
            helper.make_node("MatMul", [f"{p}_q", f"{p}_kt_scaled"], [f"{p}_scores"], name=f"{p}/MatMulQK"),
            helper.make_node("Reshape", [f"{p}_scores", "modmt_gqa_heads"], [scores.output[0]], name=f"{p}/ReshapeS"),
        ]
        values_side = [
            helper.make_node("Reshape", [mix.input[0], "modmt_gqa_grouped"], [f"{p}_probs"], name=f"{p}/ReshapeP"),
            helper.make_node("MatMul", [f"{p}_probs", value], [f"{p}_mixed"], name=f"{p}/MatMulPV"),
            helper.make_node("Reshape", [f"{p}_mixed", "modmt_gqa_heads"], [mix.output[0]], name=f"{p}/ReshapeO"),
        ]
        # Whatever else read the repeated keys (the mask's length: a Shape, whose axis 2 is the
        # cache length in both) now reads the cache itself.
        for reader in readers.get(repeated_key, []):
            if reader is not transpose:
                if reader.op_type != "Shape":
                    raise ModmtError(f"unexpected ONNX graph: {reader.name} reads the repeated keys; "
                                     "report it with the model's name")
                reader.input[0] = key
        for replaced, nodes in ((scores, keys_side), (mix, values_side)):  # in place: the order stays topological
            index = list(graph.node).index(replaced)
            graph.node.remove(replaced)
            for offset, node in enumerate(nodes):
                graph.node.insert(index + offset, node)
        rewritten += 1
    if rewritten:
        remove_dead_nodes(model)
        return f"applied to {rewritten} layers ({heads} query heads over {kv_heads} KV heads)"
    return "skipped: the exporter's attention is not the repeat_kv pattern this step rewrites"


def remove_dead_nodes(model: onnx.ModelProto) -> None:
    """Drop nodes none of whose outputs lead to a graph output (the old expansion chains)."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    kept = {id(n) for n in keep}
    for node in [n for n in graph.node if id(n) not in kept]:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used and i.name.startswith("modmt_gqa")]:
        graph.initializer.remove(init)
