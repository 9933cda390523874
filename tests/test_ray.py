"""Batch translation on Ray Data (local cluster, loopback only): same bytes as modmt-translate, survives kills."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason='Ray is an extra: pip install "modmt[ray]"')

from modmt.runtime.batch import translate_file  # noqa: E402
from modmt.runtime.errors import ModmtError  # noqa: E402
from modmt.runtime.decoding import DecodeSettings  # noqa: E402
from modmt.runtime.ray_translate import STATE, translate_files  # noqa: E402
from modmt.runtime.translator import Translator  # noqa: E402
from modmt.train.tiny import tiny_sentences  # noqa: E402

SETTINGS = DecodeSettings(beam=2, batch_size=2, max_new_tokens=12)
MAX_INPUT_TOKENS = 24
JOB = {"settings": SETTINGS, "max_input_tokens": MAX_INPUT_TOKENS}


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="error", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_pool, tiny_export):
    from modmt.export.direction import ExportOptions, export_direction
    from modmt.runtime.languages import load_registry

    ja_en = tmp_path_factory.mktemp("exports") / "ja-en"
    export_direction(tiny_pool, "ja", "en", ExportOptions(weights="7:3"), ja_en, load_registry())
    return [tiny_export, ja_en]


def write_inputs(root: Path, lines: int = 37) -> Path:
    """Three files in two folders: empty lines, an over-long line, non-ASCII text, an empty file."""
    s = tiny_sentences()
    (root / "in" / "sub").mkdir(parents=True)
    (root / "in" / "a.txt").write_text("\n".join(s["ja"][i % len(s["ja"])] for i in range(lines)) + "\n",
                                       encoding="utf-8")
    (root / "in" / "sub" / "b.txt").write_text("\n".join(["", s["ja"][0] * 40, "", s["zh"][1], "   ", s["en"][2]])
                                               + "\n", encoding="utf-8")
    (root / "in" / "c.txt").write_text("", encoding="utf-8")
    return root / "in"


def single_process(exports, inputs: Path, out: Path) -> dict[str, bytes]:
    """What modmt-translate writes for each file, as {relative path: bytes}."""
    result = {}
    for export in exports:
        translator = Translator(export, provider="cpu", max_input_tokens=MAX_INPUT_TOKENS)
        for f in sorted(p for p in inputs.rglob("*") if p.is_file()):
            target = out / f"{translator.src}-{translator.tgt}" / f.relative_to(inputs)
            target.parent.mkdir(parents=True, exist_ok=True)
            translate_file(translator, str(f), str(target), SETTINGS)
    return tree(out)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and STATE not in p.parts}


def test_same_bytes_as_modmt_translate_for_every_file_and_direction(tmp_path, cluster, exports):
    inputs = write_inputs(tmp_path)
    want = single_process(exports, inputs, tmp_path / "single")
    summary = translate_files(exports, inputs, tmp_path / "ray", workers=2, shard_lines=8, **JOB)
    assert tree(tmp_path / "ray") == want
    assert sorted(want) == ["ja-en/a.txt", "ja-en/c.txt", "ja-en/sub/b.txt", "ja-zh/a.txt", "ja-zh/c.txt",
                            "ja-zh/sub/b.txt"]
    assert want["ja-zh/sub/b.txt"].count(b"\n") == 6 and want["ja-zh/c.txt"] == b""
    # a.txt: 37 lines in shards of 8 (whole windows of 4 x batch 2) -> 5 shards; b.txt 1; c.txt none.
    assert summary["shards"] == 2 * 6 and summary["skipped_shards"] == 0
    # A rerun is a no-op; a different job in the same folder is refused.
    again = translate_files(exports, inputs, tmp_path / "ray", workers=2, shard_lines=8, **JOB)
    assert again["skipped_shards"] == again["shards"] and again["translated_lines"] == 0
    with pytest.raises(ModmtError, match="holds another job.*--overwrite"):
        translate_files(exports[:1], inputs, tmp_path / "ray", shard_lines=8, **JOB)


def actor_pids() -> set[int]:
    """Processes of the Ray Data actors that hold a Translator (Ray names them after the class)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"ShardTranslator" in (entry / "cmdline").read_bytes():
                    pids.add(int(entry.name))
            except OSError:
                pass
    return pids


