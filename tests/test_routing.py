"""Routing: every direction of a shared base in one session, directions and weights mixed per row."""
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modmt.export.direction import ExportOptions, export_direction
from modmt.export.shared_base import export_all_directions, export_shared_direction
from modmt.runtime.decoding import left_pad
from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import load_registry
from modmt.runtime.routed_translator import RoutedTranslator
from modmt.runtime.translator import Translator

TEXTS = ["猫はソファで寝ています。", "The train leaves at noon, and then a longer tail.", "Der Hund schläft.", "パン"]
# (src, tgt, options): Setting 1 and 2, several weights, so one batch mixes all of them.
DIRECTIONS = [("ja", "zh", ExportOptions(weights="3:7")), ("en", "fr", ExportOptions(weights="1:9", setting=2)),
              ("de", "en", ExportOptions(weights="7:3")), ("fr", "de", ExportOptions(weights="1:0"))]


def routed_prefill(routed, items, texts):
    decoder = routed.batch_decoder(items)
    prompts = [routed.encode(t, d.template)[0] for t, (d, _) in zip(texts, items)]
    ids, mask = left_pad(prompts, routed.pad_id)
    return np.asarray(decoder.host(decoder.prefill(ids, mask)[0])), prompts


def single_prefill(translator, prompt):
    ids, mask = left_pad([prompt], translator.pad_id)
    return translator.decoder.prefill(ids, mask)[0][0]


@pytest.fixture(scope="module")
def bases(tmp_path_factory, tiny_pool):
    """The four directions on an fp32 and an int8 shared base, and standalone fp32 exports of them."""
    root = tmp_path_factory.mktemp("routed")
    registry = load_registry()
    for quantize in ("none", "int8"):
        for src, tgt, options in DIRECTIONS:
            opts = ExportOptions(weights=options.weights, setting=options.setting, quantize=quantize)
            export_shared_direction(tiny_pool, src, tgt, opts, root / quantize / "base", root / quantize / f"{src}-{tgt}",
                                    registry)
    for src, tgt, options in DIRECTIONS:
        export_direction(tiny_pool, src, tgt, options, root / "standalone" / f"{src}-{tgt}", registry)
    return root


def test_a_mixed_batch_gives_each_row_its_standalone_directions_logits_and_tokens(bases):
    routed = RoutedTranslator([bases / "none" / f"{s}-{t}" for s, t, _ in DIRECTIONS], provider="cpu")
    items = routed.requests(4, directions=[(s, t) for s, t, _ in DIRECTIONS])
    got, prompts = routed_prefill(routed, items, TEXTS)
    for row, (src, tgt, _) in enumerate(DIRECTIONS):
        standalone = Translator(bases / "standalone" / f"{src}-{tgt}", provider="cpu")
        np.testing.assert_allclose(got[row], single_prefill(standalone, prompts[row]), atol=1e-4)
        for beam in (1, 3):
            assert routed.translate([TEXTS[row]], src=src, tgt=tgt, beam=beam, max_new_tokens=6) == \
                standalone.translate([TEXTS[row]], beam=beam, max_new_tokens=6)
    # The whole mixed batch at once equals each direction on its own; every batch gets the whole bank, given
    # once as initializers of the session (none is fed per step).
    mixed = routed.translate(TEXTS, directions=[(s, t) for s, t, _ in DIRECTIONS], beam=3, max_new_tokens=6)
    alone = [routed.translate([x], src=s, tgt=t, beam=3, max_new_tokens=6)[0] for x, (s, t, _) in zip(TEXTS, DIRECTIONS)]
    assert mixed == alone
    decoder = routed.batch_decoder(routed.requests(1, src="ja", tgt="zh"))
    assert routed.bank_initializers and set(decoder.constant) == {"modmt_route_coef"} and routed.bank_rank == 32
    one = np.asarray(decoder.host(decoder.prefill(*left_pad([prompts[0]], routed.pad_id))[0]))
    np.testing.assert_allclose(one[0], got[0], atol=1e-5)


