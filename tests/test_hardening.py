"""Property-based hardening of the user-facing surface (hypothesis).

The contract every test checks: a command either exits 0 with exactly one output line per input
line, in order, or exits 2 with one line on stderr, no traceback, and the output file untouched.
Readers of user files (corpora, modmt.json, pool.json, languages and weight files) either return
or raise ModmtError, never anything else. A few examples per target by default; a long run:
`pytest tests/test_hardening.py --hypothesis-profile long`.
"""
import contextlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from unittest import mock

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modmt.runtime.errors import ModmtError
from modmt.runtime.options import FiniteFloat

FAST = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def invoke(main, prog: str, args: list[str]) -> tuple[int, str, str]:
    """Run a console entry point in this process; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.object(sys, "argv", [prog, *map(str, args)]), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, stderr: str, *must_contain: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    for text in must_contain:
        assert text in lines[0], lines[0]


@pytest.fixture(autouse=True)
def verbose_libraries(monkeypatch):
    # In-process runs: keep the CLI from silencing warnings and logging for the rest of the test session.
    monkeypatch.setenv("MODMT_VERBOSE", "1")


# --- every numeric option of every command ---------------------------------------------------

def all_commands():
    from modmt.app.cli import modmt

    def walk(command, path):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield path, command

    return list(walk(modmt, []))


# What makes each numeric option's value acceptable, upper bounds included, written down independently of
# the click types (a server or a script multiplies any unchecked value).
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
VALID = {
    "--seed": lambda v: v == int(v) and 0 <= v <= 2**32 - 1,
    "--epochs": lambda v: 0 < v <= 1000, "--lr": lambda v: 0 < v <= 10, "--alpha": lambda v: 0 < v <= 1e9,
    "--dropout": lambda v: 0 <= v < 1, "--mix-share": lambda v: 0 < v < 1, "--length-penalty": lambda v: True,
    "--max-length": lambda v: v == int(v) and 8 <= v <= 131_072, "--gpus-per-worker": lambda v: 0 <= v <= 1024,
    "--max-wait-ms": lambda v: 0 <= v <= 10_000, "--log-every": lambda v: 0.1 <= v <= 86_400,
}
INTEGER_RANGES = {
    "--batch-size": (1, 1024), "--micro-batch-size": (1, 1024), "--batch": (1, 1024), "--max-batch": (1, 1024), "--beam": (1, 64),
    "--latency-beam": (1, 64), "--max-new-tokens": (1, 32_768), "--max-input-tokens": (1, 131_072),
    "--rank": (1, 4096), "--threads": (1, CORES), "--max-pairs": (1, 10**7), "--max-segments": (1, 10**7), "--save-steps": (1, 10**7),
    "--limit": (1, 10**7), "--segments": (1, 10**7), "--sentences": (1, 10**7), "--workers": (1, 10**7), "--shard-lines": (1, 10**7),
    "--rounds": (1, 100), "--clients": (1, 4096), "--requests": (1, 100_000), "--port": (0, 65_535),
    "--queue": (1, 10**6), "--char-limit": (1, 10**7), "--batch-limit": (1, 100_000), "--alternatives-limit": (0, 64),
    "--max-body-bytes": (1024, 2**30),
}
# Required arguments that point nowhere: a valid option value then fails later, on them, not on the option.
REQUIRED = {
    "translate": ["/nonexistent-export"], "export": ["ja", "zh", "--pool", "/nonexistent-pool"],
    "weights": ["ja", "zh", "--pool", "/nonexistent", "--data", "/nonexistent"],
    "exports": ["/nonexistent", "--data", "/nonexistent"], "latency": ["/nonexistent"],
    "quality": ["--pool", "/nonexistent", "--data", "/nonexistent"], "tiny": ["--out", "/nonexistent/x"],
    "serve": ["/nonexistent"], "routing": ["/nonexistent", "--data", "/nonexistent"],
}
TRAINING = ["--model", "/nonexistent", "--data", "/nonexistent", "--out", "/nonexistent/x"]


def numeric_options():
    found = []
    for path, command in all_commands():
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.type, (click.types._NumberParamTypeBase,
                                                                            FiniteFloat)):
                found.append((path, param))
    return found


def test_every_numeric_option_is_validated():
    options = numeric_options()
    assert len(options) >= 30
    for path, param in options:
        name = param.opts[0]
        assert name in VALID or name in INTEGER_RANGES, f"{' '.join(path)} {name}: no rule in this test"
        assert isinstance(param.type, (click.IntRange, FiniteFloat)), \
            f"`{' '.join(path)} {name}` is {param.type!r}: give it a range from modmt.runtime.options"


def accepted(name: str, text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    if not math.isfinite(value):
        return False
    if name in INTEGER_RANGES:
        try:
            int(text)
        except ValueError:
            return False
        low, high = INTEGER_RANGES[name]
        return low <= value <= high
    if name in ("--seed", "--max-length"):
        try:
            int(text)
        except ValueError:
            return False
    return VALID[name](value)


values = st.one_of(st.integers(-10**9, 10**9).map(str), st.sampled_from(["0", "-1", "-3", "1", "nan", "inf",
                                                                         "-inf", "1e400", "0.5", "", " "]),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=8))


@FAST
@given(data=st.data())
def test_numeric_options_reject_bad_values_in_one_line(data):
    from modmt.app.cli import main

    path, param = data.draw(st.sampled_from(numeric_options()))
    name = param.opts[0]
    text = data.draw(values)
    if accepted(name, text):
        param.type.convert(text, param, None)  # accepted by the option too (the command is not run: it would work)
        return
    args = [*path, *REQUIRED.get(path[-1], TRAINING if path[:1] == ["train"] else []), f"{name}={text}"]
    code, _, stderr = invoke(main, "modmt", args)
    assert_one_line_error(code, stderr, name)


def test_negative_and_zero_batch_are_errors_not_empty_output(tmp_path, tiny_export):
    """`--batch -3` used to exit 0 with an empty output file, and `--batch 0` with a ValueError."""
    from modmt.runtime.cli import main

    src = tmp_path / "four.txt"
    src.write_text("a\nb\nc\nd\n", encoding="utf-8")
    for batch in ("-3", "0"):
        out = tmp_path / f"out{batch}.txt"
        code, _, stderr = invoke(main, "modmt-translate", [tiny_export, "-i", src, "-o", out, "--batch", batch])
        assert_one_line_error(code, stderr, "--batch")
        assert not out.exists()


# --- modmt-translate on any input file -------------------------------------------------------

line_bytes = st.one_of(st.text(max_size=40).map(lambda t: t.encode("utf-8")), st.binary(max_size=40),
                       st.sampled_from([b"", b"   ", b"\x00", b"\xef\xbb\xbf", b"\r", b"a\rb", b"\xff\xfe",
                                        "猫です。".encode(), b"x" * 3000]))


@FAST
@given(lines=st.lists(line_bytes, max_size=12), ending=st.sampled_from([b"\n", b"\r\n"]),
       final_newline=st.booleans(), errors=st.sampled_from(["strict", "replace"]),
       existing=st.sampled_from([None, b"", b"old output\n"]))
def test_translate_any_input_file(tiny_export, lines, ending, final_newline, errors, existing):
    from modmt.runtime.cli import main

    data = ending.join(lines) + (ending if final_newline and lines else b"")
    expected = data.split(b"\n")
    if expected and expected[-1] == b"":
        expected.pop()
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.txt", Path(tmp) / "out.txt"
        src.write_bytes(data)
        if existing is not None:
            out.write_bytes(existing)
        args = [tiny_export, "-i", src, "-o", out, "--beam", "1", "--max-new-tokens", "2", "--provider", "cpu",
                "--errors", errors, "--max-input-tokens", "64", "--overwrite"]
        code, _, stderr = invoke(main, "modmt-translate", args)
        assert "Traceback" not in stderr
        if code == 0:
            result = out.read_bytes()
            assert result.count(b"\n") == len(expected) and (not result or result.endswith(b"\n"))
        else:
            errors_seen = [l for l in stderr.splitlines() if "error" in l]
            assert code == 2 and len(errors_seen) == 1 and "not valid UTF-8" in errors_seen[0], stderr
            assert errors == "strict"
            assert (out.read_bytes() if out.exists() else None) == existing  # untouched


def test_streaming_resume_counts_output_lines(tmp_path, tiny_export):
    """Resume continues after the output's complete lines; an output longer than the input is refused."""
    from modmt.runtime.cli import main

    src = tmp_path / "in.txt"
    src.write_text("".join(f"line {i}\n" for i in range(50)), encoding="utf-8")
    args = ["-i", src, "--beam", "1", "--max-new-tokens", "2", "--batch", "2", "--provider", "cpu"]
    assert invoke(main, "modmt-translate", [tiny_export, *args, "-o", tmp_path / "full.txt"])[0] == 0
    full = (tmp_path / "full.txt").read_bytes()
    part = tmp_path / "part.txt"
    part.write_bytes(b"".join(full.splitlines(keepends=True)[:17]) + b"half a li")
    assert invoke(main, "modmt-translate", [tiny_export, *args, "-o", part, "--resume"])[0] == 0
    assert part.read_bytes() == full
    part.write_bytes(full + b"extra\n")
    code, _, stderr = invoke(main, "modmt-translate", [tiny_export, *args, "-o", part, "--resume"])
    assert_one_line_error(code, stderr, "51 lines but the input only 50")