def wait_for(condition, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def parts(out: Path) -> list[Path]:
    return [p for p in (out / STATE / "parts").rglob("0*") if p.is_file() and not p.name.endswith(".tmp")]


def test_a_killed_actor_is_replaced_and_its_shard_redone(tmp_path, cluster, exports):
    inputs = write_inputs(tmp_path, lines=160)
    want = single_process(exports[:1], inputs, tmp_path / "single")
    out, result = tmp_path / "ray", {}
    # One worker, so that the rest of the job has to wait for Ray to replace it (with two, the other
    # actor may take the retried shard and finish alone, and nothing would show the replacement).
    job = threading.Thread(target=lambda: result.update(translate_files(
        exports[:1], inputs, out, workers=1, shard_lines=4, **JOB)))
    job.start()
    wait_for(lambda: len(parts(out)) >= 2)
    actors = actor_pids()
    assert len(actors) == 1, f"expected one actor process, found {actors}"
    victim = actors.pop()
    os.kill(victim, signal.SIGKILL)
    job.join(timeout=300)
    assert not job.is_alive() and result, "the job did not finish after an actor was killed"
    assert {f"ja-zh/{k}": v for k, v in tree(out).items()} == want
    assert set(result["pids"]) - {victim}, "no replacement actor translated anything"


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs /proc to find the driver's processes")
def test_a_rerun_after_the_driver_is_killed_skips_finished_shards(tmp_path, cluster, exports):
    inputs = write_inputs(tmp_path, lines=160)
    want = single_process(exports[:1], inputs, tmp_path / "single")
    out = tmp_path / "ray"
    driver = textwrap.dedent(f"""
        from modmt.runtime.decoding import DecodeSettings
        from modmt.runtime.ray_translate import translate_files
        translate_files([{str(exports[0])!r}], {str(inputs)!r}, {str(out)!r}, address="local", workers=1,
                        shard_lines=4, settings=DecodeSettings(**{SETTINGS.__dict__!r}),
                        max_input_tokens={MAX_INPUT_TOKENS})
    """)
    process = subprocess.Popen([sys.executable, "-c", driver], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(parts(out)) >= 3 or process.poll() is not None)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and the local Ray it started
        process.wait()
    finished = len(parts(out))
    assert finished >= 3, "the driver ended before it could be killed"
    summary = translate_files(exports[:1], inputs, out, workers=2, shard_lines=4, **JOB)
    assert summary["skipped_shards"] >= finished
    assert summary["translated_lines"] < summary["lines"]
    assert {f"ja-zh/{k}": v for k, v in tree(out).items()} == want


def test_cli_errors_are_one_line(tmp_path, exports):
    from click.testing import CliRunner

    from modmt.runtime.cli import translate_command

    runner = CliRunner()
    result = runner.invoke(translate_command, [str(exports[0]), str(exports[1]), "-i", "x.txt"])
    assert isinstance(result.exception, ModmtError) and "need --ray" in str(result.exception)
    result = runner.invoke(translate_command, [str(exports[0]), "--ray", "local", "-i", str(tmp_path / "none*.txt"),
                                               "-o", str(tmp_path / "out")])
    assert isinstance(result.exception, ModmtError) and "no input file matches" in str(result.exception)
    result = runner.invoke(translate_command, [str(exports[0]), "--ray", "local", "-o", str(tmp_path / "out")])
    assert isinstance(result.exception, ModmtError) and "--ray reads files" in str(result.exception)


def test_a_worker_side_error_is_one_line_and_keeps_nothing_half_done(tmp_path, cluster, exports):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(exports[0], broken)
    data = bytearray((broken / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 1  # same size: the driver's quick check passes, the worker's sha256 does not
    (broken / "model.onnx").write_bytes(bytes(data))
    inputs = write_inputs(tmp_path)
    with pytest.raises(ModmtError, match=r"a worker stopped: export .*broken is corrupt: model.onnx does not match"):
        translate_files([broken], inputs, tmp_path / "out", shard_lines=8, **JOB)
    assert not [p for p in (tmp_path / "out").rglob("*.txt") if STATE not in p.parts and p.stat().st_size]


def test_a_ray_dataset_gets_a_translation_column(tmp_path, cluster, exports):
    from modmt.runtime.ray_translate import translate_dataset

    inputs = write_inputs(tmp_path)
    lines = (inputs / "sub" / "b.txt").read_text(encoding="utf-8").splitlines()
    want = (tmp_path / "want.txt")
    translate_file(Translator(exports[0], provider="cpu", max_input_tokens=MAX_INPUT_TOKENS),
                   str(inputs / "sub" / "b.txt"), str(want), SETTINGS)
    # One block: Ray Data then forms the same windows as modmt-translate, so the outputs are equal.
    dataset = ray.data.from_items([{"text": line, "id": i} for i, line in enumerate(lines)], override_num_blocks=1)
    rows = translate_dataset(dataset, exports[0], **JOB).take_all()
    assert [r["id"] for r in rows] == list(range(len(lines)))
    assert "".join(r["translation"] + "\n" for r in rows) == want.read_text(encoding="utf-8")


def test_on_a_routed_base_each_actor_loads_once_for_every_direction(tmp_path, cluster, tiny_pool):
    from modmt.export.direction import ExportOptions
    from modmt.export.shared_base import export_shared_direction
    from modmt.runtime.batch import translate_file
    from modmt.runtime.languages import load_registry
    from modmt.runtime.mixed_lines import MixedLines
    from modmt.runtime.routed_translator import RoutedTranslator

    directions = [tmp_path / "ja-zh", tmp_path / "ja-en", tmp_path / "ja-fr"]
    for d in directions:
        src, tgt = d.name.split("-")
        export_shared_direction(tiny_pool, src, tgt, ExportOptions(quantize="int8"), tmp_path / "base", d,
                                load_registry())
    inputs = write_inputs(tmp_path, lines=20)
    routed = RoutedTranslator(directions, provider="cpu", max_input_tokens=MAX_INPUT_TOKENS)
    for d in directions:
        lines = MixedLines(routed, *d.name.split("-"))
        for f in sorted(p for p in inputs.rglob("*") if p.is_file()):
            target = tmp_path / "single" / d.name / f.relative_to(inputs)
            target.parent.mkdir(parents=True, exist_ok=True)
            translate_file(lines, str(f), str(target), SETTINGS)
    summary = translate_files(directions, inputs, tmp_path / "ray", workers=1, shard_lines=8, **JOB)
    assert tree(tmp_path / "ray") == tree(tmp_path / "single")
    # One actor did every shard of three directions with one model load (it used to reload per direction).
    assert summary["routed"] and list(summary["model_loads"].values()) == [1]