def test_weights_chosen_per_request_equal_an_export_with_those_weights(tmp_path, bases, tiny_pool):
    routed = RoutedTranslator([bases / "none" / "ja-zh", bases / "none" / "en-fr"], provider="cpu")
    export_direction(tiny_pool, "ja", "zh", ExportOptions(weights="9:1"), tmp_path / "ja-zh-9-1", load_registry())
    export_direction(tiny_pool, "en", "fr", ExportOptions(weights="3:7", setting=2), tmp_path / "en-fr-3-7",
                     load_registry())
    # Two slots of one direction with different weights, and another direction, in one batch.
    items = routed.requests(3, directions=[("ja", "zh", "9:1"), ("ja", "zh"), ("en", "fr", "3:7")])
    got, prompts = routed_prefill(routed, items, [TEXTS[0], TEXTS[0], TEXTS[1]])
    np.testing.assert_allclose(got[0], single_prefill(Translator(tmp_path / "ja-zh-9-1", provider="cpu"), prompts[0]),
                               atol=1e-4)
    np.testing.assert_allclose(got[1], single_prefill(Translator(bases / "standalone" / "ja-zh", provider="cpu"),
                                                      prompts[1]), atol=1e-4)
    np.testing.assert_allclose(got[2], single_prefill(Translator(tmp_path / "en-fr-3-7", provider="cpu"), prompts[2]),
                               atol=1e-4)
    assert np.abs(got[0] - got[1]).max() > 1e-3  # the weights matter
    for bad, message in (("3-7", "is not IN:OUT"), ("0:0", "zero weight"), ("learned", "exported with fixed weights")):
        with pytest.raises(ModmtError, match=message):
            routed.translate(["x"], src="ja", tgt="zh", w=bad)


def test_a_quantized_routed_base_gives_the_shared_base_directions_tokens(bases):
    routed = RoutedTranslator([bases / "int8" / f"{s}-{t}" for s, t, _ in DIRECTIONS],
                              provider="cpu")
    items = routed.requests(4, directions=[(s, t) for s, t, _ in DIRECTIONS])
    got, prompts = routed_prefill(routed, items, TEXTS)
    for row, (src, tgt, _) in enumerate(DIRECTIONS):
        shared = Translator(bases / "int8" / f"{src}-{tgt}", provider="cpu")
        want = single_prefill(shared, prompts[row])
        np.testing.assert_allclose(got[row], want, atol=1e-4 * np.abs(want).max())
        assert routed.translate([TEXTS[row]], src=src, tgt=tgt, beam=3, max_new_tokens=6) == \
            shared.translate([TEXTS[row]], beam=3, max_new_tokens=6)


def test_a_pool_grown_past_its_base_routes_over_the_bank_as_inputs_and_says_so(tmp_path, tiny_pool, caplog):
    """A base exported while the pool held en and fr only has a fixed bank for their four adapters; with ja, zh
    and de added later, a session of three directions needs six, so it routes over routed.onnx (the bank as
    inputs) and says so in one warning line; a session that fits keeps the fixed bank. Both translate alike."""
    pool = tmp_path / "pool"
    shutil.copytree(tiny_pool, pool)
    meta_path = pool / "pool.json"
    full = json.loads(meta_path.read_text())
    small = {**full, "adapters": {k: v for k, v in full["adapters"].items() if k.split("/")[1] in ("en", "fr")}}
    meta_path.write_text(json.dumps(small))
    registry = load_registry()
    export_shared_direction(pool, "en", "fr", ExportOptions(), tmp_path / "base", tmp_path / "en-fr", registry)
    meta_path.write_text(json.dumps(full))  # the pool grows
    for src, tgt in (("ja", "zh"), ("de", "en")):
        export_shared_direction(pool, src, tgt, ExportOptions(), tmp_path / "base", tmp_path / f"{src}-{tgt}", registry)
    directions = [tmp_path / d for d in ("en-fr", "ja-zh", "de-en")]
    with caplog.at_level(logging.WARNING, logger="modmt.runtime.routed_translator"):
        grown = RoutedTranslator(directions, provider="cpu")
    assert not grown.bank_initializers and grown.bank_rank > grown.routed["fixed_bank_rank"]
    assert "export the base again from the grown pool" in caplog.text
    fits = RoutedTranslator(directions[:1], provider="cpu")
    assert fits.bank_initializers
    assert grown.translate(TEXTS[:2], src="en", tgt="fr", beam=3, max_new_tokens=6) == \
        fits.translate(TEXTS[:2], src="en", tgt="fr", beam=3, max_new_tokens=6)


