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
from dataclasses import asdict, dataclass

import onnx

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


def _quantize(model: onnx.ModelProto, bits: int, recipe: QuantRecipe, ops: tuple[str, ...], symmetric: bool,
              include: list[str] | None = None, exclude: list[str] | None = None) -> onnx.ModelProto:
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    # nodes_to_include adds to op_types_to_quantize: a pass over one node names no op type.
    config = DefaultWeightOnlyQuantConfig(block_size=recipe.block_size, is_symmetric=symmetric,
                                          accuracy_level=recipe.accuracy_level, bits=bits, op_types_to_quantize=ops,
                                          quant_axes=(("MatMul", 0), ("Gather", 1)))
    quantizer = MatMulNBitsQuantizer(model, bits=bits, block_size=recipe.block_size, is_symmetric=symmetric,
                                     accuracy_level=recipe.accuracy_level, nodes_to_include=include,
                                     nodes_to_exclude=exclude or [], algo_config=config)
    quantizer.process()
    return quantizer.model.model


def quantize(model: onnx.ModelProto, recipe: QuantRecipe, keep_float: list[str] = (),
             activation_max: dict | None = None) -> onnx.ModelProto:
    """The model with the recipe's matrices (and embedding) in MatMulNBits / GatherBlockQuantized form.

    keep_float: MatMul nodes left in float (a quantized shared base's low-rank side paths).
    activation_max: {tensor name: max |x| per channel} of the inputs a smoothing recipe smooths
    (export/smoothquant.py).
    """
    try:
        import onnxruntime.quantization.matmul_nbits_quantizer  # noqa: F401
    except ImportError as e:
        raise ModmtError(f"quantization needs onnxruntime's MatMulNBits quantizer ({e}); pip install onnx-ir") from None
    head = output_projection(model)
    untie_output_projection(model, head)
    if recipe.smooth:
        if activation_max is None:
            raise ModmtError(CALIBRATION_NEEDED)
        from modmt.export.smoothquant import smooth, smoothing_groups

        smooth(model, smoothing_groups(model, recipe.smooth), activation_max, recipe.smooth_alpha)
    if recipe.dynamic:
        dynamic = [n.name for n in model.graph.node if n.op_type == "MatMul" and n.name not in keep_float
                   and matrix_kind(n.name) in recipe.dynamic]
        model = dynamic_int8(model, dynamic)
        keep_float = [*keep_float, *dynamic]
    embedding = [n.name for n in model.graph.node
                 if n.op_type == "Gather" and n.input[0].endswith("embed_tokens.weight")]
    body_ops = ("MatMul", "Gather") if recipe.embedding_bits == recipe.bits == 4 else ("MatMul",)
    model = _quantize(model, recipe.bits, recipe, body_ops, recipe.symmetric, exclude=[head, *keep_float])
    # The decoder's MatMuls are quantized by now: only the head is left (unless it is int8 x int8).
    if recipe.head_bits is not None and "lm_head" not in recipe.dynamic:
        model = _quantize(model, recipe.head_bits, recipe, ("MatMul",), recipe.head_symmetric, include=[head],
                          exclude=list(keep_float))
    if recipe.embedding_bits == 8:  # ONNX Runtime's Gather quantizer knows 4 bits only
        model = embedding_int8(model, embedding)
    elif recipe.embedding_bits is not None and recipe.embedding_bits != recipe.bits:
        model = _quantize(model, recipe.embedding_bits, recipe, ("Gather",), recipe.symmetric, include=embedding)
    return model


def matrix_kind(node_name: str) -> str | None:
    """'q_proj', ..., 'down_proj' for Optimum's /model/layers.N/<block>/<kind>/MatMul, 'lm_head' for the head."""
    parts = node_name.strip("/").split("/")
    if parts[0] == "lm_head":
        return "lm_head"
    return parts[-2] if len(parts) == 5 and parts[-2].endswith("_proj") else None


def dynamic_int8(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """The named MatMuls as DynamicQuantizeMatMul: int8 weights with a scale per output column,
    activations quantized to uint8 per tensor at run time, an int8 x int8 GEMM (VNNI on x86).

    At the 40 rows of a batch-8 beam-5 step, ONNX Runtime's int8 GEMM runs a 896 x 4864 matrix in
    0.45 ms where MatMulNBits' 8-bit kernel takes 1.18 ms (docs/results.md).
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    for node in [n for n in graph.node if n.name in names]:
        q_name, s_name = f"{node.input[1]}_int8", f"{node.input[1]}_column_scale"
        if q_name not in initializers:  # a weight two MatMuls share is quantized once
            weight = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float32)   # [K, N]
            scale = np.maximum(np.abs(weight).max(axis=0), 1e-12) / 127.0
            quantized = np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)
            graph.initializer.extend([numpy_helper.from_array(quantized, q_name),
                                      numpy_helper.from_array(scale.astype(np.float32), s_name)])
            initializers[q_name] = graph.initializer[-2]
        index = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(index, helper.make_node("DynamicQuantizeMatMul", [node.input[0], q_name, s_name],
                                                  list(node.output), name=f"{node.name}_int8",
                                                  domain="com.microsoft"))
        if not any(node.input[1] in n.input for n in graph.node):
            graph.initializer.remove(initializers[node.input[1]])
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


def untie_output_projection(model: onnx.ModelProto, head: str) -> None:
    """Give a tied output projection (Transpose of the embedding table) a weight of its own.

    The quantizer handles only constant weights; quantized, the projection and the table then take
    one int8 or int4 copy each instead of one shared float table.
    """
    from onnx import numpy_helper

    graph = model.graph
    node = next(n for n in graph.node if n.name == head)
    producer = next((n for n in graph.node if node.input[1] in n.output), None)
    initializers = {init.name: init for init in graph.initializer}
    if producer is None or producer.op_type != "Transpose" or producer.input[0] not in initializers:
        return
    weight = numpy_helper.to_array(initializers[producer.input[0]]).T.copy()
    graph.initializer.append(numpy_helper.from_array(weight, f"{producer.input[0]}_output_projection"))
    node.input[1] = f"{producer.input[0]}_output_projection"
    if not any(producer.output[0] in n.input for n in graph.node):
        graph.node.remove(producer)


def embedding_int8(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """Embedding rows in int8 with one float scale per row: Gather both, Cast, Mul.

    Only the looked-up rows are dequantized, so a step reads a few KB of the table instead of
    545 MB. Per-row symmetric int8 keeps an embedding row within 0.4 % of its largest value.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    for node in [n for n in graph.node if n.name in names]:
        table_name = node.input[0]
        table = numpy_helper.to_array(initializers[table_name]).astype(np.float32)
        scale = np.maximum(np.abs(table).max(axis=1, keepdims=True), 1e-12) / 127.0
        quantized = np.clip(np.rint(table / scale), -127, 127).astype(np.int8)
        q_name, s_name = f"{table_name}_int8", f"{table_name}_row_scale"
        graph.initializer.extend([numpy_helper.from_array(quantized, q_name),
                                  numpy_helper.from_array(scale.astype(np.float32), s_name)])
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
        if not any(table_name in n.input for n in graph.node):  # not shared with a tied output projection
            graph.initializer.remove(initializers[table_name])
    return model

