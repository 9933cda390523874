"""Row selection of tensors that stay on the execution provider's device: the beam reorder of a KV cache.

Beam search keeps, at every step, some rows of each cache tensor (the beams chosen, the sentences
still searching). With the cache in numpy that is a fancy index on the host; with the cache as
ONNX Runtime values on the decoder's device (IO binding, runtime/onnx_decoder.py) it is this tiny
Gather graph (runtime/rows_*.onnx, built by modmt.export.search_graph) run as a second session on
the same provider, so the cache never crosses to the host.
"""
import numpy as np

from modmt.runtime.search_head import helper_session

GRAPHS = {"tensor(float)": "rows_fp32.onnx", "tensor(float16)": "rows_fp16.onnx"}


class DeviceRows:
    def __init__(self, providers: list, device: str):
        self.providers, self.device = providers, device
        self.sessions = {}  # one per element type: the cache's, and the logits' if they differ

    def _session(self, element_type: str):
        if element_type not in self.sessions:  # a copy: one thread that sleeps, as the search head's
            self.sessions[element_type] = helper_session(GRAPHS[element_type], self.providers)
        return self.sessions[element_type]

    def select(self, values: list, rows: np.ndarray) -> list:
        """value[rows] for each OrtValue, as new OrtValues on the device."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        selected = []
        for value in values:
            session = self._session(value.data_type())
            binding = session.io_binding()
            binding.bind_ortvalue_input("x", value)
            binding.bind_cpu_input("rows", rows)
            binding.bind_output("y", self.device)
            session.run_with_iobinding(binding)
            selected.append(binding.get_outputs()[0])
        return selected