def test_adapters_of_different_ranks_share_one_bank(tmp_path, bases, tiny_pool):
    """LoRA_out(zh) padded to rank 8 (zero factors, alpha doubled: the same delta) next to rank-4 adapters."""
    from safetensors.numpy import save_file

    from modmt.runtime.safetensors_np import read_safetensors

    pool = tmp_path / "pool"
    shutil.copytree(tiny_pool, pool)
    adapter = pool / "out" / "zh"
    config = json.loads((adapter / "adapter_config.json").read_text())
    rank = config["r"]
    config["r"], config["lora_alpha"] = 2 * rank, 2 * config["lora_alpha"]
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    padded = {}
    for key, array in read_safetensors(adapter / "adapter_model.safetensors").items():
        widths = ((0, rank), (0, 0)) if ".lora_A." in key else ((0, 0), (0, rank))
        padded[key] = np.pad(array, widths)
    save_file(padded, str(adapter / "adapter_model.safetensors"))
    registry = load_registry()
    for src, tgt in (("ja", "zh"), ("de", "en")):
        export_shared_direction(pool, src, tgt, ExportOptions(weights="3:7" if tgt == "zh" else "7:3"),
                                tmp_path / "base", tmp_path / f"{src}-{tgt}", registry)
    routed = RoutedTranslator([tmp_path / "ja-zh", tmp_path / "de-en"], provider="cpu")
    assert sorted(a.rank for a in routed.adapters) == [rank, rank, rank, 2 * rank] and routed.bank_rank == 5 * rank
    items = routed.requests(2, directions=[("ja", "zh"), ("de", "en")])
    got, prompts = routed_prefill(routed, items, [TEXTS[0], TEXTS[2]])
    for row, (src, tgt) in enumerate((("ja", "zh"), ("de", "en"))):
        want = single_prefill(Translator(bases / "standalone" / f"{src}-{tgt}", provider="cpu"), prompts[row])
        np.testing.assert_allclose(got[row], want, atol=1e-4)


def test_routing_errors_are_one_clear_line(tmp_path, bases, tiny_pool):
    routed = RoutedTranslator([bases / "none" / "ja-zh"], provider="cpu")
    with pytest.raises(ModmtError, match="no direction zh->ja here; this process holds ja-zh"):
        routed.translate(["x"], src="zh", tgt="ja")
    with pytest.raises(ModmtError, match="is not a direction on a shared base"):
        RoutedTranslator([bases / "standalone" / "ja-zh"], provider="cpu")
    with pytest.raises(ModmtError, match="one routed session holds the directions of one base"):
        RoutedTranslator([bases / "none" / "ja-zh", bases / "int8" / "en-fr"], provider="cpu")
    with pytest.raises(ModmtError, match="two exports of ja->zh"):
        RoutedTranslator([bases / "none" / "ja-zh", bases / "none" / "ja-zh"], provider="cpu")
    # A base exported before routing existed: told to export it again, not a KeyError.
    old = tmp_path / "old"
    shutil.copytree(bases / "none", old)
    manifest = json.loads((old / "base" / "modmt.json").read_text())
    del manifest["routed"]
    (old / "base" / "modmt.json").write_text(json.dumps(manifest))
    direction = json.loads((old / "ja-zh" / "modmt.json").read_text())
    from modmt.runtime.fingerprint import sha256_file

    direction["base_manifest_sha256"] = sha256_file(old / "base" / "modmt.json")
    (old / "ja-zh" / "modmt.json").write_text(json.dumps(direction))
    with pytest.raises(ModmtError, match="has no routed graph .* export it again"):
        RoutedTranslator([old / "ja-zh"], provider="cpu", verify="size")


@pytest.fixture(scope="module")
def all_directions(tmp_path_factory, tiny_pool):
    base = tmp_path_factory.mktemp("all") / "base"
    outs = export_all_directions(tiny_pool, ExportOptions(quantize="int8"), base, load_registry())
    assert len(outs) == 20 and all((o / "modmt.json").exists() for o in outs)
    return base


def modmt_translate(*args, stdin=None):
    return subprocess.run([str(Path(sys.executable).parent / "modmt-translate"), *args, "--provider", "cpu"], input=stdin,
                          capture_output=True, text=True)


