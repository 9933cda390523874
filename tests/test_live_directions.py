"""Weights tuned per direction (modmt-tune) and directions added to a running `modmt serve` (kill -HUP)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from modmt.export.direction import ExportOptions
from modmt.export.shared_base import export_all_directions
from modmt.runtime.decoding import DecodeSettings
from modmt.runtime.languages import load_registry
from modmt.runtime.merge_weights import MergeWeights, parse_weights

BIN = Path(sys.executable).parent
TEXTS = ["The package provides tools.", "A library for parsing.", "Documentation files for the program."]


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_pool):
    root = tmp_path_factory.mktemp("live")
    export_all_directions(tiny_pool, ExportOptions(quantize="int8"), root / "base", load_registry())
    return root / "base"


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    from modmt.train.tiny import write_tiny_corpus

    return write_tiny_corpus(tmp_path_factory.mktemp("tune-corpus") / "corpus")


def test_tuned_weights_are_recorded_in_the_base_and_used_where_a_request_names_none(tmp_path, base, corpus_dir):
    from modmt.benchmarks.weight_tuning import tune_weights
    from modmt.runtime.routed_translator import RoutedTranslator
    from modmt.train.corpus import open_corpus

    tuned_base = tmp_path / "base"
    shutil.copytree(base, tuned_base)
    result = tune_weights(tuned_base, open_corpus(corpus_dir, load_registry()), "dev", [("en", "fr"), ("ja", "zh")],
                          grid=("1:9", "9:1"), limit=3, settings=DecodeSettings(beam=1, max_new_tokens=6))
    record = json.loads((tuned_base / "tuned_weights.json").read_text())
    assert set(record["directions"]) == {"en-fr", "ja-zh"} and record["split"] == "dev" and record["segments"] == 3
    for entry in record["directions"].values():
        assert [t["w"] for t in entry["trace"]] == ["1:9", "9:1"]
        assert entry["w"] == max(entry["trace"], key=lambda t: (t["chrf"], -t["off_target"]))["w"]
        assert 0 <= entry["dev"]["off_target"] <= 1
    assert result["directions"] == record["directions"]

    routed = RoutedTranslator([tuned_base], provider="cpu")
    chosen = parse_weights(record["directions"]["en-fr"]["w"])
    assert routed.requests(1, "en", "fr")[0][1] == chosen                       # no w: the tuned weights
    assert routed.requests(1, "en", "fr", "2:8")[0][1] == parse_weights("2:8")  # an explicit w wins
    assert routed.requests(1, "fr", "en")[0][1] == routed.direction("fr", "en").weights  # untuned: the export's
    settings = DecodeSettings(beam=2, max_new_tokens=6)
    assert routed.translate(TEXTS, "en", "fr", settings=settings) == \
        routed.translate(TEXTS, "en", "fr", w=record["directions"]["en-fr"]["w"], settings=settings)

    # A direction export on the base, opened on its own (modmt-translate DIR, Ray), folds the tuned weights in.
    from modmt.runtime.decoding import left_pad
    from modmt.runtime.translator import Translator

    folded = Translator(tuned_base / "directions" / "en-fr", provider="cpu")
    untuned = Translator(base / "directions" / "en-fr", provider="cpu")
    assert folded.tuned[0] == chosen and untuned.tuned is None
    ids, mask = left_pad([folded.encode(TEXTS[0])[0]], folded.pad_id)
    assert MergeWeights.from_json(untuned.manifest["weights"]) != chosen  # the export's 3:7 is not in the grid
    assert not np.array_equal(np.asarray(folded.decoder.prefill(ids, mask)[0]),
                              np.asarray(untuned.decoder.prefill(ids, mask)[0]))

    # A second run over other directions keeps the first run's; an unreadable file serves the exported weights.
    tune_weights(tuned_base, open_corpus(corpus_dir, load_registry()), "dev", [("fr", "de")], grid=("3:7",), limit=2,
                 settings=DecodeSettings(beam=1, max_new_tokens=4))
    assert set(json.loads((tuned_base / "tuned_weights.json").read_text())["directions"]) == {"en-fr", "ja-zh", "fr-de"}
    (tuned_base / "tuned_weights.json").write_text("{not json")
    assert RoutedTranslator([tuned_base], provider="cpu").requests(1, "en", "fr")[0][1] == \
        routed.direction("en", "fr").weights


@pytest.mark.parametrize("args, message", [
    (["--grid", "1:9,x"], "is not IN:OUT"),
    (["--grid", "learned"], "--grid takes IN:OUT ratios"),
    (["--directions", "en-xx"], "xx"),
])
def test_modmt_tune_refuses_bad_input_in_one_line(base, corpus_dir, args, message):
    run = subprocess.run([str(BIN / "modmt-tune"), str(base), "--data", str(corpus_dir), *args],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_new_language_reaches_a_running_server_on_hangup(tmp_path, base):
    """A real `modmt serve` process: Japanese's directions added to its base and a HUP make /languages list
    Japanese, the request in flight finishes, existing directions answer byte for byte as before, and a broken
    direction added next leaves the set serving with one log line."""
    live = tmp_path / "base"
    shutil.copytree(base, live)
    held = tmp_path / "held"
    held.mkdir()
    for d in (live / "directions").iterdir():
        if "ja" in d.name.split("-"):
            d.rename(held / d.name)
    port, log = free_port(), tmp_path / "serve.log"
    with open(log, "w") as err:
        server = subprocess.Popen([str(BIN / "modmt"), "serve", str(live), "--port", str(port), "--beam", "2",
                                   "--max-new-tokens", "8", "--provider", "cpu", "--log-every", "3600"],
                                  stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}"
    try:
        def healthy():
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                assert server.poll() is None, log.read_text()
                return False

        wait_for(healthy, 120, "the server to start")
        codes = lambda: {entry["code"] for entry in httpx.get(f"{url}/languages").json()}  # noqa: E731
        assert "ja" not in codes()
        ask = lambda src, tgt, q=TEXTS: httpx.post(f"{url}/translate", json={  # noqa: E731
            "q": q, "source": src, "target": tgt}, timeout=120)
        before = {pair: ask(*pair).json()["translatedText"] for pair in (("en", "fr"), ("de", "zh"))}
        assert ask("en", "ja").status_code == 400

        in_flight = {}
        long = threading.Thread(target=lambda: in_flight.update(answer=ask("fr", "en", TEXTS * 8)))
        long.start()
        for d in held.iterdir():
            d.rename(live / "directions" / d.name)
        server.send_signal(signal.SIGHUP)
        wait_for(lambda: "ja" in codes(), 120, "Japanese in /languages")
        long.join(120)
        assert in_flight["answer"].status_code == 200 and len(in_flight["answer"].json()["translatedText"]) == 24
        assert "reloaded: 20 directions; new: " in log.read_text()
        for pair, answer in before.items():
            assert ask(*pair).json()["translatedText"] == answer, pair
        assert ask("en", "ja").status_code == 200 and ask("ja", "de").status_code == 200
        weights = {(d["source"], d["target"]): d for d in httpx.get(f"{url}/directions").json()}
        assert len(weights) == 20 and weights[("en", "ja")]["tuned"] is False and weights[("en", "ja")]["w"]
        guard = [line for line in httpx.get(f"{url}/metrics").text.splitlines()
                 if line.startswith('modmt_guard_sentences_total{source="en",target="fr"')]
        assert guard and sum(float(line.rsplit(" ", 1)[1]) for line in guard) >= 2 * len(TEXTS)  # every sentence

        broken = live / "directions" / "fr-ja-copy"
        shutil.copytree(live / "directions" / "fr-ja", broken)
        (broken / "modmt.json").write_text('{"kind": ')
        server.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload failed" in log.read_text(), 120, "the failed reload's line")
        failed = [line for line in log.read_text().splitlines() if "reload failed" in line]
        assert len(failed) == 1 and "still serving the 20 directions" in failed[0]
        assert len(codes()) == 5 and ask("en", "fr").json()["translatedText"] == before[("en", "fr")]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        if os.environ.get("MODMT_TEST_LOG"):
            print(log.read_text())
