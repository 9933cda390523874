"""Quantization recipes for CPU exports: weight-only MatMulNBits, or int8 x int8 GEMMs (w8a8).

Weight-only recipes keep activations in float: ONNX Runtime's dynamic int8 (the earliest recipe)
also quantized every activation to 8 bits per tensor, unsmoothed, and the outliers of an LLM's
activations cost 5 chrF++ points on Qwen2.5-0.5B. They quantize weights in blocks along the input
axis, each block with its own scale (and zero point where asymmetric). The choices follow
`modmt-bench quant-error` (docs/results.md), measured on the base model, a GGUF stored mostly as
Q5_0 with Q8_0 for the output projection and the value projections, Q6_K/Q4_K for the down projections:

  int8  every decoder matrix and the output projection at 8 bits, symmetric: the Q8_0 matrices
        come back exactly (their grid is symmetric 8-bit blocks of 32), the others within 0.6 %
        RMS; the embedding table in int8 rows with a float scale each, so no 545 MB float table
        stays beside the int8 matrices.
  int8-b128  the same in blocks of 128: faster and smaller, within noise of int8's quality.
  int4  decoder matrices at 4 bits with a zero point (15-33 % less error than symmetric: the
        Q5_0 grid is not symmetric); the output projection, the most sensitive matrix, at 8 bits
        symmetric (exact); the embedding table at 4 bits (GatherBlockQuantized). The earlier
        int4 put the output projection at 4 bits, symmetric, and degenerated into repetitions.
  w8a8  every matrix as DynamicQuantizeMatMul: int8 weights per output column, activations to
        uint8 per tensor at run time, an int8 x int8 GEMM that at the 40 rows of a beam step runs
        1.7-2.6x faster than MatMulNBits' 8-bit kernel. The matrices' inputs are smoothed first
        on the direction's training text (export/smoothquant.py). The embedding table as in int8.

`accuracy_level` 4 lets the MatMulNBits kernels compute with int8 activations inside a block
(AVX512-VNNI); 0 keeps float compute. The recipe goes into modmt.json.
"""
import gc
from dataclasses import asdict, dataclass

import numpy as np
import onnx
from onnx import helper

from modmt.runtime.errors import ModmtError


# Every weight matrix of a decoder layer, and the output projection (matrix_kind's names).
MATRIX_KINDS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")
CALIBRATION_NEEDED = ("this --quantize recipe calibrates on training text: pass --calibration CORPUS (a corpus "
                      "directory such as the one `modmt data ddtp` builds)")


@dataclass(frozen=True)
class QuantRecipe:
    bits: int                   # decoder matrices
    head_bits: int | None       # output projection (None: float)
    embedding_bits: int | None  # embedding table (None: float)
    symmetric: bool             # decoder matrices: no zero point
    head_symmetric: bool = True
    block_size: int = 32
    accuracy_level: int = 4
    # Matrix kinds (q_proj, ..., down_proj, lm_head) computed as int8 x int8 instead: weights per
    # output channel, activations quantized per tensor at run time (DynamicQuantizeMatMul).
    dynamic: tuple[str, ...] = ()
    # Inputs smoothed before quantization (export/smoothquant.py; needs calibration text): "down_proj"
    # (the MLP's act(gate) * up) and "norm" (RMSNorm outputs: q/k/v, gate/up, output projection).
    smooth: tuple[str, ...] = ()
    smooth_alpha: float = 0.5

    def to_json(self) -> dict:
        method = "DynamicQuantizeMatMul (int8 x int8)" if set(MATRIX_KINDS) <= set(self.dynamic) else \
            "MatMulNBits weight-only (RTN)" + (" + DynamicQuantizeMatMul" if self.dynamic else "")
        if self.smooth:
            method += f", SmoothQuant ({', '.join(self.smooth)})"
        return {"method": method, **asdict(self), "dynamic": list(self.dynamic), "smooth": list(self.smooth)}


