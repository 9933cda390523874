"""`modmt serve` over HTTP on a free port: a real LibreTranslate client, 32 concurrent clients, bad requests,
continuous batching (short requests behind long ones, answers equal to the offline API), the whole API."""
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from modmt.export.direction import ExportOptions, export_direction
from modmt.export.shared_base import export_all_directions
from modmt.runtime.languages import load_registry
from modmt.runtime.served_directions import load_backends
from modmt.runtime.server_app import ServerSettings, create_app
from modmt.runtime.decoding import PAD_MULTIPLE, DecodeSettings, RunningBatch
from modmt.runtime.join_alignment import CANDIDATES
from modmt.runtime.server_batcher import Batcher, Busy

DECODING = {"beam": 2, "max_new_tokens": 5}
SEARCH = DecodeSettings(**DECODING)
TEXTS = ["猫はソファで寝ています。", "The train leaves at noon.", "Der Hund schläft.", "パン", "Bonjour tout le monde"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn in a thread, as `modmt serve` runs it."""

    def __init__(self, backends, settings=ServerSettings(), max_queue=256, max_batch=8, max_wait_ms=5.0, registry=None):
        import uvicorn

        self.batcher = Batcher(backends, SEARCH, max_batch, max_wait_ms, max_queue, log_every_s=0.5)
        app = create_app(self.batcher, registry or load_registry(), settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=10))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_pool):
    """Every direction of the pool on an int8 shared base, plus one standalone (folded) export."""
    root = tmp_path_factory.mktemp("served")
    export_all_directions(tiny_pool, ExportOptions(quantize="int8"), root / "base", load_registry())
    return root


@pytest.fixture(scope="module")
def backends(served):
    return load_backends([str(served / "base")], provider="cpu")


@pytest.fixture(scope="module")
def server(backends):
    with Server(backends) as running:
        yield running


def direct(backends, text, src, tgt, w=None):
    """What the offline Python API gives for text, sentence by sentence as the server cuts it."""
    from modmt.runtime.text_pieces import join_pieces, pieces_of, split_text

    backend = backends[(src, tgt)]
    segments = split_text(text, src, backend.count_tokens, 512)
    pieces = pieces_of(segments)
    return join_pieces(segments, backend.translate(pieces, [(src, tgt, w)] * len(pieces), SEARCH))


def test_a_libretranslate_client_translates_through_modmt(server, backends):
    from libretranslatepy import LibreTranslateAPI

    client = LibreTranslateAPI(server.url + "/")
    assert client.translate(TEXTS[0], "ja", "zh") == direct(backends, TEXTS[0], "ja", "zh")
    languages = client.languages()
    assert {l["code"] for l in languages} == {"en", "fr", "de", "ja", "zh"}
    assert next(l for l in languages if l["code"] == "ja")["targets"] == ["de", "en", "fr", "zh"]
    keyed = LibreTranslateAPI(server.url, api_key="anything")  # accepted and ignored without --api-keys
    assert keyed.translate(TEXTS[1], "en", "fr") == direct(backends, TEXTS[1], "en", "fr")


def test_json_form_and_query_string_parameters_and_lists_and_html(server, backends):
    want = direct(backends, TEXTS[2], "de", "en")
    params = {"q": TEXTS[2], "source": "de", "target": "en"}
    assert httpx.post(server.url + "/translate", json=params).json() == {"translatedText": want}
    assert httpx.post(server.url + "/translate", data=params).json() == {"translatedText": want}
    assert httpx.post(server.url + "/translate", params=params).json() == {"translatedText": want}
    assert httpx.post(server.url + "/translate", files={k: (None, v) for k, v in params.items()}).json() == \
        {"translatedText": want}
    many = httpx.post(server.url + "/translate", json={**params, "q": [TEXTS[2], "", TEXTS[2]]}).json()
    assert many == {"translatedText": [want, "", want]}
    # Weights per request (modmt's extension), on a shared base.
    w = httpx.post(server.url + "/translate", json={**params, "w": "1:9"}).json()["translatedText"]
    assert w == direct(backends, TEXTS[2], "de", "en", "1:9")
    html = httpx.post(server.url + "/translate", json={**params, "q": f"<p class='x'>{TEXTS[2]} <b>{TEXTS[2]}</b></p>",
                                                      "format": "html"}).json()["translatedText"]
    from html import escape

    assert html == f"<p class='x'>{escape(want, quote=False)} <b>{escape(want, quote=False)}</b></p>"
    settings = httpx.get(server.url + "/frontend/settings").json()
    assert settings["charLimit"] == 5000 and settings["keyRequired"] is False
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}  # LibreTranslate's shape
    assert len(httpx.get(server.url + "/languages").json()) == 5


def test_32_concurrent_clients_each_get_their_own_answer_once(server, backends):
    from itertools import permutations

    pairs = list(permutations(["en", "fr", "de", "ja", "zh"], 2))
    jobs = [(f"{TEXTS[i % len(TEXTS)]} {i}", *pairs[i % len(pairs)]) for i in range(64)]
    before = dict(server.batcher.stats)

    async def run_all():
        async with httpx.AsyncClient(base_url=server.url, timeout=120,
                                     limits=httpx.Limits(max_connections=32)) as client:
            semaphore = asyncio.Semaphore(32)

            async def one(text, src, tgt):
                async with semaphore:
                    r = await client.post("/translate", json={"q": text, "source": src, "target": tgt})
                    return r.status_code, r.json()

            return await asyncio.gather(*(one(*job) for job in jobs))

    answers = asyncio.run(run_all())
    assert all(status == 200 for status, _ in answers)
    # Batched with strangers and other directions, each answer is what its own text alone gives.
    for (text, src, tgt), (_, body) in zip(jobs, answers):
        assert body["translatedText"] == direct(backends, text, src, tgt), (text, src, tgt)
    after = server.batcher.stats
    from modmt.runtime.text_pieces import pieces_of, split_text

    sentences = sum(len(pieces_of(split_text(text, src, backends[(src, tgt)].count_tokens, 512)))
                    for text, src, tgt in jobs)
    assert after["requests"] - before["requests"] == 64 and after["sentences"] - before["sentences"] == sentences
    # Requests did share batches: joined, and fewer steps than their sentences would take one by one.
    assert after["joins"] > before["joins"]
    assert after["steps"] - before["steps"] < sentences * DECODING["max_new_tokens"]
    # Short requests admitted together are prefilled together: fewer prefills than requests.
    assert after["batches"] - before["batches"] < 64
    scraped = httpx.get(server.url + "/metrics").text  # and Prometheus sees the same counts
    assert f"modmt_sentences_total" in scraped and 'code="200"' in scraped


@pytest.mark.parametrize("request_kwargs, status, message", [
    ({"json": {"q": "x", "source": "xx", "target": "en"}}, 400, "xx is not supported"),
    ({"json": {"q": "", "source": "de", "target": "en"}}, 400, "missing q parameter"),
    ({"json": {"source": "de", "target": "en"}}, 400, "missing q parameter"),
    ({"json": {"q": "x", "source": "auto", "target": "xx"}}, 400, "xx is not supported"),
    ({"json": {"q": "x", "source": "de", "target": "en", "alternatives": 4}}, 400, r"alternatives \(4\) exceeds"),
    ({"json": {"q": "x", "source": "de", "target": "en", "alternatives": "many"}}, 400, "whole number"),
    ({"json": {"q": "x", "source": "de", "target": "de"}}, 400, "de->de is not served here"),
    ({"json": {"q": "x", "source": "de", "target": "en", "format": "pdf"}}, 400, "format is text or html"),
    ({"json": {"q": "x", "source": "de", "target": "en", "w": "3-7"}}, 400, "is not IN:OUT"),
    ({"json": {"q": "x" * 5001, "source": "de", "target": "en"}}, 400, r"request \(5001\) exceeds text limit"),
    ({"json": {"q": ["x"] * 65, "source": "de", "target": "en"}}, 400, r"request \(65\) exceeds text limit \(64\)"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, 400, "must be an object"),
    ({"content": b"x" * (2 << 20), "headers": {"content-type": "application/json"}}, 413, "request body over"),
])
def test_bad_requests_get_libretranslate_errors_never_a_500(server, request_kwargs, status, message):
    import re

    response = httpx.post(server.url + "/translate", **request_kwargs)
    assert response.status_code == status and re.search(message, response.json()["error"]), response.text
    assert httpx.post(server.url + "/detect", data={"source": "x"}).status_code == 400  # no q


def test_api_keys_are_required_when_given(backends):
    with Server(backends, ServerSettings(api_keys=frozenset({"s3cret"}))) as running:
        params = {"q": TEXTS[3], "source": "ja", "target": "en"}
        for key in (None, "wrong", ""):
            r = httpx.post(running.url + "/translate", data={**params, **({"api_key": key} if key is not None else {})})
            assert r.status_code == 403 and r.json() == {"error": "Invalid API key"}
        r = httpx.post(running.url + "/translate", data={**params, "api_key": "s3cret"})
        assert r.status_code == 200 and r.json()["translatedText"] == direct(backends, TEXTS[3], "ja", "en")
        assert httpx.get(running.url + "/frontend/settings").json()["keyRequired"] is True


class SlowBackend:
    """A fake model, the backend interface the batcher drives: it answers a text in capitals, letter by letter,
    and blocks each decoder call until released: a queue that stays full for as long as a test needs."""

    stop_ids, pad_id = {0}, 0

    def __init__(self, seconds_per_row: float = 0.0):
        from modmt.runtime.target_guard import TargetGuard

        self.release, self.calls = threading.Event(), 0
        self.tokenizer, self.seconds_per_row = self, seconds_per_row
        self.guard = TargetGuard(["en", "fr"])

    def check(self, src, tgt, w):
        pass

    def item(self, src, tgt, w):
        return (src, tgt)

    def encode(self, text, item):  # prompt tokens are 256 + the character, answers the character itself
        return [256 + ord(c) for c in text.upper()], len(text)

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)

    def count_tokens(self, text):
        return len(text)

    def decoder_for(self, rows):
        return self

    def _logits(self, cache):
        import numpy as np

        logits = np.zeros((cache.shape[0], 512), np.float32)
        for r, row in enumerate(cache[:, 0, :, 0].astype(int)):
            prompt, said = [t - 256 for t in row if t >= 256], [t for t in row if 0 < t < 256]
            logits[r, prompt[len(said)] if len(said) < len(prompt) else 0] = 1.0
        return logits

    def prefill(self, ids, mask):
        self.calls += 1
        self.release.wait(30)
        cache = (ids * mask).astype("float32")[:, None, :, None]
        return self._logits(cache), [cache]

    def step(self, tokens, mask, cache):
        import numpy as np

        self.release.wait(30)
        time.sleep(self.seconds_per_row * len(tokens))  # a step costs more the more rows it runs
        cache = [np.concatenate([cache[0], tokens.astype("float32")[:, None, None, None]], axis=2)]
        return self._logits(cache[0]), cache

    @staticmethod
    def select(cache, rows):
        return [c[rows] for c in cache]


@pytest.mark.parametrize("beam", [1, 3])
def test_batches_padded_joined_and_trimmed_at_the_probed_multiple_decode_as_alone(backends, beam):
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

    def batch(indices, pad_multiple=PAD_MULTIPLE):
        return RunningBatch(backend.decoder_for, [items[i] for i in indices], [prompts[i] for i in indices],
                            settings, backend.stop_ids, backend.pad_id, pad_multiple)

    def tokens(finished):
        return {items.index(f.item): f.tokens for f in finished}

    alone = {}
    for i in range(len(work)):
        alone.update(tokens(batch([i]).run()))
    # As the server runs them: prompts padded to the join multiple (alone: to PAD_MULTIPLE, as offline).
    early, finished = batch([0, 1], m), []
    finished += early.finished_at_start
    for _ in range(m):  # m steps ahead (plus what the prompts' lengths make): the caches line up modulo m
        finished += early.step()
    late = batch([2, 3], m)
    assert not early.done and (early.width - late.width) % m == 0
    assert early.can_join(late, m)
    early.join(late)
    finished += late.finished_at_start
    trimmed = 0
    while not early.done:  # as the server steps it: the columns no row attends to any more are dropped
        finished += early.step()
        width = early.width
        cut = early.trim(m, at_least=1)
        assert early.width == width - cut and cut % m == 0 and early.mask.shape[1] == width - cut
        trimmed += cut
    assert trimmed > 0 and tokens(finished) == alone


def test_an_overfull_queue_is_refused_at_once_and_nothing_is_lost():
    backend = SlowBackend()
    with Server({("en", "fr"): backend}, max_queue=4, max_batch=2, max_wait_ms=1) as running:
        with ThreadPoolExecutor(8) as pool:
            first = [pool.submit(httpx.post, running.url + "/translate",
                                 json={"q": f"t{i}", "source": "en", "target": "fr"}, timeout=60) for i in range(4)]
            time.sleep(1.0)  # the four are queued or decoding: the queue is full
            started = time.monotonic()
            refused = httpx.post(running.url + "/translate", json={"q": "late", "source": "en", "target": "fr"})
            assert refused.status_code == 503 and "queue is full" in refused.json()["error"]
            assert time.monotonic() - started < 2  # at once, not after a timeout
            backend.release.set()
            assert [f.result().json()["translatedText"] for f in first] == [f"T{i}" for i in range(4)]


def test_shutdown_finishes_decoding_work_and_refuses_what_is_left():
    backend = SlowBackend()
    batcher = Batcher({("en", "fr"): backend}, DecodeSettings(1, 16), max_batch=1, max_wait_ms=0, max_queue=10)
    batcher.start()

    async def scenario():
        first = asyncio.ensure_future(batcher.translate(["a"], [("en", "fr", None)]))
        await asyncio.sleep(0.1)  # "a" is decoding (its prefill holds the worker) ...
        second = asyncio.ensure_future(batcher.translate(["b"], [("en", "fr", None)]))
        await asyncio.sleep(0.3)  # ... and "b" queued
        closing = threading.Thread(target=batcher.close, kwargs={"timeout": 0.2})
        closing.start()
        await asyncio.sleep(0.5)
        with pytest.raises(Busy, match="shutting down"):
            await batcher.translate(["c"], [("en", "fr", None)])
        backend.release.set()
        closing.join()
        return await first, await asyncio.gather(second, return_exceptions=True)

    done, (left,) = asyncio.run(scenario())
    assert done == ["A"]
    assert isinstance(left, Busy)  # still queued when the deadline passed: refused, not lost in silence


def test_standalone_exports_are_served_beside_a_shared_base(tmp_path, served, tiny_pool):
    export_direction(tiny_pool, "ja", "zh", ExportOptions(weights="3:7"), tmp_path / "ja-zh", load_registry())
    from modmt.runtime.errors import ModmtError

    with pytest.raises(ModmtError, match="ja->zh is given twice"):
        load_backends([str(served / "base"), str(tmp_path / "ja-zh")], provider="cpu")
    served_alone = load_backends([str(tmp_path / "ja-zh")], provider="cpu")
    with Server(served_alone) as running:
        r = httpx.post(running.url + "/translate", json={"q": TEXTS[0], "source": "ja", "target": "zh"})
        assert r.json()["translatedText"] == direct(served_alone, TEXTS[0], "ja", "zh")
        r = httpx.post(running.url + "/translate", json={"q": TEXTS[0], "source": "ja", "target": "zh", "w": "1:9"})
        assert r.status_code == 400 and "weights were fixed" in r.json()["error"]
        assert json.loads(httpx.get(running.url + "/languages").text) == [{"code": "ja", "name": "Japanese",
                                                                         "targets": ["zh"]}]


@pytest.mark.parametrize("keys, message", [(None, "cannot read --api-keys"), ("# only a comment\n\n", "holds no keys")])
def test_serve_cli_refuses_a_bad_api_keys_file_or_a_busy_port_in_one_line(tmp_path, served, keys, message):
    import subprocess
    import sys
    from pathlib import Path

    modmt = str(Path(sys.executable).parent / "modmt")
    if keys is not None:
        (tmp_path / "keys").write_text(keys, encoding="utf-8")
    run = subprocess.run([modmt, "serve", str(served / "base"), "--api-keys", str(tmp_path / "keys"),
                          "--provider", "cpu"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.strip().splitlines()[-1].startswith("modmt: error:") and \
        message in run.stderr, run.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        run = subprocess.run([modmt, "serve", str(served / "base"), "--port", str(busy.getsockname()[1]),
                              "--provider", "cpu"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "cannot listen on 127.0.0.1" in run.stderr.strip().splitlines()[-1], run.stderr


def test_a_short_request_is_answered_while_a_long_one_decodes():
    """Continuous batching: the short request joins between steps and leaves when done; it does not wait
    for the long request's batch to finish (the old queue of whole batches answered it after)."""
    backend = SlowBackend(seconds_per_row=0.002)
    backend.release.set()
    batcher = Batcher({("en", "fr"): backend}, DecodeSettings(2, 64), max_batch=32, max_wait_ms=0, max_queue=64)
    batcher.start()
    long_texts = [f"a long paragraph number {i:02d} to decode" for i in range(16)]

    async def scenario():
        done = []

        async def ask(name, texts):
            result = await batcher.translate(texts, [("en", "fr", None)] * len(texts))
            done.append(name)
            return result

        long = asyncio.ensure_future(ask("long", long_texts))
        await asyncio.sleep(0.2)  # the long one is decoding
        assert not long.done()
        short = await ask("short", ["hi"])
        assert not long.done(), "the short request waited for the long one"
        return short, await long, done

    short, long, done = asyncio.run(scenario())
    batcher.close()
    assert done == ["short", "long"]
    assert short == ["HI"] and long == [t.upper() for t in long_texts]  # each answer whole and its own


def test_a_cancelled_request_frees_its_rows_and_the_queue():
    backend = SlowBackend(seconds_per_row=0.002)
    backend.release.set()
    batcher = Batcher({("en", "fr"): backend}, DecodeSettings(1, 200), max_batch=8, max_wait_ms=0, max_queue=64)
    batcher.start()

    async def scenario():
        texts = ["x" * 150] * 12  # 8 decoding, 4 queued
        work = asyncio.ensure_future(batcher.translate(texts, [("en", "fr", None)] * len(texts)))
        deadline = time.monotonic() + 10
        while batcher.in_flight < 8:  # admitted a group at a time
            assert time.monotonic() < deadline, batcher.in_flight
            await asyncio.sleep(0.05)
        assert batcher.in_flight == 8 and batcher.pending == 12
        work.cancel()
        deadline = time.monotonic() + 10
        while batcher.pending or batcher.in_flight:
            assert time.monotonic() < deadline, (batcher.pending, batcher.in_flight)
            await asyncio.sleep(0.05)
        return await batcher.translate(["ok"], [("en", "fr", None)])  # and the server goes on

    assert asyncio.run(scenario()) == ["OK"]
    batcher.close()


def test_alternatives_auto_detect_and_the_rest_of_libretranslates_api(server, backends):
    fr = "Bonjour tout le monde, comment allez-vous aujourd'hui ?"
    r = httpx.post(server.url + "/translate", json={"q": fr, "source": "auto", "target": "en", "alternatives": 3})
    body = r.json()
    assert r.status_code == 200 and body["detectedLanguage"]["language"] == "fr", body
    assert 0 < body["detectedLanguage"]["confidence"] <= 100
    assert body["translatedText"] == direct(backends, fr, "fr", "en")
    # beam 2: at most one other finished hypothesis, never the best again
    assert isinstance(body["alternatives"], list) and len(body["alternatives"]) <= 1
    assert body["translatedText"] not in body["alternatives"]
    many = httpx.post(server.url + "/translate", json={"q": [fr, TEXTS[0]], "source": "auto", "target": "zh",
                                                        "alternatives": 1}).json()
    assert [d["language"] for d in many["detectedLanguage"]] == ["fr", "ja"] and len(many["alternatives"]) == 2
    html = httpx.post(server.url + "/translate", json={"q": ["", "<p>Der Hund schläft im Garten.</p>"], "source": "auto",
                                                       "target": "en", "format": "html"}).json()
    assert html["translatedText"][0] == "" and html["detectedLanguage"][1]["language"] == "de"  # detected on the text
    assert html["translatedText"][1].startswith("<p>") and html["translatedText"][1].endswith("</p>")
    detected = httpx.post(server.url + "/detect", data={"q": "Der Hund schläft im Garten."}).json()
    assert detected[0]["language"] == "de" and detected[0]["confidence"] > 50
    # methods LibreTranslate does not take: 405 in its error shape
    for method, path in (("GET", "/detect"), ("GET", "/translate"), ("POST", "/languages"), ("POST", "/health"), ("POST", "/spec")):
        r = httpx.request(method, server.url + path)
        assert r.status_code == 405 and "error" in r.json(), (method, path, r.text)
    assert httpx.post(server.url + "/translate_file").status_code == 403
    spec = httpx.get(server.url + "/spec").json()
    assert spec["openapi"].startswith("3.") and "/translate" in spec["paths"]
    assert "modmt_request_seconds_bucket" in httpx.get(server.url + "/metrics").text
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "<select id=\"target\">" in page.text
    assert httpx.get(server.url + "/static/page.js").status_code == 200


@contextlib.contextmanager
def page_in_chromium(url: str):
    """The page at url in Debian's chromium, headless and off the network, driven by Playwright (the test is
    skipped where chromium is not installed; .ci/run installs it)."""
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            page.goto(url + "/")
            yield page
        finally:
            browser.close()


def test_files_come_back_whole_and_download_from_either_replica(backends, tmp_path):
    """/translate_file as LibreTranslate's: a .txt or .html file in, a download URL out. Two replicas share
    --files-dir (as behind a proxy): a file translated by one downloads from the other."""
    settings = ServerSettings(files_dir=tmp_path / "files")
    text = "Der Hund schläft.\n\nDer Hund schläft im Garten. Die Katze auch.\n"
    page = "<html><body><h1>Der Hund schläft.</h1><p>Die Katze <b>schläft</b> auch.</p></body></html>"
    with Server(backends, settings) as one, Server(backends, settings) as other:
        form = {"source": "de", "target": "en"}
        r = httpx.post(one.url + "/translate_file", data=form, files={"file": ("notes.txt", text.encode())})
        assert r.status_code == 200, r.text
        url = r.json()["translatedFileUrl"]
        assert url.startswith(one.url + "/download_file/") and url.endswith(".notes.txt")
        got = httpx.get(url.replace(one.url, other.url))
        assert got.status_code == 200 and 'filename="notes.txt"' in got.headers["content-disposition"]
        assert got.content.decode("utf-8") == direct(backends, text, "de", "en")  # paragraphs kept, nothing cut
        r = httpx.post(other.url + "/translate_file", data=form, files={"file": ("page.html", page.encode())})
        as_html = httpx.post(one.url + "/translate", json={"q": page, "format": "html", **form}).json()
        assert httpx.get(r.json()["translatedFileUrl"]).text == as_html["translatedText"]
        bad = [({"file": ("a.pdf", b"%PDF")}, form, "file format not supported"),
               ({"file": ("a.txt", b"\xff\xfe\x00bad")}, form, "not UTF-8"),
               ({"other": ("a.txt", b"x")}, form, "missing file"),
               ({"file": ("a.txt", b"x")}, {"source": "de", "target": "xx"}, "xx is not supported")]
        for files, data, message in bad:
            r = httpx.post(one.url + "/translate_file", data=data, files=files)
            assert r.status_code == 400 and message in r.json()["error"], r.text
        for name in ("..%2F..%2Fetc%2Fpasswd", "0" * 32 + ".missing.txt"):
            assert httpx.get(one.url + "/download_file/" + name).status_code == 404
        front = httpx.get(one.url + "/frontend/settings").json()
        assert front["filesTranslation"] is True and front["supportedFilesFormat"] == [".txt", ".html", ".htm"]
    assert len(list((tmp_path / "files").glob("*.notes.txt"))) == 1  # no partial files left behind


NGINX_SITE = Path(__file__).resolve().parent.parent / "docs" / "deploy" / "nginx-modmt.conf"


@contextlib.contextmanager
def nginx_serving(folder: Path, site: str):
    """Debian's nginx with `site` (server blocks) in its http block, run from `folder`; yields its address, the
    port of site's `listen 127.0.0.1:PORT` (the test is skipped where nginx is not installed; .ci/run installs it)."""
    import re

    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (.ci/run installs it)")
    port = re.search(r"listen 127\.0\.0\.1:(\d+);", site).group(1)
    (folder / "site.conf").write_text(site, encoding="utf-8")
    (folder / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "") +
        f"daemon off; worker_processes 1; pid {folder}/nginx.pid; error_log {folder}/error.log;\n"
        f"events {{}}\nhttp {{ access_log off; client_body_temp_path {folder}/body; proxy_temp_path "
        f"{folder}/proxy;\n include /etc/nginx/mime.types;\n include {folder}/site.conf;\n}}\n", encoding="utf-8")
    nginx = subprocess.Popen(["nginx", "-p", str(folder), "-c", str(folder / "nginx.conf")],
                             stderr=subprocess.PIPE, text=True)
    try:
        proxy = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(proxy + "/health")
                break
            except httpx.TransportError:
                assert nginx.poll() is None, nginx.stderr.read()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield proxy
    finally:
        nginx.terminate()
        nginx.wait(10)


