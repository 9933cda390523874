"""Batch invariance: a sentence's tokens do not depend on which sentences, directions or requests share
its batch, on every path (standalone fp32, int8, w8a8, int4; a shared base; routed fp32 and int8 bases),
greedy and beam. runtime/decoding.py says what the search does for it. Each of 24 sentences of many
lengths is decoded alone, then inside batches of 8 and of 16: the same tokens, and (where the search
hands back logits) the same bits.
"""
import numpy as np
import pytest

from modmt.export.direction import ExportOptions, export_direction
from modmt.export.shared_base import export_shared_direction
from modmt.runtime.languages import load_registry
from modmt.runtime.routed_translator import RoutedTranslator
from modmt.runtime.translator import Translator

WORDS = {"ja": "猫 は ソファ で 寝て います 。 パン と 水 を 買い ました".split(),
         "en": "the train leaves at noon and then a longer tail follows the dog home".split(),
         "de": "der Hund schläft und die Katze trinkt Wasser am Morgen im Garten".split(),
         "fr": "le chat dort sur le canapé et le chien mange du pain ce soir".split()}
DIRECTIONS = [("ja", "zh", "3:7", 1), ("en", "fr", "1:9", 2), ("de", "en", "7:3", 1), ("fr", "de", "1:0", 1)]


def sentences(count: int = 24) -> list[tuple[str, str, str]]:
    """(src, tgt, text): lengths from 1 to 13 words, so that every batch pads its rows differently."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        src, tgt, _, _ = DIRECTIONS[i % len(DIRECTIONS)]
        words = WORDS[src]
        out.append((src, tgt, " ".join(rng.choice(words, size=1 + (7 * i) % 13))))
    return out


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_pool):
    root = tmp_path_factory.mktemp("invariance")
    registry = load_registry()
    corpus = tiny_pool.parent / "corpus"
    for quantize in ("none", "int8", "w8a8", "int4"):
        export_direction(tiny_pool, "ja", "zh", ExportOptions(weights="3:7", quantize=quantize,
                                                              calibration=corpus if quantize == "w8a8" else None),
                         root / "standalone" / quantize, registry)
    for quantize in ("none", "int8"):
        for src, tgt, w, setting in DIRECTIONS:
            export_shared_direction(tiny_pool, src, tgt, ExportOptions(weights=w, setting=setting, quantize=quantize),
                                    root / quantize / "base", root / quantize / f"{src}-{tgt}", registry)
    return root


def same_alone_and_batched(translate, count, beam):
    """translate(indices, batch_size) -> outputs: each index alone, then all in batches of 8 and 16."""
    alone = [translate([i], 1)[0] for i in range(count)]
    assert len(set(alone)) > count // 3, "outputs differ between sentences: the check can tell rows apart"
    for batch in (8, 16):
        together = translate(list(range(count)), batch)
        assert together == alone, (f"beam {beam}, batch {batch}: rows "
                                   f"{[i for i, (a, b) in enumerate(zip(alone, together)) if a != b]} differ")


@pytest.mark.parametrize("quantize", ["none", "int8", "w8a8", "int4"])
@pytest.mark.parametrize("beam", [1, 3])
def test_a_standalone_export_gives_each_sentence_its_own_tokens(exports, quantize, beam):
    translator = Translator(exports / "standalone" / quantize, provider="cpu")
    texts = [text for _, _, text in sentences()]
    same_alone_and_batched(lambda ids, batch: translator.translate([texts[i] for i in ids], beam=beam, max_new_tokens=8,
                                                                   batch_size=batch), len(texts), beam)


@pytest.mark.parametrize("beam", [1, 3])
def test_a_shared_base_direction_gives_each_sentence_its_own_tokens(exports, beam):
    translator = Translator(exports / "int8" / "ja-zh", provider="cpu")
    texts = [text for _, _, text in sentences()]
    same_alone_and_batched(lambda ids, batch: translator.translate([texts[i] for i in ids], beam=beam, max_new_tokens=8,
                                                                   batch_size=batch), len(texts), beam)


@pytest.mark.parametrize("quantize", ["none", "int8"])
@pytest.mark.parametrize("beam", [1, 3])
def test_a_routed_batch_of_mixed_directions_gives_each_sentence_its_own_tokens(exports, quantize, beam):
    routed = RoutedTranslator([exports / quantize / f"{s}-{t}" for s, t, _, _ in DIRECTIONS], provider="cpu")
    items = sentences()
    same_alone_and_batched(
        lambda ids, batch: routed.translate([items[i][2] for i in ids], directions=[items[i][:2] for i in ids],
                                            beam=beam, max_new_tokens=8, batch_size=batch), len(items), beam)


def test_prefill_logits_are_bitwise_the_same_alone_and_padded(exports):
    """The mechanism, below the tokens: a prompt's logits alone equal its row's in a batch whose longest
    prompt pads it further, to the bit (a width that is a multiple of 64 keeps its keys in their lanes)."""
    from modmt.runtime.decoding import PAD_MULTIPLE, left_pad

    translator = Translator(exports / "standalone" / "none", provider="cpu")
    prompts = [translator.encode(text)[0] for _, _, text in sentences()]
    ids, mask = left_pad(prompts, translator.pad_id, PAD_MULTIPLE)
    together = translator.decoder.prefill(ids, mask)[0]
    for i in range(len(prompts)):
        one_ids, one_mask = left_pad([prompts[i]], translator.pad_id, PAD_MULTIPLE)
        assert np.array_equal(translator.decoder.prefill(one_ids, one_mask)[0][0], together[i]), i


def prefill_widths(decoder) -> list[int]:
    """The widths of the prefills `decoder` runs from now on (recorded on the instance)."""
    widths, prefill = [], decoder.prefill
    decoder.prefill = lambda ids, mask, *args, **kwargs: (widths.append(ids.shape[1]), prefill(ids, mask, *args, **kwargs))[1]
    return widths


@pytest.mark.parametrize("path", ["none", "w8a8", "routed int8"])
def test_translators_pad_to_the_probed_multiple_and_decode_the_same_tokens_as_at_64(exports, path):
    """The offline API pads prompts to the join multiple its translator probed (runtime/join_alignment.py), as
    the server does, not to 64: narrower prefills, every token the same as padding to 64."""
    items = sentences()
    if path.startswith("routed"):
        translator = RoutedTranslator([exports / "int8" / f"{s}-{t}" for s, t, _, _ in DIRECTIONS], provider="cpu")
        translate = lambda: translator.translate([text for _, _, text in items], directions=[i[:2] for i in items],
                                                 beam=3, max_new_tokens=8, batch_size=8)
    else:
        translator = Translator(exports / "standalone" / path, provider="cpu")
        translate = lambda: translator.translate([text for _, _, text in items], beam=3, max_new_tokens=8, batch_size=8)
    m = translator.pad_multiple
    assert m in (1, 2, 4, 8, 16, 32, 64)
    widths = prefill_widths(translator.search_decoder)
    probed = translate()
    probed_widths = list(widths)
    assert probed_widths and all(w % m == 0 for w in probed_widths)
    translator.pad_multiple = 64  # as before the probe was used offline
    widths.clear()
    assert translate() == probed, f"padding to {m} changed tokens"
    if m < 64:
        assert sum(probed_widths) < sum(widths), (m, probed_widths, widths)
