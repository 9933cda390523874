"""SmoothQuant: activation maxima of an fp32 export on training text, and the weight rescaling they drive.

int8 x int8 matrices (export/quantize.py, dynamic_int8) quantize each input row at run time, so
one outlier channel sets the step for all the others of its row. SmoothQuant (Xiao et al., 2023)
moves that range into the weights: channel j of the input is divided by s_j and row j of each
weight that reads it multiplied by s_j, with s_j = max|x_j|^alpha / max|w_j|^(1 - alpha). The
division folds into whatever makes the input, so the float model is unchanged: an RMSNorm's gain
(the inputs of q/k/v, gate/up and the output projection) or the up projection's column j (the
down projection reads act(gate) * up). The maxima come from here: prompts of the direction's
source language followed by target-language text, from the corpus's training split (never
devtest), run through the fp32 graph on ONNX Runtime with the smoothed tensors as extra outputs.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from modmt.export.quantize import matrix_kind
from modmt.runtime.decoding import left_pad
from modmt.runtime.errors import ModmtError
from modmt.runtime.onnx_decoder import prefill_positions

SEQUENCES = 128     # SmoothQuant's maxima settle within a few dozen sequences; twice that for margin
MAX_TOKENS = 256


def calibration_sequences(corpus_dir: Path, src: str, tgt: str, tokenizer, template,
                          count: int = SEQUENCES) -> list[list[int]]:
    """`count` training sequences: a src prompt, then tgt text as the answer (from the en-tgt pairs).

    The corpus is English-centric, so for two non-English languages the answer is not the prompt's
    translation; statistics of the activations need each language's text, not aligned pairs.
    tokenizer: a `tokenizers.Tokenizer`; template: the direction's PromptTemplate.
    """
    from modmt.runtime.languages import load_registry
    from modmt.train.corpus import open_corpus

    corpus = open_corpus(corpus_dir, load_registry())
    sources = [text for _, text in corpus.pairs(src)][:count]
    targets = [text for _, text in corpus.pairs(tgt)][:count]
    return [(template.source_ids(tokenizer, s) + template.target_ids(tokenizer, t))[:MAX_TOKENS]
            for s, t in zip(sources, targets)]


def activation_max(model_path: Path, tensors: list[str], sequences: list[list[int]], pad_id: int,
                   batch_size: int = 8) -> dict[str, np.ndarray]:
    """max |x| per channel (last axis) of each named tensor over every real token of `sequences`."""
    import onnxruntime as ort

    if not sequences:
        raise ModmtError("no calibration text: the corpus's training split has no pairs for this direction")
    graph = onnx.load(str(model_path), load_external_data=False)
    existing = {o.name for o in graph.graph.output}
    graph.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in tensors if t not in existing)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # The copy of the graph is loaded from memory; its weights stay in the export's data file.
    options.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                     str(model_path.resolve().parent))
    session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    del graph
    inputs = {i.name: i for i in session.get_inputs()}
    past = [n for n in inputs if n.startswith("past_key_values.")]
    maxima = {}
    ordered = sorted(sequences, key=len)  # similar lengths together: less padding
    for start in range(0, len(ordered), batch_size):
        ids, mask = left_pad(ordered[start:start + batch_size], pad_id)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "position_ids" in inputs:
            feed["position_ids"] = prefill_positions(mask)
        for name in past:
            heads, dim = inputs[name].shape[1], inputs[name].shape[3]
            feed[name] = np.zeros((ids.shape[0], heads, 0, dim), dtype=np.float32)
        for name, value in zip(tensors, session.run(tensors, feed)):
            real = np.abs(value[mask.astype(bool)])            # [real tokens, channels]
            maxima[name] = np.maximum(maxima.get(name, 0), real.max(axis=0))
    return maxima


@dataclass
class SmoothGroup:
    """One activation tensor and what reads it: smoothing divides its channel j by s_j in `absorber`
    (an initializer, along `axis`) and multiplies row j of every consumer's weight by s_j."""
    tensor: str
    absorber: str
    axis: int
    node: str                          # the node that reads `absorber` to make `tensor`
    consumers: list[tuple[str, str]]   # (MatMul node, its weight)


