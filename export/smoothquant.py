"""SmoothQuant for the down projections: activation maxima on training text, and the weight rescaling they drive.

int8 x int8 matrices (export/quantize.py, DynamicQuantizeMatMul) quantize their input per tensor
at run time, so one outlier channel sets the step for all others. The MLP's down projection reads
the product of the gate and up branches, whose few large channels cost 4 chrF++ points in one
direction unsmoothed (docs/results.md). SmoothQuant (Xiao et al., 2023) moves that range into
the weights: channel j of the input is divided by s_j and row j of the weight multiplied by it,
with s_j = max|x_j|^alpha / max|w_j|^(1 - alpha); the division folds into the up projection's
column j, so the float model is unchanged. The maxima come from here: prompts of the direction's
source language followed by target-language text, from the corpus's training split (never devtest),
run through the fp32 graph on ONNX Runtime with the chosen tensors as extra outputs.
"""
from pathlib import Path

import numpy as np
import onnx

from modmt.export.quantize import matrix_kind
from modmt.runtime.decoding import left_pad
from modmt.runtime.errors import ModmtError

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
            feed["position_ids"] = np.where(mask == 0, 1, np.cumsum(mask, axis=1) - 1)
        for name in past:
            heads, dim = inputs[name].shape[1], inputs[name].shape[3]
            feed[name] = np.zeros((ids.shape[0], heads, 0, dim), dtype=np.float32)
        for name, value in zip(tensors, session.run(tensors, feed)):
            real = np.abs(value[mask.astype(bool)])            # [real tokens, channels]
            maxima[name] = np.maximum(maxima.get(name, 0), real.max(axis=0))
    return maxima


def down_projections(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == "MatMul" and matrix_kind(n.name) == "down_proj"]


def smooth_down_projections(model: onnx.ModelProto, activation_max: dict, alpha: float) -> None:
    """SmoothQuant on each MLP: input channel j of the down projection divided by s_j, folded into
    the up projection's column j (the input is act(gate) * up), and the down projection's row j
    multiplied by s_j. The float model computes the same function; the int8 one loses less.
    """
    from onnx import numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    for down in down_projections(model):
        product = producers.get(down.input[0])
        ups = [producers.get(i) for i in (product.input if product is not None and product.op_type == "Mul" else [])]
        ups = [u for u in ups if u is not None and matrix_kind(u.name) == "up_proj" and u.input[1] in initializers]
        if len(ups) != 1 or down.input[1] not in initializers or down.input[0] not in activation_max:
            raise ModmtError(f"unexpected ONNX graph: {down.name} does not read act(gate) * up_proj; "
                             "use a recipe without smoothing")
        w_down = numpy_helper.to_array(initializers[down.input[1]])      # [K, N]: row j reads channel j
        w_up = numpy_helper.to_array(initializers[ups[0].input[1]])      # [H, K]: column j writes it
        x_max = np.maximum(np.asarray(activation_max[down.input[0]], dtype=np.float64), 1e-5)
        w_max = np.maximum(np.abs(w_down).max(axis=1).astype(np.float64), 1e-5)
        scale = np.clip(x_max ** alpha / w_max ** (1 - alpha), 1e-3, 1e3)
        initializers[down.input[1]].CopyFrom(
            numpy_helper.from_array((w_down * scale[:, None]).astype(w_down.dtype), down.input[1]))
        initializers[ups[0].input[1]].CopyFrom(
            numpy_helper.from_array((w_up / scale[None, :]).astype(w_up.dtype), ups[0].input[1]))