RECIPES = {
    "int8": QuantRecipe(bits=8, head_bits=8, embedding_bits=8, symmetric=True),
    # Blocks of 128: a sixth fewer bytes of scales and 18 % more sentences/s at batch 8, beam 5 on the
    # CPU; over four directions -0.12 [-0.88, +0.70] chrF++ to fp32 against -0.02 for blocks of 32
    # (docs/results.md): the speed-first int8.
    "int8-b128": QuantRecipe(bits=8, head_bits=8, embedding_bits=8, symmetric=True, block_size=128),
    "int4": QuantRecipe(bits=4, head_bits=8, embedding_bits=4, symmetric=False),
    # int8 weights and int8 activations (W8A8): every decoder matrix and the output projection as
    # int8 x int8 GEMMs, their inputs smoothed on training text first (SmoothQuant, alpha 0.8): the
    # RMSNorm outputs into q/k/v, gate/up and the output projection, and the MLP product into the
    # down projection. Over four directions x 333 segments: +0.17 [-0.25, +0.60] chrF++ to fp32
    # (down projections only: -0.14; none: -1.40). 1.3-2.0x CTranslate2 int8 at batch 8, beam 5.
    "w8a8": QuantRecipe(bits=8, head_bits=8, embedding_bits=8, symmetric=True, smooth=("down_proj", "norm"),
                        smooth_alpha=0.8, dynamic=MATRIX_KINDS),
}


def output_projection(model: onnx.ModelProto) -> str:
    """The name of the MatMul computing the logits (through any soft-capping after it: Gemma 2)."""
    from modmt.export.onnx_graph import output_projection as projection_node

    return projection_node(model.graph).name


def _quantize(weights, names: list[str], bits: int, recipe: QuantRecipe, op: str, symmetric: bool) -> None:
    """ONNX Runtime's MatMulNBits quantizer on the named nodes, one node at a time.

    Each node goes through the quantizer as a one-node model holding only its own weight, and
    its result replaces it in the graph: the values are the whole-graph call's (the quantizer
    treats each weight on its own), and only one weight is in memory at a time.
    """
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    graph = weights.graph
    config = DefaultWeightOnlyQuantConfig(block_size=recipe.block_size, is_symmetric=symmetric,
                                          accuracy_level=recipe.accuracy_level, bits=bits, op_types_to_quantize=(op,),
                                          quant_axes=(("MatMul", 0), ("Gather", 1)))
    for node in [n for n in graph.node if n.name in set(names) and n.op_type == op]:
        weight = node.input[1] if op == "MatMul" else node.input[0]
        if weight not in weights:
            continue
        flowing = [helper.make_tensor_value_info(i, onnx.TensorProto.INT64 if op == "Gather" else onnx.TensorProto.FLOAT,
                                                 None) for i in node.input if i != weight]
        one = helper.make_model(
            helper.make_graph([node], "one_node", flowing, [helper.make_empty_tensor_value_info(o) for o in node.output],
                              [weights.tensor(weight)]),
            opset_imports=list(weights.model.opset_import), ir_version=weights.model.ir_version)
        quantizer = MatMulNBitsQuantizer(one, bits=bits, block_size=recipe.block_size, is_symmetric=symmetric,
                                         accuracy_level=recipe.accuracy_level, algo_config=config)
        quantizer.process()
        result = quantizer.model.model
        del one, quantizer
        if [n.op_type for n in result.graph.node] == [op]:
            continue  # the quantizer left it as it was (a shape it does not take)
        for init in result.graph.initializer:
            weights.put_tensor(init)
        at = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, new in enumerate(result.graph.node):
            graph.node.insert(at + offset, new)
        for opset in result.opset_import:
            if not any(o.domain == opset.domain for o in weights.model.opset_import):
                weights.model.opset_import.append(opset)
        if not weights.read_by_any_node(weight):
            weights.remove(weight)
        del result
        gc.collect()  # the quantizer's model wrappers hold cycles: without this, several tensors' copies pile up