# --- readers of user files -----------------------------------------------------------------------

json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=8)


def damaged(original: dict, draw) -> bytes:
    """The original JSON with one key dropped or retyped, or random bytes, or a truncated text."""
    how = draw(st.sampled_from(["drop", "retype", "bytes", "truncate", "nest"]))
    data = dict(original)
    key = draw(st.sampled_from(sorted(data)))
    if how == "drop":
        del data[key]
    elif how == "retype":
        data[key] = draw(json_values)
    elif how == "nest" and isinstance(data[key], dict) and data[key]:
        inner = dict(data[key])
        inner[draw(st.sampled_from(sorted(inner)))] = draw(json_values)
        data[key] = inner
    elif how == "bytes":
        return draw(st.binary(max_size=60))
    text = json.dumps(data)
    if how == "truncate":
        return text[:draw(st.integers(0, len(text)))].encode()
    return text.encode()


@FAST
@given(data=st.data(), verify=st.sampled_from(["full", "size"]))
def test_damaged_manifest_is_a_clear_error(tiny_export, data, verify):
    from modmt.runtime.translator import Translator

    original = json.loads((tiny_export / "modmt.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "export"
        shutil.copytree(tiny_export, copy, copy_function=lambda a, b: Path(b).symlink_to(a))
        (copy / "modmt.json").unlink()
        (copy / "modmt.json").write_bytes(damaged(original, data.draw))
        try:
            Translator(copy, provider="cpu", verify=verify).translate(["猫"], beam=1, max_new_tokens=2)
        except ModmtError as e:
            assert "\n" not in str(e)


@FAST
@given(data=st.data())
def test_damaged_pool_file_is_a_clear_error(tiny_pool, data):
    from modmt.train.pool import Pool

    original = json.loads((tiny_pool / "pool.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pool.json").write_bytes(damaged(original, data.draw))
        try:
            pool = Pool(tmp)
            pool.read()
            pool.require("in", "ja")
        except ModmtError as e:
            assert "\n" not in str(e)


def user_file(top_key: str):
    """Any JSON value, random bytes, or {top_key: any JSON value}."""
    return st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=60),
                     st.builds(lambda v: json.dumps({top_key: v}).encode(), json_values))


def load_or_clear_error(name: str, content: bytes, load):
    """load(path) of a file holding `content`: its result, or None after a one-line ModmtError."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        try:
            return load(path)
        except ModmtError as e:
            assert "\n" not in str(e)


@FAST
@given(content=user_file("languages"))
def test_any_languages_file_loads_or_is_a_clear_error(content):
    from modmt.runtime.languages import load_registry

    load_or_clear_error("languages.json", content, load_registry)


@FAST
@given(content=user_file("layers"))
def test_any_learned_weights_file_parses_or_is_a_clear_error(content):
    from modmt.runtime.merge_weights import parse_weights

    weights = load_or_clear_error("ja-zh.json", content, lambda path: parse_weights("learned", path))
    if weights is not None:
        assert weights.per_layer and all(a >= 0 and b >= 0 for a, b in weights.per_layer)


@FAST
@given(train=st.binary(max_size=200), dev=st.binary(max_size=200), which=st.sampled_from(["train", "dev"]))
def test_any_corpus_file_reads_or_is_a_clear_error(train, dev, which):
    from modmt.runtime.languages import load_registry
    from modmt.train.corpus import open_corpus

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for split in ("dev", "devtest"):
            (root / split).mkdir()
            for code in ("en", "fr"):
                (root / split / f"{code}.txt").write_text("a\nb\n", encoding="utf-8")
        (root / "train").mkdir()
        (root / "train" / "en-fr.tsv").write_bytes(train if which == "train" else b"hello\tbonjour\n")
        if which == "dev":
            (root / "dev" / "fr.txt").write_bytes(dev)
        try:
            corpus = open_corpus(root, load_registry())
            corpus.pairs("fr")
            corpus.multiway("dev", ["en", "fr"])
        except ModmtError as e:
            assert "\n" not in str(e)


def test_evidence_from_another_folder_is_a_clear_error(tmp_path, monkeypatch):
    # A run records its corpora as given (often relative): from elsewhere they are not found, and the
    # evidence would silently lose the segments' provenance (the corpus file hashes).
    from modmt.benchmarks.cli import bench_main

    work = tmp_path / "work"
    work.mkdir()
    (work / "settings.json").write_text(json.dumps({"data": "corpora/ddtp"}))
    (work / "evaluation.json").write_text(json.dumps({"ood": "corpora/gettext"}))
    monkeypatch.chdir(tmp_path)
    code, _, stderr = invoke(bench_main, "modmt-bench", ["evidence", work, "--out", tmp_path / "out"])
    assert_one_line_error(code, stderr, "corpora/ddtp", "from the folder the run was started in")
    assert not (tmp_path / "out").exists()
