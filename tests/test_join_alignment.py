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

    def __init__(self, lanes, prefill_lanes="same"):
        self.lanes = lanes
        self.prefill_lanes = lanes if prefill_lanes == "same" else prefill_lanes

    @staticmethod
    def logits(mask, lanes):
        pad = mask.shape[1] - mask.sum(axis=1)
        wobble = pad % lanes if lanes else np.full(len(mask), mask.shape[1])
        return np.stack([np.arange(8, dtype=np.float32) + 1e-6 * w for w in wobble])

    def prefill(self, ids, mask):
        return self.logits(mask, self.prefill_lanes), [np.zeros((len(ids), 1, ids.shape[1], 2), np.float32)]

    def step(self, tokens, mask, cache):
        cache = [np.concatenate([c, np.zeros((*c.shape[:2], 1, 2), np.float32)], axis=2) for c in cache]
        return self.logits(mask, self.lanes), cache


@pytest.mark.parametrize("lanes, found", [(1, 1), (8, 8), (16, 16), (32, 32), (None, PAD_MULTIPLE)])
def test_the_probe_finds_the_multiple_a_decoder_needs(lanes, found):
    assert join_multiple(LaneDecoder(lanes), [[1, 2, 3], [4, 5]], pad_id=0) == found


@pytest.mark.parametrize("step_lanes, prefill_lanes, found", [(4, 16, 16), (16, 4, 16), (4, None, PAD_MULTIPLE)])
def test_the_multiple_holds_for_the_prefill_too(step_lanes, prefill_lanes, found):
    """The server pads new prompts to the multiple, so a prefill that needs more decides it."""
    assert join_multiple(LaneDecoder(step_lanes, prefill_lanes), [[1, 2, 3], [4, 5]], pad_id=0) == found