def quantize(weights, recipe: QuantRecipe, keep_float: list[str] = (), activation_max: dict | None = None) -> str:
    """The recipe's matrices (and embedding) in MatMulNBits / GatherBlockQuantized / DynamicQuantizeMatMul
    form, in place on a GraphWeights (export/onnx_weights.py).

    keep_float: MatMul nodes left in float (a quantized shared base's low-rank side paths).
    activation_max: {tensor name: max |x| per channel} of the inputs a smoothing recipe smooths
    (export/smoothquant.py). Returns what the smoothing did, for the manifest.
    """
    note = "no smoothing in this recipe"
    try:
        import onnxruntime.quantization.matmul_nbits_quantizer  # noqa: F401
    except ImportError as e:
        raise ModmtError(f"quantization needs onnxruntime's MatMulNBits quantizer ({e}); pip install onnx-ir") from None
    head = output_projection(weights.model)
    untie_output_projection(weights, head)
    if recipe.smooth:
        if activation_max is None:
            raise ModmtError(CALIBRATION_NEEDED)
        from modmt.export.smoothquant import smooth, smoothing_groups

        unsmoothed = []
        groups = smoothing_groups(weights.model, recipe.smooth, unsmoothed=unsmoothed)
        smooth(weights, groups, activation_max, recipe.smooth_alpha)
        note = f"smoothed {len(groups)} inputs"
        if unsmoothed:
            note += (f"; {len(unsmoothed)} down projections not smoothed (they do not read act(gate) * up_proj, "
                     "as a fused gate_up_proj does)")
    matrices = [n.name for n in weights.graph.node if n.op_type == "MatMul" and n.input[1] in weights
                and n.name not in keep_float]
    if recipe.dynamic:
        dynamic = [name for name in matrices if matrix_kind(name) in recipe.dynamic]
        dynamic_int8(weights, dynamic)
        matrices = [name for name in matrices if name not in dynamic]
    embedding = [n.name for n in weights.graph.node
                 if n.op_type == "Gather" and n.input[0].endswith("embed_tokens.weight")]
    _quantize(weights, [m for m in matrices if m != head], recipe.bits, recipe, "MatMul", recipe.symmetric)
    if recipe.embedding_bits == recipe.bits == 4:
        _quantize(weights, embedding, 4, recipe, "Gather", recipe.symmetric)
    if recipe.head_bits is not None and head in matrices:
        _quantize(weights, [head], recipe.head_bits, recipe, "MatMul", recipe.head_symmetric)
    if recipe.embedding_bits == 8:  # ONNX Runtime's Gather quantizer knows 4 bits only
        embedding_int8(weights, embedding)
    elif recipe.embedding_bits is not None and recipe.embedding_bits != recipe.bits:
        _quantize(weights, embedding, recipe.embedding_bits, recipe, "Gather", recipe.symmetric)
    return note


def matrix_kind(node_name: str) -> str | None:
    """'q_proj', ..., 'down_proj' for Optimum's /model/layers.N/<block>/<kind>/MatMul, 'lm_head' for the head."""
    parts = node_name.strip("/").split("/")
    if parts[0] == "lm_head":
        return "lm_head"
    return parts[-2] if len(parts) == 5 and parts[-2].endswith("_proj") else None


BLOCK_BYTES = 16 << 20  # float values quantized at a time: bounds the temporaries, whatever the matrix's size