def test_two_replicas_behind_nginx_answer_and_share_files(backends, tmp_path):
    """The documented nginx site (docs/deploy/nginx-modmt.conf, its ports replaced) in front of two replicas
    sharing --files-dir: both replicas answer, every answer is the offline API's, and a file translated
    through the proxy downloads through it, from whichever replica nginx picks."""
    settings = ServerSettings(files_dir=tmp_path / "files")
    with Server(backends, settings) as one, Server(backends, settings) as other:
        site = NGINX_SITE.read_text(encoding="utf-8").replace("127.0.0.1:5001", f"127.0.0.1:{one.port}") \
            .replace("127.0.0.1:5002", f"127.0.0.1:{other.port}").replace("listen 5000;", f"listen 127.0.0.1:{free_port()};")
        with nginx_serving(tmp_path, site) as proxy:
            before = [one.batcher.stats["requests"], other.batcher.stats["requests"]]
            for i in range(6):
                r = httpx.post(proxy + "/translate", json={"q": TEXTS[i % 3], "source": "en", "target": "fr"})
                assert r.status_code == 200 and r.json()["translatedText"] == direct(backends, TEXTS[i % 3], "en", "fr")
            assert one.batcher.stats["requests"] > before[0] and other.batcher.stats["requests"] > before[1]
            text = "Der Hund schläft.\n\nDie Katze auch.\n"
            for _ in range(2):  # two uploads: nginx sends them to both replicas in turn
                r = httpx.post(proxy + "/translate_file", data={"source": "de", "target": "en"},
                               files={"file": ("notes.txt", text.encode())})
                url = r.json()["translatedFileUrl"]
                assert url.startswith(proxy + "/download_file/"), url  # the proxy's address, not a replica's
                assert httpx.get(url).content.decode("utf-8") == direct(backends, text, "de", "en")


