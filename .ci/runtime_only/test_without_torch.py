"""The runtime's behaviour in an environment without torch or transformers, on exports the full one built.

Run by .ci/run in the runtime-only virtualenv: `python -m pytest .ci/runtime_only -q --exports DIR`
(DIR from build.py). Translate greedy and beam, a routed mixed batch, a batch file killed and resumed,
and the server over HTTP: each equals what the full environment's Python API gave.
"""
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def exports(request):
    return Path(request.config.getoption("--exports"))


@pytest.fixture(scope="session")
def expected(exports):
    return json.loads((exports / "expected.json").read_text(encoding="utf-8"))


def test_there_is_no_torch_here():
    for name in ("torch", "transformers", "peft", "optimum"):
        assert importlib.util.find_spec(name) is None, f"{name} is installed in the runtime-only environment"


def test_translate_greedy_and_beam(exports, expected):
    from modmt.runtime.translator import Translator

    translator = Translator(exports / "standalone", provider="cpu")
    assert translator.translate(expected["texts"], beam=1, max_new_tokens=6) == expected["greedy"]
    assert translator.translate(expected["texts"], beam=3, max_new_tokens=6) == expected["beam"]
    assert "torch" not in sys.modules


def test_a_routed_mixed_batch(exports, expected):
    from modmt.runtime.routed_translator import RoutedTranslator

    routed = RoutedTranslator([exports / "base"], provider="cpu")
    directions = [tuple(d) for d in expected["mixed"]]
    assert routed.translate(expected["texts"], directions=directions, beam=2, max_new_tokens=5) == expected["routed"]


def modmt_translate(*args):
    return subprocess.run([str(Path(sys.executable).parent / "modmt-translate"), *map(str, args), "--provider", "cpu"],
                          capture_output=True, text=True)


def test_a_batch_file_killed_and_resumed(tmp_path, exports, expected):
    lines = [f"{s}\t{t}\t{x}" for (s, t), x in zip(expected["mixed"], expected["texts"])] * 2
    (tmp_path / "in.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = [exports / "base", "-i", tmp_path / "in.tsv", "--beam", "2", "--max-new-tokens", "5"]
    run = modmt_translate(*args, "-o", tmp_path / "out.txt")
    assert run.returncode == 0, run.stderr
    out = (tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")
    assert out[:-1] == expected["routed"] * 2
    (tmp_path / "part.txt").write_text("\n".join(out[:3]) + "\nhalf a li", encoding="utf-8")  # killed mid-line
    run = modmt_translate(*args, "-o", tmp_path / "part.txt", "--resume")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "part.txt").read_bytes() == (tmp_path / "out.txt").read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_server_answers_as_the_python_api(exports, expected):
    import httpx

    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "modmt"), "serve", str(exports / "base"),
                               "--port", str(port), "--provider", "cpu", "--beam", "2", "--max-new-tokens", "5"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/languages", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "modmt serve did not start in 60 s"
            time.sleep(0.2)
        answers = [None] * len(expected["texts"])

        def ask(i):  # all at once: answers must not depend on what shares the batch
            src, tgt = expected["mixed"][i]
            r = httpx.post(f"http://127.0.0.1:{port}/translate", json={"q": expected["texts"][i], "source": src,
                                                                       "target": tgt}, timeout=60)
            answers[i] = r.json().get("translatedText", r.text)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(answers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert answers == expected["routed"]
    finally:
        server.terminate()
        server.wait(30)
