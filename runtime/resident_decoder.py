"""An OnnxDecoder's steps with the KV cache and the logits kept on its execution provider's device.

OnnxDecoder.run feeds numpy arrays and gets numpy arrays back: on a GPU every step would carry the
whole cache to the device and back (about 100 MB at batch 8, beam 5, 100 tokens) and a logits row
of 151,936 floats per beam to the host. Here the step is run with IO binding: the step's inputs
that change (ids, mask, positions) are small host arrays, the cache goes in and comes out as
OrtValues on the device, the cache of one step is the input of the next, the beam reorder is a
Gather on the device (runtime/device_rows.py), and the search head (runtime/search_head.py) reads
the logits where they are, so only [rows, 2k] scores and ids reach the host. On the CPU the
"device" is host memory and this saves the copies ONNX Runtime's Python `run` makes of its outputs.

Same interface as OnnxDecoder (prefill, step, select, search_head), plus `host(logits)` for greedy
search; the search code does not know which one it drives.
"""

from functools import cached_property

import numpy as np

from modmt.runtime.device_rows import DeviceRows
from modmt.runtime.onnx_decoder import prefill_positions, step_positions


class ResidentDecoder:
    def __init__(self, decoder):
        self.decoder = decoder
        self.device = "cuda" if decoder.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.rows = DeviceRows(decoder.providers, self.device)

    @property
    def search_head(self):
        return self.decoder.search_head

    def _run(self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray, cache: list, extra: dict | None = None):
        """cache: OrtValues on the device, or (a prefill's empty past) numpy arrays bound from the host.
        extra: further inputs (a routed base's routes, numpy, and adapter banks, OrtValues)."""
        binding = self.decoder.session.io_binding()
        for name, value in (extra or {}).items():
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        binding.bind_cpu_input("input_ids", np.ascontiguousarray(ids, dtype=np.int64))
        binding.bind_cpu_input("attention_mask", np.ascontiguousarray(mask, dtype=np.int64))
        if self.decoder.uses_position_ids:
            binding.bind_cpu_input("position_ids", np.ascontiguousarray(positions, dtype=np.int64))
        for name, value in zip(self.decoder.past_names, cache):
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        for name in ["logits", *self.decoder.present_names]:
            binding.bind_output(name, self.device)
        self.decoder.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        return outputs[0], list(outputs[1:])  # logits [rows, positions, vocab], on the device

    def prefill(self, ids: np.ndarray, mask: np.ndarray, extra: dict | None = None):
        return self._run(ids, mask, prefill_positions(mask), self.decoder.empty_cache(ids.shape[0]), extra)

    def step(self, tokens: np.ndarray, mask: np.ndarray, cache: list, extra: dict | None = None):
        return self._run(tokens.reshape(-1, 1), mask, step_positions(mask), cache, extra)

    def select(self, values: list, rows: np.ndarray) -> list:
        return self.rows.select(values, rows)

    @staticmethod
    def host(logits) -> np.ndarray:
        """The last position's logits [rows, vocab] in host memory (greedy search's argmax)."""
        return logits.numpy()[:, -1, :]


class SearchDecoderMixin:
    """For a translator with an OnnxDecoder at `self.decoder` (and `self._resident = None` at init): what its
    search drives, and its provider."""

    @property
    def search_decoder(self):
        """The same decoder with its cache kept on the device (IO binding) when the search head runs beside
        it; OrtOptions(io_binding=False) turns that off (for side-by-side benchmarks)."""
        if self.decoder.search_head is None or not self.decoder.ort_options.io_binding:
            return self.decoder
        if self._resident is None:
            self._resident = ResidentDecoder(self.decoder)
        return self._resident

    @property
    def provider(self) -> str:
        return self.decoder.providers[0]

    @cached_property
    def pad_multiple(self) -> int:
        """Columns a batch's prompts are padded to, and modulo which two running batches' caches must agree
        to join: the join multiple of runtime/join_alignment.py for this decoder on this CPU, probed on first
        use (a few prefills and steps of two short prompts); PAD_MULTIPLE (64) where no smaller one keeps
        every bit. The offline API and the server pad alike, so a sentence decodes to the same tokens in both.
        A translator gives `probe(texts) -> (two-row decoder, prompts)`."""
        from modmt.runtime.join_alignment import PROBE_TEXTS, join_multiple

        decoder, prompts = self.probe(PROBE_TEXTS)
        return join_multiple(decoder, prompts, self.pad_id)