def test_the_page_translates_a_file_in_a_headless_browser(backends, tmp_path):
    """With files on, the page offers a file input (as /frontend/settings says) and links the translation."""
    text = "Der Hund schläft.\n\nDie Katze auch.\n"
    with Server(backends, ServerSettings(files_dir=tmp_path / "files")) as running, \
            page_in_chromium(running.url) as page:
        page.wait_for_selector("#files", state="visible")
        page.select_option("#source", "de")
        page.select_option("#target", "en")
        with page.expect_response(lambda r: r.url.endswith("/translate_file")):
            page.set_input_files("#file", {"name": "notes.txt", "mimeType": "text/plain",
                                           "buffer": text.encode("utf-8")})
        page.wait_for_selector("#download", state="visible")
        assert page.get_attribute("#file", "accept") == ".txt,.html,.htm"
        link = page.get_attribute("#download", "href")
        assert httpx.get(link).content.decode("utf-8") == direct(backends, text, "de", "en")


def test_a_5000_character_paragraph_comes_back_whole(backends):
    """Cut into its sentences (and a sentence over the input limit cut further), every piece translated and
    put back: nothing of the text is dropped."""
    sentences = [f"Sentence number {i} says something about the weather in the mountains." for i in range(80)]
    text = " ".join(sentences)[:5000]  # the char limit, ending inside a sentence
    assert len(text) == 5000 and not text.endswith(".")
    with Server(backends) as running:
        r = httpx.post(running.url + "/translate", json={"q": text, "source": "en", "target": "fr"}, timeout=300)
        assert r.status_code == 200
        assert r.json()["translatedText"] == direct(backends, text, "en", "fr")
        assert running.batcher.stats["sentences"] == text.count(".") + 1  # every sentence decoded, once
        assert int(r.headers["X-Modmt-Truncated"]) > 0  # max_new_tokens=5 here: said, not silent


