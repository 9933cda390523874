"""Batch translation on a Ray cluster: input files cut into line-range shards, translated by a pool of
long-lived Ray Data actors (each loads a Translator once), reassembled in input order.

Layout: each input file gets an output file at the same path relative to the inputs' common folder,
under OUT (under OUT/<src>-<tgt>/ when one job translates into several directions). The output is,
byte for byte, what `modmt-translate` writes for that file: shards start at window boundaries
(batch.window_size), so every actor decodes exactly the batches a single process decodes.

Resumable at shard granularity: the driver writes each finished shard atomically to
OUT/.modmt-ray/parts/, and a file's output appears (atomically) once all its shards are there. A rerun
of the same command skips what is done. Ray Data restarts an actor that dies and retries its shard;
a redone shard replaces its part with the same bytes, so no line is lost or written twice.

Input is read by the workers (at the byte offset the driver found), so on a cluster of several
machines the inputs and the exports must be at the same path on every node (a shared file system);
outputs are written by the driver only. Ray is an extra (`pip install "modmt[ray]"`), imported here only.
"""
import contextlib
import glob
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from modmt.runtime.atomic import write_json_atomic, write_text_atomic
from modmt.runtime.batch import HINT, one_line, translated_windows, window_size
from modmt.runtime.decoding import DecodeSettings
from modmt.runtime.tuned_weights import TUNED_FILE
from modmt.runtime.errors import ModmtError
from modmt.runtime.manifest import MANIFEST, read_manifest
from modmt.runtime.text_lines import decode_line

STATE = ".modmt-ray"  # under OUT: job.json (what this job is) and parts/ (finished shards)


@dataclass(frozen=True)
class Shard:
    export: str       # the direction export that translates it
    input: str        # the input file
    output: str       # the output file it is part of
    part: str         # where the driver writes its translation
    offset: int       # byte offset of its first line in the input
    first_line: int   # 0-based
    lines: int


# ---- the plan (driver side, no Ray) ----------------------------------------------------------------

def expand_inputs(inputs, exclude: Path) -> tuple[Path, list[Path]]:
    """The input files (a file, a folder's files, or a glob, or a list of those) and their common folder."""
    files = []
    for item in [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs:
        path = Path(item)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file()
                      and not any(part.startswith(".") for part in p.relative_to(path).parts)]
        else:
            matches = [Path(m) for m in glob.glob(str(item), recursive=True) if os.path.isfile(m)]
            if not matches:
                raise ModmtError(f"no input file matches {item}; pass a file, a folder or a quoted glob such as "
                                 "'in/*.txt'")
            files += matches
    exclude = exclude.resolve()
    files = sorted({p.resolve() for p in files if not p.resolve().is_relative_to(exclude)})
    if not files:
        raise ModmtError(f"no input files in {inputs} (outside the output folder {exclude})")
    return Path(os.path.commonpath([p.parent for p in files])), files


def scan_input(path: Path, shard_lines: int, errors: str) -> tuple[int, list[int]]:
    """Line count and the byte offset where each shard starts; every line is decoded (a bad one stops here)."""
    lines, offset, starts = 0, 0, []
    with open(path, "rb") as f:
        for lines, raw in enumerate(f, 1):
            if (lines - 1) % shard_lines == 0:
                starts.append(offset)
            decode_line(raw, lines, str(path), HINT, errors)
            offset += len(raw)
    return lines, starts


def direction_of(export: Path) -> str:
    manifest = read_manifest(export, verify="size")
    try:
        return f"{manifest['src']}-{manifest['tgt']}"
    except KeyError:
        raise ModmtError(f"{export / MANIFEST} is malformed (no src/tgt); re-export the direction with "
                         "`modmt-export`") from None


