"""The command-line contract: every entry point answers --help; user errors are one line, exit 2."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run(*args, env=None):
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


@pytest.mark.parametrize("command", ["modmt", "modmt-train", "modmt-export", "modmt-translate", "modmt-bench"])
def test_entry_points_answer_help(command):
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_user_error_is_one_line_without_traceback(tmp_path):
    result = run("modmt", "data", "show", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"modmt: error: corpus {tmp_path / 'nowhere'} is not a directory; "
                                                  "build one with `modmt data ddtp --out DIR` or point at a "
                                                  "FLORES-101/200 folder"]
    debug = run("modmt", "data", "show", str(tmp_path / "nowhere"), "--debug")
    assert "Traceback" in debug.stderr and debug.returncode == 2


def test_bad_language_code_on_the_command_line(tmp_path):
    result = run("modmt", "data", "ddtp", "--langs", "en,xx", "--out", str(tmp_path / "c"))
    assert result.returncode == 2
    assert "unknown language code 'xx'; known: en, fr, de, ja, zh" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_data_tiny_and_show(tmp_path):
    assert run("modmt", "data", "tiny", "--out", str(tmp_path / "c")).returncode == 0
    shown = run("modmt", "data", "show", str(tmp_path / "c"))
    assert "modmt corpus, languages de, en, fr, ja, zh" in shown.stdout
    assert "ja: 16 training pairs, dev 4, devtest 4" in shown.stdout


def test_runtime_imports_without_torch_or_transformers():
    """A runtime-only install has no torch: importing and running the CLI must not need it."""
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('torch', 'transformers', 'peft', 'optimum', 'jinja2'):
                    raise ImportError(f'blocked: {name}')
        sys.meta_path.insert(0, Block())
        import modmt.runtime, modmt.runtime.cli, modmt.runtime.prompt, modmt.runtime.fingerprint
        from modmt.app.cli import modmt
        modmt.main(['--help'], standalone_mode=False)
        assert not any(m.split('.')[0] in ('torch', 'transformers') for m in sys.modules)
        print('runtime ok')
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "runtime ok" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["ja", "zh", "--w", "3-7"], "--w '3-7' is not IN:OUT"),
    (["ja", "zh", "--w", "0:0"], "--w 0:0 gives both adapters zero weight"),
    (["ja", "xx"], "unknown language code 'xx'"),
    (["ja", "zh"], "is not an adapter pool (no pool.json); train one with `modmt-train adapters"),
    (["ja", "zh", "--quantize", "w8a8"], "--quantize w8a8 calibrates on training text: pass --calibration CORPUS"),
    (["ja", "zh", "--quantize", "w8a8", "--calibration", "no-such-dir"], "--calibration no-such-dir is not a directory"),
    (["ja", "zh", "--quantize", "int8", "--calibration", "."], "--calibration is read only by recipes that calibrate"),
])
def test_export_errors_are_one_line(tmp_path, args, message):
    result = run("modmt-export", *args, "--pool", str(tmp_path / "no-pool"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_train_errors_are_one_line(tmp_path):
    result = run("modmt-train", "adapters", "--model", str(tmp_path / "m"), "--data", str(tmp_path), "--out",
                 str(tmp_path / "p"), "--rank", "0")
    assert result.returncode == 2 and "Invalid value for '--rank': 0 is not in the range 1<=x<=4096" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_frozen_base_takes_fp32_or_fp16(tmp_path):
    result = run("modmt-train", "adapters", "--model", str(tmp_path / "m"), "--data", str(tmp_path), "--out",
                 str(tmp_path / "p"), "--frozen-base", "int8")
    assert result.returncode == 2 and "Invalid value for '--frozen-base': 'int8' is not one of 'fp32', 'fp16'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_translate_split_sentences_keeps_one_line_per_line_and_cuts_nothing(tmp_path, tiny_export):
    """--split sentences: each line translated sentence by sentence and put back; a line over
    --max-input-tokens is cut into pieces, not truncated (no warning), and the line count holds."""
    from modmt.runtime.text_pieces import join_pieces, pieces_of, split_text
    from modmt.runtime.translator import Translator

    lines = ["猫はソファで寝ています。犬は雪の中を走ります。", "", "パン", "長い文。" * 40]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run("modmt-translate", str(tiny_export), "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.txt"),
                 "--split", "sentences", "--beam", "2", "--max-new-tokens", "6", "--max-input-tokens", "24",
                 "--provider", "cpu")
    assert result.returncode == 0, result.stderr
    assert "truncated" not in result.stderr
    out = (tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")
    assert len(out) == len(lines) + 1 and out[-1] == ""
    translator = Translator(tiny_export, provider="cpu", max_input_tokens=24)
    count = lambda text: len(translator.tokenizer.encode(text, add_special_tokens=False).ids)  # noqa: E731
    for line, got in zip(lines, out):
        segments = split_text(line, "ja", count, 24) if line else []
        pieces = pieces_of(segments)
        assert all(count(p) <= 24 for p in pieces)
        assert got == (join_pieces(segments, translator.translate(pieces, beam=2, max_new_tokens=6)) if pieces else "")
    assert len(pieces_of(split_text(lines[0], "ja", count, 24))) == 2


def test_translate_split_sentences_on_ray_is_a_one_line_error(tmp_path, tiny_export):
    (tmp_path / "in.txt").write_text("パン\n", encoding="utf-8")
    result = run("modmt-translate", str(tiny_export), "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "out"),
                 "--ray", "local", "--split", "sentences")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == ["modmt-translate: error: --split sentences does not run on Ray yet; "
                                                  "translate without --ray, or without --split"]