def smoothing_groups(model: onnx.ModelProto, kinds: tuple[str, ...], weights_only: bool = True,
                     unsmoothed: list | None = None) -> list[SmoothGroup]:
    """kinds: "down_proj" (the MLP's act(gate) * up, absorbed by the up projection's columns) and
    "norm" (an RMSNorm's output read by q/k/v, gate/up or the output projection, absorbed by its gain).

    weights_only=False also keeps groups whose consumer weights are computed (a tied output projection
    before it is untied): what calibration must measure, not what can be rescaled yet. unsmoothed:
    a list that receives the down projections without an up projection to absorb their scales.
    """
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    groups = []
    if "down_proj" in kinds:
        for down in (n for n in graph.node if n.op_type == "MatMul" and matrix_kind(n.name) == "down_proj"):
            product = producers.get(down.input[0])
            factors = product.input if product is not None and product.op_type == "Mul" else []
            ups = [producers.get(i) for i in factors]
            ups = [u for u in ups if u is not None and matrix_kind(u.name) == "up_proj" and u.input[1] in initializers]
            if len(ups) != 1 or down.input[1] not in initializers:
                # A family that fuses gate and up (Phi-3's gate_up_proj) has no up projection of its own
                # to absorb the scales: its down projection is quantized unsmoothed, and the manifest says so.
                if unsmoothed is not None:
                    unsmoothed.append(down.name)
                continue
            groups.append(SmoothGroup(down.input[0], ups[0].input[1], 1, ups[0].name, [(down.name, down.input[1])]))
    if "norm" in kinds:
        def constant(name):  # an initializer, or the Identity of one (how the exporter shares equal weights)
            producer = producers.get(name)
            if producer is not None and producer.op_type == "Identity" and producer.input[0] in initializers:
                return producer.input[0]
            return name if name in initializers else None

        for node in graph.node:  # Optimum's RMSNorm ends in /model/.../<x>norm/Mul_1: x_normalised * gain
            gains = [constant(i) for i in node.input if constant(i) is not None]
            if node.op_type != "Mul" or len(gains) != 1 or not node.name.split("/")[-2].endswith("norm"):
                continue
            matmuls = []
            for reader in readers.get(node.output[0], []):  # the output projection reads it through a Slice
                for r in [reader] if reader.op_type != "Slice" else readers.get(reader.output[0], []):
                    if r.op_type == "MatMul" and matrix_kind(r.name) is not None:
                        matmuls.append(r)
            if matmuls and (not weights_only or all(m.input[1] in initializers for m in matmuls)):
                consumers = [(m.name, m.input[1]) for m in matmuls]
                groups.append(SmoothGroup(node.output[0], gains[0], 0, node.name, consumers))
    return groups


def smooth(weights, groups: list[SmoothGroup], activation_max: dict, alpha: float) -> None:
    """SmoothQuant: s_j = max|x_j|^alpha / max|w_j|^(1 - alpha) over the group's consumers; the float
    model computes the same function, the int8 one loses less. weights: a GraphWeights, changed in place."""
    graph = weights.graph
    nodes = {node.name: node for node in graph.node}

    def private(name, reader):
        """An initializer only `reader` reads: the exporter shares equal weights (all-ones gains, say),
        directly or through Identity nodes, and rescaling a shared one would change its other readers."""
        node = nodes[reader]
        if name in node.input and sum(name in n.input for n in graph.node) == 1:
            return name
        slot = next(i for i, x in enumerate(node.input) if x == name or
                    any(n.op_type == "Identity" and n.input[0] == name and x in n.output for n in graph.node))
        copy = f"{name}_smoothed_{len(graph.initializer)}"
        weights.put(copy, weights.array(name))
        node.input[slot] = copy
        return copy

    for group in groups:
        if group.tensor not in activation_max:
            raise ModmtError(f"no calibration maxima for {group.tensor}; re-run the export")
        names = [private(weight, node) for node, weight in group.consumers]
        x_max = np.maximum(np.asarray(activation_max[group.tensor], dtype=np.float64), 1e-5)
        w_max = np.max([np.abs(weights.array(name)).max(axis=1) for name in names], axis=0)  # one matrix at a time
        scale = np.clip(x_max ** alpha / np.maximum(w_max.astype(np.float64), 1e-5) ** (1 - alpha), 1e-3, 1e3)
        for name in names:                                 # [K, N]: row j reads channel j
            w = weights.array(name)
            weights.put(name, (w * scale[:, None]).astype(w.dtype))
        name = private(group.absorber, group.node)
        absorber = weights.array(name)
        shape = [1] * absorber.ndim
        shape[group.axis] = -1
        weights.put(name, (absorber / scale.reshape(shape)).astype(absorber.dtype))
