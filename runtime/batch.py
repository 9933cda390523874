"""Batch file translation: exactly one output line per input line, in order, resumable after a kill.

Output is appended and flushed one batch at a time, so after a kill the output file holds a prefix
of the result: `--resume` counts its complete lines, drops a partial last line, and continues.
"""
import os
import sys

from modmt.runtime.errors import ModmtError
from modmt.runtime.text_lines import decode_lines


def read_input_lines(path: str, errors: str) -> list[str]:
    data = sys.stdin.buffer.read() if path == "-" else _read_bytes(path)
    return decode_lines(data, "stdin" if path == "-" else path, "fix it or pass --errors replace", errors)


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ModmtError(f"cannot read input {path}: {e.strerror}") from None


def completed_lines(path: str) -> int:
    """Complete lines already in an output file; a partial last line (killed mid-write) is cut off."""
    with open(path, "rb+") as f:
        data = f.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            f.truncate(complete)
    return data[:complete].count(b"\n")


def one_line(text: str) -> str:
    """A translation never spans lines: the output stays aligned with the input."""
    return " ".join(text.splitlines())


def translate_file(translator, input_path: str, output_path: str, beam: int = 5, batch_size: int = 8,
                   max_new_tokens: int = 256, length_penalty: float = 1.0, errors: str = "strict",
                   resume: bool = False, overwrite: bool = False) -> int:
    """Translate input_path line by line into output_path; returns the number of lines written now."""
    from tqdm import tqdm

    lines = read_input_lines(input_path, errors)
    done = 0
    if output_path != "-" and os.path.exists(output_path) and os.path.getsize(output_path) > 0:
        if resume:
            done = completed_lines(output_path)
            if done > len(lines):
                raise ModmtError(f"{output_path} has {done} lines but the input only {len(lines)}: it is not "
                                 "this input's output; choose another --output")
        elif not overwrite:
            raise ModmtError(f"{output_path} already exists; pass --resume to continue it or --overwrite to "
                             "replace it")
    elif resume and output_path == "-":
        raise ModmtError("--resume needs --output FILE (it continues that file)")

    def warn(index, length, limit):
        tqdm.write(f"modmt-translate: warning: input line {start + index + 1} has {length} tokens; "
                   f"truncated to {limit}", file=sys.stderr)

    out = sys.stdout if output_path == "-" else open(output_path, "a" if resume else "w", encoding="utf-8")
    written = 0
    try:
        with tqdm(total=len(lines), initial=done, unit="sent", desc=f"{translator.src}->{translator.tgt}",
                  file=sys.stderr, disable=None) as bar:
            # Several decoding batches per write: sorting by length works within this window.
            window = batch_size * 4
            for start in range(done, len(lines), window):
                chunk = lines[start:start + window]
                outputs = translator.translate(chunk, beam=beam, max_new_tokens=max_new_tokens,
                                               length_penalty=length_penalty, batch_size=batch_size,
                                               on_truncate=warn)
                out.write("".join(one_line(t) + "\n" for t in outputs))
                out.flush()
                if out is not sys.stdout:
                    os.fsync(out.fileno())
                written += len(chunk)
                bar.update(len(chunk))
    finally:
        if out is not sys.stdout:
            out.close()
    return written
