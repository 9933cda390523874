"""The beam-search head and the device-resident steps (IO binding, row gather on ONNX Runtime):
shipped as built, and exact against numpy."""
import numpy as np
import pytest

from modmt.runtime.decoding import best_candidates, log_softmax
from modmt.runtime.ort_options import OrtOptions
from modmt.runtime.search_head import HERE, SearchHead
from modmt.runtime.translator import Translator

TEXTS = ["猫はソファで寝ています。", "犬は雪の中を走ります。そして長い文。", "パン", "", "The train leaves at noon."]


def test_shipped_graphs_are_what_the_builder_makes():
    from modmt.export.search_graph import ROWS_VARIANTS, VARIANTS, build, build_rows

    for variants, builder in ((VARIANTS, build), (ROWS_VARIANTS, build_rows)):
        for name, element_type in variants.items():
            assert (HERE / name).read_bytes() == builder(element_type).SerializeToString(), \
                f"runtime/{name} is stale: run python -m modmt.export.search_graph"


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_head_equals_numpy_log_softmax_and_sort(dtype):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((6, 1000)) * 4).astype(dtype)
    values, ids = SearchHead(["CPUExecutionProvider"], 1, dtype).top(logits, 7)
    want = log_softmax(logits.astype(np.float32))
    order = np.argsort(-want, axis=1, kind="stable")[:, :7]
    assert (ids == order).all()
    np.testing.assert_allclose(values, np.take_along_axis(want, order, 1), rtol=1e-5, atol=1e-5)


def test_best_candidates_with_the_head_equal_the_full_vocabulary_search():
    class WithHead:
        search_head = SearchHead(["CPUExecutionProvider"], 1)

    rng = np.random.default_rng(1)
    for sentences, k in ((1, 1), (3, 4), (5, 5)):
        logits = (rng.standard_normal((sentences * k, 500)) * 3).astype(np.float32)
        running = rng.standard_normal((sentences, k)).astype(np.float32) * 2
        running[:, 1:] -= 1e9 * (rng.random((sentences, k - 1)) < 0.3)  # some beams not yet real
        got = best_candidates(WithHead(), logits, running, 2 * k)
        want = best_candidates(object(), logits, running, 2 * k)  # no head: numpy over the vocabulary
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)
        assert (got[1] == want[1]).all() and (got[2] == want[2]).all()


@pytest.mark.parametrize("beam, length_penalty", [(2, 1.0), (5, 1.0), (4, 0.5), (3, 2.0)])
def test_translations_are_token_identical_with_and_without_the_head(tiny_export, beam, length_penalty):
    with_head = Translator(tiny_export, provider="cpu")
    without = Translator(tiny_export, provider="cpu")
    without.decoder.search_head = None
    kwargs = dict(beam=beam, max_new_tokens=20, length_penalty=length_penalty, batch_size=3)
    assert with_head.translate(TEXTS, **kwargs) == without.translate(TEXTS, **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_device_rows_equal_numpy_indexing(dtype):
    import onnxruntime as ort

    from modmt.runtime.device_rows import DeviceRows

    rows = DeviceRows(["CPUExecutionProvider"], "cpu")
    rng = np.random.default_rng(2)
    for shape in ((6, 2, 5, 4), (6, 1, 9), (6, 2, 0, 4)):  # a cache tensor, logits, an empty prefill cache
        x = rng.standard_normal(shape).astype(dtype)
        pick = np.array([5, 0, 0, 3])
        got = rows.select([ort.OrtValue.ortvalue_from_numpy(x)], pick)[0]
        assert got.numpy().dtype == dtype and (got.numpy() == x[pick]).all()


@pytest.mark.parametrize("beam, length_penalty, batch", [(1, 1.0, 2), (2, 1.0, 3), (5, 1.0, 3), (4, 0.5, 2), (3, 2.0, 5)])
def test_translations_are_token_identical_with_the_cache_on_the_device(tiny_export, monkeypatch, beam,
                                                                        length_penalty, batch):
    from modmt.runtime.resident_decoder import ResidentDecoder

    resident = Translator(tiny_export, provider="cpu")
    assert isinstance(resident.search_decoder, ResidentDecoder), "IO binding is the default with the head"
    kwargs = dict(beam=beam, max_new_tokens=20, length_penalty=length_penalty, batch_size=batch)
    got = resident.translate(TEXTS, **kwargs)
    numpy_steps = Translator(tiny_export, provider="cpu", ort_options=OrtOptions(io_binding=False))
    assert numpy_steps.search_decoder is numpy_steps.decoder
    assert got == numpy_steps.translate(TEXTS, **kwargs)


def test_resident_steps_keep_the_cache_as_device_values(tiny_export):
    import onnxruntime as ort

    translator = Translator(tiny_export, provider="cpu")
    steps = translator.search_decoder
    prompts = [translator.encode(t)[0] for t in TEXTS[:3]]
    from modmt.runtime.decoding import left_pad

    ids, mask = left_pad(prompts, translator.pad_id)
    logits, cache = steps.prefill(ids, mask)
    want_logits, want_cache = translator.decoder.prefill(ids, mask)
    assert all(isinstance(v, ort.OrtValue) for v in [logits, *cache])
    np.testing.assert_array_equal(steps.host(logits), want_logits)
    rows = np.array([2, 2, 0])
    for got, want in zip(steps.select(cache, rows), translator.decoder.select(want_cache, rows)):
        np.testing.assert_array_equal(got.numpy(), want)