def test_translate_cli_routes_a_mixed_tsv_file_and_resumes(tmp_path, all_directions):
    lines = [f"{s}\t{t}\t{x}" for s, t, x in (("ja", "zh", TEXTS[0]), ("en", "fr", TEXTS[1]), ("de", "en", TEXTS[2]),
                                               ("zh", "ja", TEXTS[3]))] * 3
    lines[5] = ""  # an empty line stays an empty output line
    (tmp_path / "in.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = [str(all_directions), "-i", str(tmp_path / "in.tsv"), "--beam", "2", "--max-new-tokens", "5"]
    run = modmt_translate(*args, "-o", str(tmp_path / "out.txt"))
    assert run.returncode == 0, run.stderr
    out = (tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")
    assert len(out) == len(lines) + 1 and out[5] == "" and out[-1] == ""
    routed = RoutedTranslator([all_directions], provider="cpu")
    want = routed.translate([l.split("\t")[2] for l in lines if l],
                            directions=[tuple(l.split("\t")[:2]) for l in lines if l], beam=2, max_new_tokens=5)
    assert [o for o, l in zip(out, lines) if l] == [" ".join(w.splitlines()) for w in want]
    # Killed after 4 lines (the 5th half written): --resume finishes the same file.
    (tmp_path / "part.txt").write_text("\n".join(out[:4]) + "\npartial", encoding="utf-8")
    run = modmt_translate(*args, "-o", str(tmp_path / "part.txt"), "--resume")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "part.txt").read_text(encoding="utf-8") == (tmp_path / "out.txt").read_text(encoding="utf-8")
    # Plain text with --src/--tgt and weights for the file.
    run = modmt_translate(str(all_directions), "--src", "ja", "--tgt", "zh", "--w", "1:9", "--beam", "1",
                          "--max-new-tokens", "5", stdin=TEXTS[0] + "\n")
    assert run.returncode == 0 and run.stdout == routed.translate([TEXTS[0]], src="ja", tgt="zh", w="1:9", beam=1,
                                                                   max_new_tokens=5)[0] + "\n"


@pytest.mark.parametrize("line, message", [("ja\tzh", "line 2: expected src<TAB>tgt<TAB>text, got 2 field"),
                                           ("ja\tko\tx", "line 2: .*unknown language|line 2: no direction"),
                                           ("ja\tja\tx", "line 2: no direction ja->ja")])
def test_a_bad_tsv_line_stops_before_anything_is_written(tmp_path, all_directions, line, message):
    (tmp_path / "in.tsv").write_text(f"ja\tzh\t{TEXTS[0]}\n{line}\n", encoding="utf-8")
    run = modmt_translate(str(all_directions), "-i", str(tmp_path / "in.tsv"), "-o", str(tmp_path / "out.txt"))
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    import re

    assert re.search(message, run.stderr), run.stderr
    assert not (tmp_path / "out.txt").exists() or (tmp_path / "out.txt").read_text() == ""


def test_src_tgt_w_on_a_folded_export_is_one_line(tmp_path, tiny_pool):
    """--src/--tgt/--w choose a direction and weights per line: only a routed session takes them."""
    export_direction(tiny_pool, "ja", "zh", ExportOptions(weights="3:7"), tmp_path / "ja-zh", load_registry())
    run = modmt_translate(str(tmp_path / "ja-zh"), "--w", "1:9", stdin=TEXTS[0] + "\n")
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "--src, --tgt and --w need directions on one shared base" in run.stderr, run.stderr


@pytest.mark.parametrize("args, message", [(["--batch", "1" + "0" * 20], "--batch.*not in the range 1<=x<=1024"),
                                           (["--threads", "100000"], "--threads.*100000 is not in the range 1<=x<="),
                                           (["--beam", "65"], "--beam.*1<=x<=64"),
                                           (["--max-new-tokens", "99999999"], "--max-new-tokens.*<=32768")])
def test_numeric_options_have_upper_bounds(tmp_path, args, message):
    import re

    run = modmt_translate(str(tmp_path), *args, stdin="x\n")
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and re.search(message, run.stderr), \
        run.stderr


@pytest.mark.parametrize("args, message", [
    (["--all-directions", "--pool", "/nonexistent"], "--all-directions exports every direction .* give --shared-base"),
    (["ja", "zh", "--all-directions", "--pool", "/p", "--shared-base", "/b"], "give --shared-base and no SRC, TGT"),
    (["--pool", "/nonexistent"], "give SRC and TGT .* or --all-directions with --shared-base")])
def test_export_all_directions_misuse_is_one_line(args, message):
    import re

    run = subprocess.run([str(Path(sys.executable).parent / "modmt-export"), *args], capture_output=True, text=True)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and re.search(message, run.stderr), \
        run.stderr