def _block(length: int, other: int) -> int:
    """How many columns (rows) of a matrix with `other` rows (columns) make one BLOCK_BYTES block."""
    return max(1, min(length, BLOCK_BYTES // (4 * max(other, 1))))


def dynamic_int8(weights, names: list[str]) -> None:
    """The named MatMuls as DynamicQuantizeMatMul: int8 weights with a scale per output column,
    activations quantized to uint8 per tensor at run time, an int8 x int8 GEMM (VNNI on x86).

    At the 40 rows of a batch-8 beam-5 step, ONNX Runtime's int8 GEMM runs a 896 x 4864 matrix in
    0.45 ms where MatMulNBits' 8-bit kernel takes 1.18 ms (docs/results.md).
    """
    graph = weights.graph
    for node in [n for n in graph.node if n.name in set(names)]:
        q_name, s_name = f"{node.input[1]}_int8", f"{node.input[1]}_column_scale"
        if q_name not in weights:  # a weight two MatMuls share is quantized once
            weight = weights.array(node.input[1])   # [K, N]
            quantized = np.empty(weight.shape, np.int8)
            scale = np.empty(weight.shape[1], np.float32)
            width = _block(weight.shape[1], weight.shape[0])
            for start in range(0, weight.shape[1], width):
                block = np.asarray(weight[:, start:start + width], dtype=np.float32)
                step = np.maximum(np.abs(block).max(axis=0), 1e-12) / 127.0
                quantized[:, start:start + width] = np.clip(np.rint(block / step), -127, 127)
                scale[start:start + width] = step
            del weight
            weights.put(q_name, quantized)
            weights.put(s_name, scale)
        index = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(index, helper.make_node("DynamicQuantizeMatMul", [node.input[0], q_name, s_name],
                                                  list(node.output), name=f"{node.name}_int8",
                                                  domain="com.microsoft"))
        if not weights.read_by_any_node(node.input[1]):
            weights.remove(node.input[1])
    if not any(o.domain == "com.microsoft" for o in weights.model.opset_import):
        weights.model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


def untie_output_projection(weights, head: str) -> None:
    """Give a tied output projection (Transpose of the embedding table) a weight of its own.

    The quantizer handles only constant weights; quantized, the projection and the table then take
    one int8 or int4 copy each instead of one shared float table.
    """
    graph = weights.graph
    node = next(n for n in graph.node if n.name == head)
    producer = next((n for n in graph.node if node.input[1] in n.output), None)
    if producer is None or producer.op_type != "Transpose" or producer.input[0] not in weights:
        return
    weights.put(f"{producer.input[0]}_output_projection", weights.array(producer.input[0]).T)
    node.input[1] = f"{producer.input[0]}_output_projection"
    if not any(producer.output[0] in n.input for n in graph.node):
        graph.node.remove(producer)


def embedding_int8(weights, names: list[str]) -> None:
    """Embedding rows in int8 with one float scale per row: Gather both, Cast, Mul.

    Only the looked-up rows are dequantized, so a step reads a few KB of the table instead of
    545 MB. Per-row symmetric int8 keeps an embedding row within 0.4 % of its largest value.
    """
    graph = weights.graph
    for node in [n for n in graph.node if n.name in set(names)]:
        table_name = node.input[0]
        table = weights.array(table_name)
        quantized = np.empty(table.shape, np.int8)
        scale = np.empty((table.shape[0], 1), np.float32)
        height = _block(table.shape[0], table.shape[1])
        for start in range(0, table.shape[0], height):
            rows = np.asarray(table[start:start + height], dtype=np.float32)
            step = np.maximum(np.abs(rows).max(axis=1, keepdims=True), 1e-12) / 127.0
            quantized[start:start + height] = np.clip(np.rint(rows / step), -127, 127)
            scale[start:start + height] = step
        del table
        q_name, s_name = f"{table_name}_int8", f"{table_name}_row_scale"
        weights.put(q_name, quantized)
        weights.put(s_name, scale)
        out = node.output[0]
        steps = [helper.make_node("Gather", [q_name, node.input[1]], [f"{out}_q"], name=f"{node.name}_int8"),
                 helper.make_node("Gather", [s_name, node.input[1]], [f"{out}_scale"], name=f"{node.name}_scale"),
                 helper.make_node("Cast", [f"{out}_q"], [f"{out}_float"], to=onnx.TensorProto.FLOAT,
                                  name=f"{node.name}_cast"),
                 helper.make_node("Mul", [f"{out}_float", f"{out}_scale"], [out], name=f"{node.name}_dequantize")]
        index = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, step in enumerate(steps):
            graph.node.insert(index + offset, step)
        if not weights.read_by_any_node(table_name):  # not shared with a tied output projection
            weights.remove(table_name)
