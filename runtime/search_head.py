"""The beam-search head: log-softmax and per-row top-k of a logits batch, run by ONNX Runtime.

A second, tiny session (runtime/search_fp32.onnx or search_fp16.onnx, built by
modmt.export.search_graph) on the decoder's execution provider; it takes the last position of
[rows, positions, vocab] logits. Beam search needs, per step, the
best 2k continuations of each sentence over k beams × the vocabulary; the best of those over all k
beams are among the best 2k of each beam (adding a beam's running score does not reorder its
tokens), so per-row top-2k is exact, and only [rows, 2k] scores and ids reach the search loop.
ONNX Runtime's TopK replaces numpy's argpartition over rows × 151,936 logits, a fifth of the
beam-search time on the CPU.
"""
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def helper_session(name: str, providers: list, threads: int | None = None):
    """A session for one of the small graphs shipped beside this module, on the decoder's providers.

    One thread that sleeps when idle: a second pool of spinning threads would take the cores from
    the model's own session between steps (measured: it ate the search head's gain on 2 cores).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads or 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(HERE / name), options, providers=providers)


class SearchHead:
    def __init__(self, providers: list, threads: int | None, logits_dtype=np.float32):
        name = "search_fp16.onnx" if logits_dtype == np.float16 else "search_fp32.onnx"
        self.session = helper_session(name, providers, threads)
        self.logits_dtype = logits_dtype

    def top(self, logits, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Log-probabilities [rows, k] (fp32, best first; ties by token id) and their token ids [rows, k].

        logits: numpy [rows, vocab], or the decoder's [rows, positions, vocab] output as an OrtValue
        on its device (runtime/onnx_decoder.py, IO binding): then only the [rows, k] results cross
        to the host.
        """
        k = np.array([k], dtype=np.int64)
        if isinstance(logits, np.ndarray):
            logits = np.ascontiguousarray(logits, dtype=self.logits_dtype)
            return tuple(self.session.run(["logprobs", "ids"], {"logits": logits[:, None, :], "k": k}))
        binding = self.session.io_binding()
        binding.bind_ortvalue_input("logits", logits)
        binding.bind_cpu_input("k", k)
        binding.bind_output("logprobs", "cpu")
        binding.bind_output("ids", "cpu")
        self.session.run_with_iobinding(binding)
        values, ids = binding.get_outputs()
        return values.numpy(), ids.numpy()
