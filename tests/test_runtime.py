"""The torch-free runtime: parity with transformers `generate`, and the batch translation contract."""
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from modmt.export.direction import ExportOptions, merged_model
from modmt.runtime.decoding import DecodeSettings, beam_search, greedy, left_pad
from modmt.runtime.errors import ModmtError
from modmt.runtime.translator import Translator
from modmt.train.pool import Pool
from modmt.train.tiny import tiny_sentences

TEXTS = ["猫はソファで寝ています。", "犬は雪の中を走ります。そして長い文。", "パンは新鮮です。",
         "The train leaves at noon. And a longer tail here to pad the others."]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def reference(tiny_pool):
    model, _, _ = merged_model(Pool(tiny_pool), "ja", "zh", ExportOptions(weights="3:7"))
    return model


@pytest.mark.parametrize("beam, max_new, length_penalty", [(1, 12, 1.0), (1, 40, 1.0), (5, 12, 1.0), (5, 40, 1.0),
                                                            (3, 25, 0.5), (4, 25, 2.0)])
def test_identical_to_transformers_generate(tiny_export, reference, beam, max_new, length_penalty):
    translator = Translator(tiny_export, provider="cpu")
    prompts = [translator.encode(t)[0] for t in TEXTS]
    ids, mask = left_pad(prompts, translator.pad_id)
    stops = sorted(translator.stop_ids)
    want = reference.generate(torch.tensor(ids), attention_mask=torch.tensor(mask), num_beams=beam, do_sample=False,
                              max_new_tokens=max_new, length_penalty=length_penalty, eos_token_id=stops,
                              pad_token_id=translator.pad_id)
    want = [[t for t in row[ids.shape[1]:].tolist() if t not in translator.stop_ids] for row in want]
    if beam == 1:
        got = greedy(translator.decoder, prompts, translator.stop_ids, translator.pad_id, max_new)
    else:
        got = beam_search(translator.decoder, prompts, translator.stop_ids, translator.pad_id,
                          DecodeSettings(beam, max_new, length_penalty))
    assert got == want
    # Through the public API: batch order restored, text decoded.
    texts = translator.translate(TEXTS, beam=beam, max_new_tokens=max_new, length_penalty=length_penalty, batch_size=3)
    assert texts == [translator.tokenizer.decode(w, skip_special_tokens=True).strip() for w in want]


def test_cuda_provider_without_cuda_is_a_clear_error(tiny_export):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModmtError, match=r"no CUDA execution provider.*modmt\[gpu\]"):
        Translator(tiny_export, provider="cuda")


def test_translates_without_torch_or_transformers(tiny_export):
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('torch', 'transformers', 'peft', 'optimum', 'jinja2'):
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        from modmt.runtime.translator import Translator
        out = Translator({str(tiny_export)!r}, provider='cpu').translate(['猫です。', ''], beam=5, max_new_tokens=5)
        assert len(out) == 2 and out[1] == ''
        print('no-torch ok')
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "no-torch ok" in result.stdout


def cli(*args, stdin=None):
    return subprocess.run([str(BIN / "modmt-translate"), *map(str, args)], input=stdin, capture_output=True,
                          timeout=300)


def test_one_output_line_per_input_line(tmp_path, tiny_export):
    lines = ["猫です。", "", "   ", "犬は雪の中を走ります。", "パン"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli(tiny_export, "-i", src, "-o", tmp_path / "out.txt", "--beam", "2", "--max-new-tokens", "6",
                 "--provider", "cpu")
    assert result.returncode == 0, result.stderr
    out = (tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")
    assert len(out) == len(lines) + 1 and out[-1] == ""  # exactly one line each, newline-terminated
    assert out[1] == "" and out[2] == ""                 # empty and blank lines stay empty
    translator = Translator(tiny_export, provider="cpu")
    assert out[3] == " ".join(translator.translate([lines[3]], beam=2, max_new_tokens=6)[0].splitlines())
    stdout = cli(tiny_export, "--beam", "2", "--max-new-tokens", "6", stdin="\n".join(lines).encode())
    assert stdout.stdout.decode().split("\n")[:-1] == out[:-1]


def test_input_errors_name_the_line(tmp_path, tiny_export):
    src = tmp_path / "in.txt"
    src.write_bytes(b"ok\nbad \xff byte\n")
    result = cli(tiny_export, "-i", src, "-o", tmp_path / "o.txt")
    assert result.returncode == 2
    assert b"in.txt:2: not valid UTF-8" in result.stderr and b"--errors replace" in result.stderr
    assert b"Traceback" not in result.stderr
    replaced = cli(tiny_export, "-i", src, "-o", tmp_path / "o.txt", "--errors", "replace", "--max-new-tokens", "3")
    assert replaced.returncode == 0 and len((tmp_path / "o.txt").read_text().splitlines()) == 2
    again = cli(tiny_export, "-i", src, "-o", tmp_path / "o.txt", "--errors", "replace")
    assert again.returncode == 2 and b"already exists; pass --resume" in again.stderr
    long = tmp_path / "long.txt"
    long.write_text("short\n" + "cat " * 100 + "\n", encoding="utf-8")
    truncated = cli(tiny_export, "-i", long, "-o", tmp_path / "l.txt", "--max-input-tokens", "20",
                    "--max-new-tokens", "3")
    assert truncated.returncode == 0
    assert b"input line 2 has" in truncated.stderr and b"truncated to 20" in truncated.stderr
    missing = cli(tmp_path / "no-export", "-i", long)
    assert missing.returncode == 2 and b"does not exist" in missing.stderr


def test_kill_and_resume_loses_and_duplicates_nothing(tmp_path, tiny_export):
    table = tiny_sentences()
    lines = (table["ja"] + table["en"]) * 2  # 96 lines
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["-i", src, "--beam", "5", "--batch", "1", "--max-new-tokens", "24", "--provider", "cpu"]
    assert cli(tiny_export, *args, "-o", tmp_path / "straight.txt").returncode == 0
    straight = (tmp_path / "straight.txt").read_bytes()

    out = tmp_path / "resumed.txt"
    proc = subprocess.Popen([str(BIN / "modmt-translate"), str(tiny_export), *map(str, args), "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 8):
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    partial = out.read_bytes()
    assert partial.count(b"\n") < len(lines), "the run finished before it could be killed"
    with open(out, "ab") as f:
        f.write("半分だけ書かれた行".encode())  # as if killed in the middle of a write
    resumed = cli(tiny_export, *args, "-o", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert out.read_bytes() == straight