def test_text_pieces_give_the_text_back_and_fit_the_limit():
    from modmt.runtime.text_pieces import join_pieces, pieces_of, split_text

    count = len  # a token per character
    text = "  First sentence here. Second one!\n\n  A third, much longer sentence that goes on and on.  \n"
    segments = split_text(text, "en", count, 20)
    assert "".join(part for _, part in segments) == text
    assert all(len(p) <= 20 for p in pieces_of(segments))
    assert join_pieces(segments, [p.upper() for p in pieces_of(segments)]) == text.upper()
    cjk = "猫はソファで寝ています" * 10  # no space, no full stop: halved by characters
    assert all(len(p) <= 16 for p in pieces_of(split_text(cjk, "ja", count, 16)))
    assert "".join(pieces_of(split_text(cjk, "ja", count, 16))) == cjk
    assert pieces_of(split_text("One. Two.", "en", count, 100, sentences=False)) == ["One. Two."]


def test_fuzzed_from_its_own_openapi_spec(server):
    """Requests generated by schemathesis from GET /spec, each operation in turn: every answer is one the spec
    declares (status, content type, body schema), never a 500."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_url(server.url + "/spec")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/translate", "/detect", "/languages", "/health"}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            # Not positive_data_acceptance: the spec cannot say that source and target must differ, or which
            # IN:OUT weights a shared base takes; those valid-looking requests get a 400 that says why.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        check()


def test_the_page_translates_in_a_headless_browser(server, backends):
    """GET / in Debian's Chromium driven by Playwright: pick languages, type, see the server's translation;
    then auto-detect, and the merge-weight slider (modmt's own control) sends w."""
    with page_in_chromium(server.url) as page:
        page.wait_for_selector("#source option[value='de']", state="attached")
        page.select_option("#source", "de")
        page.select_option("#target", "en")
        with page.expect_response(lambda r: r.url.endswith("/translate")) as answer:
            page.fill("#q", TEXTS[2])
        assert answer.value.status == 200
        page.wait_for_function("document.getElementById('out').textContent.length > 0 || "
                               f"{json.dumps(direct(backends, TEXTS[2], 'de', 'en'))} === ''")
        assert page.text_content("#out") == direct(backends, TEXTS[2], "de", "en")

        page.select_option("#source", "auto")
        page.select_option("#target", "en")
        with page.expect_response(lambda r: r.url.endswith("/translate")) as answer:
            page.fill("#q", "Bonjour tout le monde, comment allez-vous aujourd'hui ?")
        assert answer.value.json()["detectedLanguage"]["language"] == "fr"
        page.wait_for_function("document.getElementById('detected').textContent.includes('French')")

        page.select_option("#source", "de")
        page.select_option("#target", "en")
        page.fill("#q", TEXTS[2])
        page.check("#w-on")
        want = direct(backends, TEXTS[2], "de", "en", "1:9")
        with page.expect_response(lambda r: r.url.endswith("/translate")
                                  and '"w":"1:9"' in (r.request.post_data or "")) as answer:
            page.fill("#w", "9")
            page.dispatch_event("#w", "input")
        assert answer.value.json()["translatedText"] == want
        page.wait_for_function(f"document.getElementById('out').textContent === {json.dumps(want)}")
        assert page.text_content("#w-label") == "1:9"
