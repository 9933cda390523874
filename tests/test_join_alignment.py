"""The join multiple (runtime/join_alignment.py): what the probe finds for decoders whose arithmetic depends
on the padding in known ways. That batches of a real export joined at the multiple it finds decode every
sentence to the tokens it gets alone, on this machine's CPU, is tests/test_server.py's
test_batches_joined_at_the_probed_multiple_decode_as_alone (it shares that module's exported base)."""
import numpy as np
import pytest

from modmt.runtime.decoding import PAD_MULTIPLE
from modmt.runtime.join_alignment import join_multiple


class LaneDecoder:
    """A decoder whose logits change with the number of padded columns modulo `lanes` (None: with any
    change of width), as a kernel that sums keys in SIMD lanes would."""

    def __init__(self, lanes):
        self.lanes = lanes

    def logits(self, mask):
        pad = mask.shape[1] - mask.sum(axis=1)
        wobble = pad % self.lanes if self.lanes else np.full(len(mask), mask.shape[1])
        return np.stack([np.arange(8, dtype=np.float32) + 1e-6 * w for w in wobble])

    def prefill(self, ids, mask):
        return self.logits(mask), [np.zeros((len(ids), 1, ids.shape[1], 2), np.float32)]

    def step(self, tokens, mask, cache):
        cache = [np.concatenate([c, np.zeros((*c.shape[:2], 1, 2), np.float32)], axis=2) for c in cache]
        return self.logits(mask), cache


@pytest.mark.parametrize("lanes, found", [(1, 1), (8, 8), (16, 16), (32, 32), (None, PAD_MULTIPLE)])
def test_the_probe_finds_the_multiple_a_decoder_needs(lanes, found):
    assert join_multiple(LaneDecoder(lanes), [[1, 2, 3], [4, 5]], pad_id=0) == found
