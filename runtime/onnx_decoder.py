"""An exported decoder on ONNX Runtime: the session, its execution provider, and one KV-cached step.

The graph is Optimum's `text-generation-with-past` export: inputs input_ids, attention_mask,
position_ids and past_key_values.<i>.key/value; outputs logits and present.<i>.key/value.
"""
import os
import sys

import numpy as np

from modmt.runtime.errors import ModmtError
from modmt.runtime.ort_options import OrtOptions
from modmt.runtime.search_head import SearchHead

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_warned_cpu = False


def prefill_positions(mask: np.ndarray) -> np.ndarray:
    """Positions count real tokens only, so left padding does not shift them (as transformers does)."""
    return np.where(mask == 0, 1, np.cumsum(mask, axis=1) - 1)


def step_positions(mask: np.ndarray) -> np.ndarray:
    """The position of the one new token of each row: its real tokens so far, minus one."""
    return (mask.sum(axis=1, keepdims=True) - 1).astype(np.int64)


def choose_providers(provider: str) -> list:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModmtError("ONNX Runtime is not installed: pip install 'modmt[cpu]' (or 'modmt[gpu]' for CUDA)") from None
    available = ort.get_available_providers()
    if provider == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ModmtError(f"the CUDA provider was asked for, but this ONNX Runtime has no CUDA execution "
                             f"provider (available: {', '.join(available)}); install 'modmt[gpu]' (onnxruntime-gpu) "
                             "on a CUDA machine, or choose the CPU provider")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if provider == "auto" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if provider == "auto":
        global _warned_cpu
        if not _warned_cpu:  # once per process, not once per loaded export
            print("modmt: no CUDA execution provider here; running on the CPU", file=sys.stderr)
            _warned_cpu = True
    elif provider != "cpu":
        raise ModmtError(f"unknown provider {provider!r}; use auto, cuda or cpu")
    return ["CPUExecutionProvider"]


class OnnxDecoder:
    def __init__(self, model_path: str, provider: str = "auto", threads: int | None = None,
                 initializers: dict | None = None, ort_options: OrtOptions = OrtOptions()):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Shared-base directions replace some weights at session creation; ONNX Runtime uses the
        # buffers in place, so they must live as long as the session.
        self._initializers = {name: ort.OrtValue.ortvalue_from_numpy(array)
                              for name, array in (initializers or {}).items()}
        for name, value in self._initializers.items():
            options.add_initializer(name, value)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # One thread per core; inter-op parallelism does not help a sequential decoder graph.
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        if not ort_options.spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(model_path, options, providers=choose_providers(provider))
        except ModmtError:
            raise
        except Exception as e:
            raise ModmtError(f"ONNX Runtime cannot load {model_path} ({str(e).splitlines()[0][:200]}); "
                             "re-export it with `modmt-export`") from None
        self.model_path = model_path
        self.providers = self.session.get_providers()
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.past_names = sorted((n for n in inputs if n.startswith("past_key_values.")),
                                 key=lambda n: (int(n.split(".")[1]), n.endswith("value")))
        self.present_names = [n.replace("past_key_values.", "present.") for n in self.past_names]
        if not self.past_names or "input_ids" not in inputs:
            raise ModmtError(f"{model_path} is not a decoder with a KV cache (text-generation-with-past)")
        first = inputs[self.past_names[0]]
        self.kv_heads, self.head_dim = first.shape[1], first.shape[3]
        self.cache_dtype = _DTYPES.get(first.type, np.float32)
        self.uses_position_ids = "position_ids" in inputs
        logits = next((o for o in self.session.get_outputs() if o.name == "logits"), None)
        if logits is None:
            raise ModmtError(f"{model_path} has no 'logits' output; re-export it with `modmt-export`")
        self.vocab_size = logits.shape[-1] if isinstance(logits.shape[-1], int) else None
        # Beam search's per-step log-softmax and top-k, on the same execution provider (None: numpy).
        self.ort_options = ort_options
        self.search_head = None if not ort_options.search_head else SearchHead(
            self.providers, 1, _DTYPES.get(logits.type, np.float32))

    def _run(self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray, cache: list, extra: dict | None = None):
        """extra: further inputs of the graph (a routed base's per-row routes and adapter banks)."""
        feed = {"input_ids": ids, "attention_mask": mask, **(extra or {})}
        if self.uses_position_ids:
            feed["position_ids"] = positions
        feed.update(zip(self.past_names, cache))
        outputs = self.session.run(["logits", *self.present_names], feed)
        return outputs[0][:, -1, :], outputs[1:]

    def empty_cache(self, rows: int) -> list:
        """The past of a prefill: every cache tensor with no positions yet."""
        return [np.zeros((rows, self.kv_heads, 0, self.head_dim), dtype=self.cache_dtype) for _ in self.past_names]

    def prefill(self, ids: np.ndarray, mask: np.ndarray, extra: dict | None = None):
        return self._run(ids, mask, prefill_positions(mask), self.empty_cache(ids.shape[0]), extra)

    def step(self, tokens: np.ndarray, mask: np.ndarray, cache: list, extra: dict | None = None):
        return self._run(tokens.reshape(-1, 1), mask, step_positions(mask), cache, extra)

    @staticmethod
    def select(cache: list, rows: np.ndarray) -> list:
        return [layer[rows] for layer in cache]
