"""Batch file translation: exactly one output line per input line, in order, resumable after a kill.

The input is streamed: read, translated and written a window of lines at a time, so memory stays
flat however large the file. Before the first line is written, one pass checks that every line
decodes (standard input is first copied to a temporary file for that), so an undecodable line
stops the run with its line number and the output untouched, never after half the output.
Output is appended and flushed one window at a time, so after a kill the output file holds a
prefix of the result: `--resume` counts its complete lines, drops a partial last line, and
continues from the next input line.
"""
import contextlib
import itertools
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass

from modmt.runtime.decoding import DecodeSettings
from modmt.runtime.errors import ModmtError
from modmt.runtime.text_lines import decode_line

HINT = "fix it or pass --errors replace"


@contextlib.contextmanager
def input_file(path: str):
    """A path to read the input from twice: the file itself, or standard input spooled to disk."""
    if path != "-":
        if not os.path.isfile(path):
            raise ModmtError(f"cannot read input {path}: no such file")
        yield path
        return
    with tempfile.NamedTemporaryFile(prefix="modmt-stdin-", delete=False) as tmp:
        shutil.copyfileobj(sys.stdin.buffer, tmp, 1 << 20)
    try:
        yield tmp.name
    finally:
        os.unlink(tmp.name)


def _open(path: str):
    try:
        return open(path, "rb")
    except OSError as e:
        raise ModmtError(f"cannot read input {path}: {e.strerror}") from None


def count_lines(path: str, label: str, errors: str) -> int:
    """The number of input lines, decoding each (so a bad line is reported before anything is written)."""
    n = 0
    with _open(path) as f:
        for n, raw in enumerate(f, 1):
            decode_line(raw, n, label, HINT, errors)
    return n


def read_lines(path: str, label: str, errors: str, skip: int = 0):
    """The input's lines as text, one at a time, after the first `skip`."""
    with _open(path) as f:
        for number, raw in enumerate(itertools.islice(f, skip, None), skip + 1):
            yield decode_line(raw, number, label, HINT, errors)


def completed_lines(path: str) -> int:
    """Complete lines already in an output file; a partial last line (killed mid-write) is cut off."""
    complete = lines = 0
    with open(path, "rb+") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            cut = block.rfind(b"\n")
            if cut >= 0:
                complete = f.tell() - len(block) + cut + 1
        if complete < f.tell():
            f.truncate(complete)
    return lines


def window_size(batch_size: int) -> int:
    """Lines translated per call: several decoding batches, so that sorting by length has room to work.

    Batches are formed within a window, so the cluster path (runtime/ray_translate.py) cuts its
    shards at window boundaries and decodes exactly the batches a single process decodes.
    """
    return batch_size * 4


def one_line(text: str) -> str:
    """A translation never spans lines: the output stays aligned with the input."""
    return " ".join(text.splitlines())


def translated_windows(translator, lines, settings: DecodeSettings, on_truncate=None):
    """Translate `lines` (any iterable) a window at a time; yields (text, number of lines) per window.

    `text` holds one output line per input line. on_truncate(index, length, limit) gets the
    truncated line's index in `lines`. The windows, and so the decoding batches, depend only on
    the position in `lines`: the file path and the cluster path (whose shards start at window
    boundaries) share this loop, so they decode the same batches.
    """
    lines, done = iter(lines), 0
    while chunk := list(itertools.islice(lines, window_size(settings.batch_size))):
        def note(index, length, limit, base=done):
            on_truncate(base + index, length, limit)

        outputs = translator.translate(chunk, settings, on_truncate=note if on_truncate else None)
        yield "".join(one_line(t) + "\n" for t in outputs), len(chunk)
        done += len(chunk)


@dataclass
class BatchJob:
    """An input checked line by line and an output checked for --resume/--overwrite, before any model loads."""
    path: str          # where the input is read from (standard input spooled to a file)
    label: str         # how errors name the input
    output_path: str
    errors: str
    total: int         # input lines
    done: int          # output lines already there (--resume)
    resume: bool


@contextlib.contextmanager
def open_batch(input_path: str, output_path: str, errors: str = "strict", resume: bool = False,
               overwrite: bool = False):
    if resume and output_path == "-":
        raise ModmtError("--resume needs --output FILE (it continues that file)")
    if os.path.isdir(output_path):
        raise ModmtError(f"--output {output_path} is a folder; pass a file (a folder of outputs needs --ray)")
    exists = output_path != "-" and os.path.exists(output_path) and os.path.getsize(output_path) > 0
    if exists and not resume and not overwrite:
        raise ModmtError(f"{output_path} already exists; pass --resume to continue it or --overwrite to replace it")
    label = "stdin" if input_path == "-" else input_path
    with input_file(input_path) as path:
        total = count_lines(path, label, errors)
        done = completed_lines(output_path) if exists and resume else 0
        if done > total:
            raise ModmtError(f"{output_path} has {done} lines but the input only {total}: it is not this input's "
                             "output; choose another --output")
        yield BatchJob(path, label, output_path, errors, total, done, resume)


def run_batch(job: BatchJob, translator, settings: DecodeSettings = DecodeSettings()) -> int:
    """Translate the job's remaining lines into its output; returns the number of lines written now."""
    from tqdm import tqdm

    settings.check()
    def warn(index, length, limit):
        tqdm.write(f"modmt-translate: warning: input line {job.done + index + 1} has {length} tokens; "
                   f"truncated to {limit}", file=sys.stderr)

    out = sys.stdout if job.output_path == "-" else open(job.output_path, "a" if job.resume else "w",
                                                         encoding="utf-8")
    written = 0
    lines = read_lines(job.path, job.label, job.errors, skip=job.done)
    try:
        with tqdm(total=job.total, initial=job.done, unit="sent", desc=f"{translator.src}->{translator.tgt}",
                  file=sys.stderr, disable=None) as bar:
            for text, count in translated_windows(translator, lines, settings, warn):
                out.write(text)
                out.flush()
                if out is not sys.stdout:
                    os.fsync(out.fileno())
                written += count
                bar.update(count)
    finally:
        lines.close()
        if out is not sys.stdout:
            out.close()
    if job.done + written != job.total:  # the one failure the contract must never have
        raise ModmtError(f"wrote {job.done + written} lines for {job.total} input lines; rerun with --resume")
    return written


def translate_file(translator, input_path: str, output_path: str, settings: DecodeSettings = DecodeSettings(),
                   errors: str = "strict", resume: bool = False, overwrite: bool = False) -> int:
    """Translate input_path line by line into output_path; returns the number of lines written now."""
    with open_batch(input_path, output_path, errors, resume, overwrite) as job:
        return run_batch(job, translator, settings)
