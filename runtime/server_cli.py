"""`modmt serve PATH...`: the directions PATH holds, over HTTP with LibreTranslate's API (runtime/server_app.py)."""
import tempfile
from pathlib import Path

import click

from modmt.runtime.errors import ModmtError
from modmt.runtime.options import BATCH, BEAM, INPUT_TOKENS, NEW_TOKENS, THREADS, FiniteFloat

PORT = click.IntRange(min=0, max=65535)


@click.command(name="serve")
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=PORT, default=5000, show_default=True, help="Port (LibreTranslate's is 5000).")
@click.option("--api-keys", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File with one API key per line: every request must carry one as api_key.")
@click.option("--beam", type=BEAM, default=5, show_default=True)
@click.option("--max-new-tokens", type=NEW_TOKENS, default=256, show_default=True)
@click.option("--max-input-tokens", type=INPUT_TOKENS, default=512, show_default=True)
@click.option("--max-batch", type=BATCH, default=16, show_default=True,
              help="Sentences decoding at once, across requests and directions (new ones join as others finish).")
@click.option("--max-wait-ms", type=FiniteFloat(0.0, 10_000.0), default=10.0, show_default=True,
              help="On an idle server, how long the first batch waits for more sentences.")
@click.option("--join", type=click.Choice(["aligned", "any"]), default="aligned", show_default=True,
              help="aligned: running batches join only where no row's arithmetic changes, so every answer equals "
                   "the offline API's; any: they join whenever they fit (fuller batches, more throughput; an "
                   "answer may differ where a near-tie flips).")
@click.option("--queue", "max_queue", type=click.IntRange(1, 1_000_000), default=256, show_default=True,
              help="Sentences queued or decoding; a request that would overfill it is refused at once (503).")
@click.option("--char-limit", type=click.IntRange(1, 10_000_000), default=5000, show_default=True,
              help="Characters per request.")
@click.option("--batch-limit", type=click.IntRange(1, 100_000), default=64, show_default=True,
              help="Texts per request (q as a list).")
@click.option("--alternatives-limit", type=click.IntRange(0, 64), default=3, show_default=True,
              help="Most alternatives a request may ask for (from the beam's finished hypotheses).")
@click.option("--guard/--no-guard", default=True, show_default=True,
              help="Answer with the beam's best hypothesis in the target language where the best is surely in "
                   "another language or copies its source (verdicts counted in /metrics).")
@click.option("--split", type=click.Choice(["sentences", "none"]), default="sentences", show_default=True,
              help="Translate each text sentence by sentence (none: whole, cut only where over the input limit).")
@click.option("--max-body-bytes", type=click.IntRange(1024, 1 << 30), default=1 << 20, show_default=True)
@click.option("--provider", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--threads", type=THREADS, default=None, help="CPU threads for decoding (default: all cores).")
@click.option("--log-every", type=FiniteFloat(0.1, 86_400.0), default=10.0, show_default=True,
              help="Seconds between throughput log lines.")
@click.option("--files-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where /translate_file keeps translations for download (30 minutes); replicas behind one "
                   "proxy share it. Default: a temporary folder, removed at exit.")
@click.option("--no-files", is_flag=True, help="Turn /translate_file off (403, as LibreTranslate's "
                                               "--disable-files-translation).")
def serve_command(paths, host, port, api_keys, beam, max_new_tokens, max_input_tokens, max_batch, max_wait_ms,
                  join, max_queue, char_limit, batch_limit, alternatives_limit, guard, split, max_body_bytes, provider,
                  threads, log_every, files_dir, no_files):
    """Serve PATH's directions over HTTP, speaking LibreTranslate's API.

    PATH is a shared base exported with `modmt-export --all-directions` (every direction its adapters
    make, in one session), direction exports on a shared base, or standalone direction exports.
    `kill -HUP` loads PATH again without a restart (a language's directions added to the base, weights
    tuned by modmt-tune): requests in flight finish as they started, new ones see the new set.
    """
    try:
        import uvicorn
        from starlette.applications import Starlette  # noqa: F401
    except ImportError:
        raise ModmtError("modmt serve needs starlette and uvicorn: pip install 'modmt[serve]'") from None
    from modmt.runtime.decoding import DecodeSettings
    from modmt.runtime.languages import load_registry
    from modmt.runtime.served_directions import load_backends
    from modmt.runtime.server_app import ServerSettings, create_app, read_api_keys
    from modmt.runtime.server_batcher import Batcher

    keys = read_api_keys(api_keys) if api_keys else None
    check_port(host, port)  # before minutes of loading, and as one line (uvicorn would log and exit 3)
    backends = load_backends(list(paths), provider, threads, max_input_tokens)
    from modmt.runtime.cli import echo_cpu_notice

    for backend in {id(b): b for b in backends.values()}.values():
        echo_cpu_notice(getattr(backend, "translator", None) or backend.routed)
        if join == "aligned":  # probed now rather than when the first two batches could join
            click.echo(f"modmt serve: batches of {', '.join(f'{s}->{t}' for s, t in sorted(backend.directions))} "
                       f"join where their caches agree modulo {backend.join_multiple} columns", err=True)
    batcher = Batcher(backends, DecodeSettings(beam, max_new_tokens, guard=guard), max_batch, max_wait_ms, max_queue, log_every,
                      report=lambda line: click.echo(line, err=True), join=join)
    with tempfile.TemporaryDirectory(prefix="modmt-serve-files-") as scratch:
        files = None if no_files else (files_dir or Path(scratch))
        settings = ServerSettings(char_limit, batch_limit, max_body_bytes, keys, alternatives_limit, split,
                                  max_input_tokens, files)
        reloader = Reloader(batcher, lambda: load_backends(list(paths), provider, threads, max_input_tokens),
                            join == "aligned", lambda line: click.echo(line, err=True))
        app = create_app(batcher, load_registry(), settings, on_hangup=reloader.start)
        click.echo(f"modmt serve: {len(backends)} directions on http://{host}:{port} "
                   f"({'API keys required' if keys else 'no API key needed'})", err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30)


def check_port(host: str, port: int) -> None:
    """That this process can listen on host:port now, as uvicorn will (SO_REUSEADDR, as it sets)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ModmtError(f"cannot listen on {host}:{port} ({e.strerror}); give an address of this machine as "
                         "--host") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            raise ModmtError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port or --host") \
                from None


class Reloader:
    """`kill -HUP`: load the paths again in a thread beside the serving one, then swap the batcher's backends.

    The old set serves until the new one is loaded (and its join multiple probed), so for a while both are in
    memory; a reload that fails (a broken new direction, a file half copied) leaves the old set serving and says
    so in one line. A hangup while a reload runs is answered with a line, not a second reload.
    """

    def __init__(self, batcher, load, probe: bool, report):
        import threading

        self.batcher, self.load, self.probe, self.report = batcher, load, probe, report
        self.lock = threading.Lock()

    def start(self) -> None:
        import threading

        if not self.lock.acquire(blocking=False):
            self.report("modmt serve: a reload is already running; this hangup is ignored")
            return
        threading.Thread(target=self.run, name="modmt-reload", daemon=True).start()

    def run(self) -> None:
        try:
            before = set(self.batcher.backends)
            try:
                backends = self.load()
                if self.probe:
                    for backend in {id(b): b for b in backends.values()}.values():
                        backend.join_multiple  # probed here, not in the decoding thread
            except Exception as e:  # ModmtError or anything a half-written export raises: the old set serves
                self.report(f"modmt serve: reload failed ({' '.join(str(e).split())[:300]}); still serving the "
                            f"{len(before)} directions loaded before")
                return
            self.batcher.swap(backends)
            added, gone = sorted(set(backends) - before), sorted(before - set(backends))
            self.report(f"modmt serve: reloaded: {len(backends)} directions"
                        + (f"; new: {', '.join(f'{s}->{t}' for s, t in added)}" if added else "")
                        + (f"; no longer served: {', '.join(f'{s}->{t}' for s, t in gone)}" if gone else ""))
        finally:
            self.lock.release()
