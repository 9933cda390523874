"""Weight-only quantization recipes for CPU exports, with ONNX Runtime's MatMulNBits quantizer.

Activations stay in float: ONNX Runtime's dynamic int8 (the earlier recipe) also quantizes every
activation to 8 bits per tensor, and the outliers of an LLM's activations cost 5 chrF++ points
on Qwen2.5-0.5B. Here only weights are quantized, in blocks of 32 along the input axis, each block
with its own scale (and zero point where asymmetric). The choices follow `modmt-bench quant-error`
(docs/results.md), measured on the base model, a GGUF stored mostly as Q5_0 with Q8_0 for the
output projection and the value projections, Q6_K/Q4_K for the down projections:

  int8  every decoder matrix and the output projection at 8 bits, symmetric: the Q8_0 matrices
        come back exactly (their grid is symmetric 8-bit blocks of 32), the others within 0.6 %
        RMS; the embedding table in int8 rows with a float scale each, so no 545 MB float table
        stays beside the int8 matrices.
  int8-b128  the same in blocks of 128: faster and smaller, within noise of int8's quality.
  int4  decoder matrices at 4 bits with a zero point (15-33 % less error than symmetric: the
        Q5_0 grid is not symmetric); the output projection, the most sensitive matrix, at 8 bits
        symmetric (exact); the embedding table at 4 bits (GatherBlockQuantized). The earlier
        int4 put the output projection at 4 bits, symmetric, and degenerated into repetitions.

`accuracy_level` 4 lets the CPU kernels compute with int8 activations inside a block (AVX512-VNNI);
0 keeps float compute. The recipe goes into modmt.json.
"""
from dataclasses import asdict, dataclass

import onnx

from modmt.runtime.errors import ModmtError


@dataclass(frozen=True)
class QuantRecipe:
    bits: int                   # decoder matrices
    head_bits: int | None       # output projection (None: float)
    embedding_bits: int | None  # embedding table (None: float)
    symmetric: bool             # decoder matrices: no zero point
    head_symmetric: bool = True
    block_size: int = 32
    accuracy_level: int = 4

    def to_json(self) -> dict:
        return {"method": "MatMulNBits weight-only (RTN)", **asdict(self)}


RECIPES = {
    "int8": QuantRecipe(bits=8, head_bits=8, embedding_bits=8, symmetric=True),
    # Blocks of 128: a sixth fewer bytes of scales and 18 % more sentences/s at batch 8, beam 5 on the
    # CPU; over four directions -0.12 [-0.88, +0.70] chrF++ to fp32 against -0.02 for blocks of 32
    # (docs/results.md): the speed-first int8.
    "int8-b128": QuantRecipe(bits=8, head_bits=8, embedding_bits=8, symmetric=True, block_size=128),
    "int4": QuantRecipe(bits=4, head_bits=8, embedding_bits=4, symmetric=False),
}


def output_projection(model: onnx.ModelProto) -> str:
    heads = [n.name for n in model.graph.node if "logits" in n.output and n.op_type == "MatMul"]
    if len(heads) != 1:
        raise ModmtError("unexpected ONNX graph: no single MatMul producing 'logits'; re-export in fp32")
    return heads[0]


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


def quantize(model: onnx.ModelProto, recipe: QuantRecipe, keep_float: list[str] = ()) -> onnx.ModelProto:
    """The model with the recipe's matrices (and embedding) in MatMulNBits / GatherBlockQuantized form.

    keep_float: MatMul nodes left in float (a quantized shared base's low-rank side paths).
    """
    try:
        import onnxruntime.quantization.matmul_nbits_quantizer  # noqa: F401
    except ImportError as e:
        raise ModmtError(f"quantization needs onnxruntime's MatMulNBits quantizer ({e}); pip install onnx-ir") from None
    head = output_projection(model)
    untie_output_projection(model, head)
    embedding = [n.name for n in model.graph.node if n.op_type == "Gather" and n.input[0].endswith("embed_tokens.weight")]
    body_ops = ("MatMul", "Gather") if recipe.embedding_bits == recipe.bits == 4 else ("MatMul",)
    model = _quantize(model, recipe.bits, recipe, body_ops, recipe.symmetric, exclude=[head, *keep_float])
    if recipe.head_bits is not None:  # the decoder's MatMuls are MatMulNBits by now: only the head is left
        model = _quantize(model, recipe.head_bits, recipe, ("MatMul",), recipe.head_symmetric, include=[head],
                          exclude=list(keep_float))
    if recipe.embedding_bits == 8:  # ONNX Runtime's Gather quantizer knows 4 bits only
        model = embedding_int8(model, embedding)
    elif recipe.embedding_bits is not None and recipe.embedding_bits != recipe.bits:
        model = _quantize(model, recipe.embedding_bits, recipe, ("Gather",), recipe.symmetric, include=embedding)
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

