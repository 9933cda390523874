"""The model's ONNX graph from Optimum's config and model patcher, traced with placeholder weights.

Optimum's `onnx_export_from_model` held a large model two to three times over: the caller's torch
model, what torch's exporter serializes around it (its ONNX shape inference copies each constant,
2.35 GB on top of the 0.5B model; its last whole-graph pass is skipped here, see trace_graph), and the whole ONNX model loaded again to gather torch's
per-tensor files into one, then a third time to deduplicate tied weights (docs/results.md).
Here the weights never meet the exporter: each parameter's bytes are written to WEIGHTS_FILE and
the parameter becomes a one-element placeholder broadcast to its shape; the graph is traced from
Optimum's own OnnxConfig, dummy inputs and model patcher (what its `export_pytorch` does, less
the gathering step), without constant folding, so every weight stays an initializer named after
its parameter; those initializers are then pointed at WEIGHTS_FILE. The torch model's memory is
gone before the ONNX steps begin, and nothing is ever held twice.
"""
from pathlib import Path

import numpy as np
import onnx

from modmt.runtime.errors import ModmtError

TASK = "text-generation-with-past"
WEIGHTS_FILE = "weights.data"
TESTED_FAMILIES = ("qwen2", "qwen3", "llama", "mistral", "gemma", "gemma2", "gemma3_text", "phi3")
DERIVED_ABOVE = 1 << 20  # bytes: an initializer this large that is no parameter was computed from weights


def offload_parameters(model, path: Path) -> dict[str, tuple[int, int]]:
    """Write every parameter to `path`; return {name (tied aliases too): (offset, length)}.

    Each parameter then holds a placeholder: one value broadcast to its shape (no memory), a
    different value per parameter, because torch's exporter merges initializers of equal values.
    """
    import torch

    written, layout = {}, {}
    with open(path, "wb") as f:
        for name, param in model.named_parameters(remove_duplicate=False):
            if id(param) not in written:
                array = param.detach().cpu().contiguous().numpy()
                offset = f.tell()
                f.write(array.reshape(-1).view(np.uint8).data)
                written[id(param)] = (offset, array.nbytes)
                param.data = torch.full((), float(len(written)), dtype=param.dtype).expand(param.shape)
            layout[name] = written[id(param)]
    return layout


def onnx_config_for(model):
    """Optimum's ONNX config of `model` for a decoder that takes and returns its KV cache."""
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the ONNX configs with TasksManager)
    from optimum.exporters.tasks import TasksManager

    try:
        constructor = TasksManager.get_exporter_config_constructor(
            exporter="onnx", model=model, task=TASK, library_name="transformers")
    except (KeyError, ValueError) as e:
        raise ModmtError(f"Optimum cannot export a {model.config.model_type!r} model to ONNX ({str(e)[:120]}); "
                         f"modmt is tested on {', '.join(TESTED_FAMILIES)}") from None
    # As Optimum's get_decoder_models_for_export: one graph that takes and returns the KV cache.
    return constructor(model.config, int_dtype="int64", float_dtype="fp32", use_past=True, use_past_in_inputs=True)


def trace_graph(model, onnx_config, path: Path) -> None:
    """Optimum's export_pytorch without its gathering step; constant folding off (see module doc)."""
    from inspect import signature
    from itertools import chain
    from unittest import mock

    import torch
    from optimum.exporters.utils import check_dummy_inputs_are_allowed

    model_kwargs = {"logits_to_keep": 0} if "logits_to_keep" in signature(model.forward).parameters else {}
    with torch.no_grad():
        model.config.return_dict = True
        model.eval()
        for key, value in (onnx_config.values_override or {}).items():
            setattr(model.config, key, value)
        dummy_inputs = onnx_config.rename_ambiguous_inputs(onnx_config.generate_dummy_inputs(framework="pt"))
        # torch's last whole-graph ONNX shape inference pass serializes every initializer, expanding each
        # placeholder to its full size (0.6 GB over the model's own peak on the 0.5B model), and what it
        # infers never reaches the file: the export is byte-identical without it (docs/results.md).
        # Per-node shape inference during conversion is kept.
        no_whole_graph_inference = mock.patch.object(torch._C, "_jit_pass_onnx_graph_shape_type_inference",
                                                     lambda *args, **kwargs: None)
        with onnx_config.patch_model_for_export(model, model_kwargs=model_kwargs), no_whole_graph_inference:
            check_dummy_inputs_are_allowed(model, dummy_inputs)
            inputs = onnx_config.ordered_inputs(model)
            torch.onnx.export(model, (dummy_inputs,), f=str(path), input_names=list(inputs),
                              output_names=list(onnx_config.outputs),
                              dynamic_axes=dict(chain(inputs.items(), onnx_config.outputs.items())),
                              do_constant_folding=False, opset_version=onnx_config.DEFAULT_ONNX_OPSET, dynamo=False)


def point_at_weights(path: Path, layout: dict[str, tuple[int, int]]) -> None:
    """Make the traced graph's parameter initializers read WEIGHTS_FILE; drop torch's placeholder files."""
    from onnx.external_data_helper import uses_external_data

    from modmt.export.onnx_weights import _point_at

    model = onnx.load(str(path), load_external_data=False)
    placeholders = set()
    for tensor in model.graph.initializer:
        external = {e.key: e.value for e in tensor.external_data}
        size = int(external.get("length", 0)) if uses_external_data(tensor) else len(tensor.raw_data)
        if tensor.name in layout:
            offset, length = layout[tensor.name]
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
            if length != itemsize * int(np.prod(tensor.dims, dtype=np.int64)):
                raise ModmtError(f"unexpected ONNX graph: initializer {tensor.name} has another shape than the "
                                 "parameter of that name; report it with the model's name")
            if "location" in external:
                placeholders.add(external["location"])
            _point_at(tensor, WEIGHTS_FILE, offset, length)
        elif size >= DERIVED_ABOVE:  # computed from placeholder weights: its values would be wrong
            raise ModmtError(f"unexpected ONNX graph: initializer {tensor.name} ({size} bytes) is computed from "
                             "the weights, not one of them; report it with the model's name")
    onnx.save_model(model, str(path))
    for name in placeholders:
        (path.parent / name).unlink(missing_ok=True)


def torch_to_onnx(model, out_dir: Path) -> Path:
    """Export `model` (a transformers causal LM) to out_dir/model.onnx, its weights in out_dir/WEIGHTS_FILE,
    with config.json and generation_config.json. Consumes the model: its parameters become placeholders."""
    import gc

    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_config = onnx_config_for(model)
    model.config.save_pretrained(out_dir)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out_dir)
    layout = offload_parameters(model, out_dir / WEIGHTS_FILE)
    gc.collect()
    path = out_dir / "model.onnx"
    trace_graph(model, onnx_config, path)
    point_at_weights(path, layout)
    return path
