"""The join multiple (runtime/join_alignment.py): what the probe finds for decoders whose arithmetic depends
on the padding in known ways, and, on this machine's CPU, that batches of a real export joined at the
multiple it finds decode every sentence to the tokens it gets alone."""
import numpy as np
import pytest

from modmt.export.direction import ExportOptions
from modmt.export.shared_base import export_all_directions
from modmt.runtime.decoding import PAD_MULTIPLE, DecodeSettings, RunningBatch
from modmt.runtime.join_alignment import CANDIDATES, join_multiple
from modmt.runtime.languages import load_registry
from modmt.runtime.served_directions import load_backends


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


@pytest.fixture(scope="module")
def backends(tmp_path_factory, tiny_pool):
    root = tmp_path_factory.mktemp("join")
    export_all_directions(tiny_pool, ExportOptions(quantize="int8"), root / "base", load_registry())
    return load_backends([str(root / "base")], provider="cpu")


@pytest.mark.parametrize("beam", [1, 3])
def test_batches_joined_at_the_probed_multiple_decode_as_alone(backends, beam):
    backend = backends[("en", "fr")]
    m = backend.join_multiple
    assert m in (*CANDIDATES, PAD_MULTIPLE)
    if m == PAD_MULTIPLE:
        pytest.skip("this CPU's kernels need the full 64 columns: batches join only as before")
    work = [("en", "fr", "the train leaves at noon"), ("fr", "en", "le chat dort sur le canapé ce soir"),
            ("ja", "zh", "猫 は ソファ で 寝て います"), ("de", "en", "der Hund schläft im Garten")]
    items = [backend.item(src, tgt, None) for src, tgt, _ in work]
    prompts = [backend.encode(text, item)[0] for (_, _, text), item in zip(work, items)]
    settings = DecodeSettings(beam, 3 * m + 8)

    def batch(indices):
        return RunningBatch(backend.decoder_for, [items[i] for i in indices], [prompts[i] for i in indices],
                            settings, backend.stop_ids, backend.pad_id)

    def tokens(finished):
        return {items.index(f.item): f.tokens for f in finished}

    alone = {}
    for i in range(len(work)):
        alone.update(tokens(batch([i]).run()))
    early, finished = batch([0, 1]), []
    finished += early.finished_at_start
    for _ in range(m):  # m steps ahead: the later batch's cache is m columns shorter
        finished += early.step()
    late = batch([2, 3])
    assert not early.done and early.width - late.width == m
    assert early.can_join(late, m)
    early.join(late)
    finished += late.finished_at_start + early.run()
    assert tokens(finished) == alone