def plan_job(exports: list[Path], inputs, out: Path, shard_lines: int, settings: DecodeSettings,
             max_input_tokens: int, errors: str):
    """Every shard of every (direction, input file), and the job record that says what this job is."""
    window = window_size(settings.batch_size)
    shard_lines = -(-shard_lines // window) * window  # whole windows: the same batches as one process
    root, files = expand_inputs(inputs, out)
    directions = [direction_of(e) for e in exports]
    if len(set(directions)) != len(directions):
        raise ModmtError(f"two exports translate the same direction ({', '.join(directions)}); one job "
                         "writes one output per direction, so run them as separate jobs")
    scans = {f: scan_input(f, shard_lines, errors) for f in files}
    shards, outputs = [], {}
    for export, direction in zip(exports, directions):
        out_root = out if len(exports) == 1 else out / direction
        for f, (total, starts) in scans.items():
            relative = f.relative_to(root)
            output = out_root / relative
            outputs[str(output)] = []
            for i, offset in enumerate(starts):
                first = i * shard_lines
                part = out / STATE / "parts" / (direction if len(exports) > 1 else "") / relative / f"{first:012d}"
                shard = Shard(str(export.resolve()), str(f), str(output), str(part), offset, first,
                              min(shard_lines, total - first))
                shards.append(shard)
                outputs[str(output)].append(shard)
    job = {"format": "modmt-ray-job/1", "shard_lines": shard_lines, "settings": asdict(settings),
           "max_input_tokens": max_input_tokens, "errors": errors,
           "exports": {str(e.resolve()): export_digest(e) for e in exports},
           "inputs": {str(f): [f.stat().st_size, f.stat().st_mtime_ns] for f in files}}
    return job, shards, outputs


def export_digest(export: Path) -> str:
    """What a job's outputs depend on of an export: its manifest, and its base's tuned weights where it has a base."""
    digest = hashlib.sha256((export / MANIFEST).read_bytes())
    base = json.loads((export / MANIFEST).read_text(encoding="utf-8")).get("base")
    tuned = (export / base / TUNED_FILE) if isinstance(base, str) else None
    if tuned is not None and tuned.is_file():
        digest.update(tuned.read_bytes())
    return digest.hexdigest()


def open_job(out: Path, job: dict, outputs: dict, overwrite: bool) -> None:
    """Start or continue the job in OUT: the same job resumes; anything else there is never overwritten silently."""
    record = out / STATE / "job.json"
    if record.exists():
        try:
            same = json.loads(record.read_text(encoding="utf-8")) == job
        except ValueError:
            same = False
        if same:
            return
        if not overwrite:
            raise ModmtError(f"{out} holds another job (other inputs, exports or options: {record}); pass "
                             "--overwrite to start it again or choose another --output folder")
        shutil.rmtree(out / STATE)
    for output in outputs:
        if os.path.exists(output):
            if not overwrite:
                raise ModmtError(f"{output} already exists; pass --overwrite to replace it or choose another "
                                 "--output folder")
            os.unlink(output)  # a new job: an old output must not pass for a finished one
    write_json_atomic(record, job)


def assemble(output: str, shards: list[Shard]) -> None:
    """Join a file's parts, in order, into its output (atomically), then drop the parts."""
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{output}.modmt-tmp"
    with open(tmp, "wb") as out:
        for shard in shards:
            with open(shard.part, "rb") as part:
                shutil.copyfileobj(part, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, output)
    for shard in shards:
        os.unlink(shard.part)


# ---- the workers ------------------------------------------------------------------------------------

class ShardTranslator:
    """A Ray Data actor: translates shards of any direction, loading its model once.

    On a shared base with a routed graph (`routed_exports`), the actor holds one RoutedTranslator
    for every direction of the job and never reloads. Otherwise it holds one Translator; shards come
    ordered by direction, so it reloads at most once per direction.
    """

    def __init__(self, settings: dict, max_input_tokens: int, errors: str, provider: str = "auto",
                 threads: int | None = None, routed_exports: list[str] | None = None):
        self.settings, self.provider, self.threads = DecodeSettings(**settings), provider, threads
        self.max_input_tokens, self.errors = max_input_tokens, errors
        self.export, self.translator = None, None
        self.routed_exports, self.routed, self.loads = routed_exports, None, 0

    def translator_for(self, export: str):
        from modmt.runtime.translator import Translator

        if self.routed_exports:
            from modmt.runtime.mixed_lines import MixedLines
            from modmt.runtime.routed_translator import RoutedTranslator

            if self.routed is None:
                self.routed = RoutedTranslator(self.routed_exports, self.provider, self.threads,
                                               max_input_tokens=self.max_input_tokens)
                self.loads += 1
            src, tgt = direction_of(Path(export)).split("-")
            return MixedLines(self.routed, src, tgt)
        if export != self.export:
            self.translator = None  # free the previous direction before loading the next
            # Verified in full on the worker: on a cluster it is the node's own copy of the export that counts.
            self.translator = Translator(export, self.provider, self.threads,
                                         max_input_tokens=self.max_input_tokens)
            self.export = export
            self.loads += 1
        return self.translator

    def __call__(self, row: dict) -> dict:
        shard = Shard(**{k: row[k] for k in Shard.__dataclass_fields__})
        translator = self.translator_for(shard.export)
        with open(shard.input, "rb") as f:
            f.seek(shard.offset)
            lines = [decode_line(f.readline(), shard.first_line + i + 1, shard.input, HINT, self.errors)
                     for i in range(shard.lines)]
        truncated = []

        def note(index, length, limit):
            truncated.append([shard.first_line + index + 1, length, limit])

        text = "".join(text for text, _ in translated_windows(translator, lines, self.settings, note))
        return {"part": shard.part, "text": text, "lines": len(lines), "truncated": json.dumps(truncated),
                "input": shard.input, "pid": os.getpid(), "loads": self.loads}


class BatchTranslator:
    """A Ray Data actor for `translate_dataset`: one Translator, loaded once, translating a column batch by batch."""

    def __init__(self, export: str, settings: dict, max_input_tokens: int, column: str, output_column: str,
                 provider: str = "auto", threads: int | None = None):
        from modmt.runtime.translator import Translator

        self.settings, self.column, self.output_column = DecodeSettings(**settings), column, output_column
        self.translator = Translator(export, provider, threads, max_input_tokens=max_input_tokens)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        lines = ["" if text is None else str(text) for text in batch[self.column]]
        outputs = self.translator.translate(lines, self.settings)
        return {**batch, self.output_column: np.array([one_line(t) for t in outputs], dtype=object)}


def translate_dataset(dataset, export, column: str = "text", output_column: str = "translation", workers: int = 1,
                      threads: int = 1, gpus_per_worker: float = 0.0, provider: str = "auto",
                      settings: DecodeSettings = DecodeSettings(), max_input_tokens: int = 512):
    """A lazy Ray Dataset with `output_column` added: the translation of `column`, one per row.

    For data already in Ray (a document store read with ray.data.read_*): the same actors as
    `translate_files`, each holding one Translator. Resuming is the dataset's writer's business;
    rows are batched by Ray Data, so outputs equal `modmt-translate`'s only where the batches do.
    """
    import ray.data

    direction_of(Path(export))  # a missing or malformed export fails here, not on every worker
    return dataset.map_batches(
        BatchTranslator, batch_size=window_size(settings.batch_size), batch_format="numpy",
        fn_constructor_kwargs={"export": str(Path(export).resolve()), "settings": asdict(settings),
                               "max_input_tokens": max_input_tokens, "column": column,
                               "output_column": output_column, "provider": provider, "threads": threads},
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads, num_gpus=gpus_per_worker or None)


@contextlib.contextmanager
def worker_errors():
    """A user error raised on a worker (a corrupt export on that node, a bad line) comes back as one line."""
    try:
        yield
    except ModmtError:
        raise
    except Exception as e:
        cause = e
        while cause is not None and not isinstance(cause, ModmtError):
            cause = cause.__cause__
        text = str(cause) if cause is not None else next(
            (line.split("ModmtError: ", 1)[1] for line in str(e).splitlines() if "ModmtError: " in line), None)
        if text is None:
            raise
        raise ModmtError(f"a worker stopped: {text} (finished shards are kept: rerun the same command "
                         "once it is fixed)") from None


def connect(address: str | None, workers: int, threads: int):
    """Join the cluster at `address` ('auto': the one RAY_ADDRESS or `ray start` names), or start one here."""
    try:
        import ray
    except ImportError:
        raise ModmtError('Ray is not installed; pip install "modmt[ray]"') from None
    if not ray.is_initialized():
        if address in (None, "local"):
            ray.init(num_cpus=max(os.cpu_count() or 1, workers * threads), include_dashboard=False,
                     logging_level="error", log_to_driver=False)
        else:
            try:
                ray.init(address=address, logging_level="error", log_to_driver=False)
            except Exception as e:  # no cluster there: say so in one line
                raise ModmtError(f"cannot join the Ray cluster at {address} ({str(e).splitlines()[0][:160]}); "
                                 "start one with `ray start --head`, or use --ray local") from None
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts lines, not blocks
    context.print_on_execution_start = False
    return ray


def translate_files(exports, inputs, out, address: str | None = None, workers: int = 1, threads: int = 1,
                    gpus_per_worker: float = 0.0, provider: str = "auto", shard_lines: int = 256,
                    overwrite: bool = False, settings: DecodeSettings = DecodeSettings(), max_input_tokens: int = 512,
                    errors: str = "strict", log=None) -> dict:
    """Translate every input file into OUT with each export (a direction); returns what was done.

    exports: one export folder or a list (one output tree per direction); inputs: a file, a folder,
    a glob or a list of those. address: None or 'local' starts Ray on this machine, 'auto' joins the
    running cluster, 'ray://host:10001' a remote one.
    """
    from tqdm import tqdm

    log = log or (lambda message: print(message, file=sys.stderr))
    if workers < 1 or threads < 1 or shard_lines < 1 or gpus_per_worker < 0:
        raise ModmtError("--workers, --threads and --shard-lines must be at least 1, --gpus-per-worker at least 0")
    exports = [Path(e) for e in ([exports] if isinstance(exports, (str, os.PathLike)) else exports)]
    if not exports:
        raise ModmtError("no export given")
    from modmt.runtime.open_exports import group_exports

    groups = group_exports(exports)
    exports = groups.directions()  # a shared base given: every direction it holds
    # Directions of one base share one routed session per worker; otherwise each worker opens each export.
    routed_exports = [str(e.resolve()) for e in exports] if groups.one_session else None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ModmtError(f"--output {out} is a file; with --ray it is the folder the outputs go to")
    started = time.perf_counter()
    settings.check()
    job, shards, outputs = plan_job(exports, inputs, out, shard_lines, settings, max_input_tokens, errors)
    open_job(out, job, outputs, overwrite)
    done_files = {o for o in outputs if os.path.exists(o) and all(not os.path.exists(s.part) for s in outputs[o])}
    todo = [s for s in shards if s.output not in done_files and not os.path.exists(s.part)]
    skipped = len(shards) - len(todo)
    total_lines = sum(s.lines for s in shards)
    log(f"{len(outputs)} output files, {len(shards)} shards of up to {job['shard_lines']} lines, "
        f"{total_lines} lines" + (f"; {skipped} shards already done, skipped" if skipped else ""))
    for output, parts in outputs.items():  # files whose every shard is done (or empty files)
        if output not in done_files and all(os.path.exists(s.part) for s in parts):
            assemble(output, parts)
    summary = {"outputs": len(outputs), "shards": len(shards), "skipped_shards": skipped, "lines": total_lines,
               "translated_lines": sum(s.lines for s in todo), "workers": workers, "pids": []}
    if not todo:
        summary["seconds"] = round(time.perf_counter() - started, 2)
        return summary

    ray = connect(address, workers, threads)
    summary["startup_seconds"] = round(time.perf_counter() - started, 2)
    log(f"Ray ready after {summary['startup_seconds']:.1f} s (input checked, cluster joined or started); "
        f"{workers} workers load the model next")
    items = [asdict(s) for s in todo]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map(
        ShardTranslator,
        fn_constructor_kwargs={"settings": asdict(settings), "max_input_tokens": max_input_tokens, "errors": errors,
                               "provider": provider, "threads": threads, "routed_exports": routed_exports},
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
        num_cpus=threads, num_gpus=gpus_per_worker or None)
    remaining = {o: sum(1 for s in parts if not os.path.exists(s.part)) for o, parts in outputs.items()}
    by_part = {s.part: s for s in todo}
    pids, loads = set(), {}
    with tqdm(total=total_lines, initial=total_lines - summary["translated_lines"], unit="line",
              desc="translate", file=sys.stderr, disable=None) as bar, worker_errors():
        for row in dataset.iter_rows():
            shard = by_part[row["part"]]
            if os.path.exists(shard.part):
                continue  # a retried shard that already came back
            for line, length, limit in json.loads(row["truncated"]):
                tqdm.write(f"modmt-translate: warning: {shard.input}:{line} has {length} tokens; truncated to "
                           f"{limit}", file=sys.stderr)
            if row["lines"] != shard.lines or row["text"].count("\n") != shard.lines:
                raise ModmtError(f"shard {shard.input}:{shard.first_line + 1} came back with "
                                 f"{row['text'].count(chr(10))} lines for {shard.lines}; rerun the same command")
            write_text_atomic(Path(shard.part), row["text"])
            pids.add(int(row["pid"]))
            loads[int(row["pid"])] = max(loads.get(int(row["pid"]), 0), int(row["loads"]))
            bar.update(shard.lines)
            remaining[shard.output] -= 1
            if remaining[shard.output] == 0:
                assemble(shard.output, outputs[shard.output])
    missing = [o for o in outputs if not os.path.exists(o)]
    if missing:
        raise ModmtError(f"{len(missing)} outputs were not finished (first: {missing[0]}); rerun the same command "
                         "to continue")
    shutil.rmtree(out / STATE / "parts", ignore_errors=True)  # only empty folders left: job.json stays
    summary.update(seconds=round(time.perf_counter() - started, 2), pids=sorted(pids), routed=bool(routed_exports),
                   model_loads=loads)
    return summary
