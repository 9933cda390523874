"""`modmt-bench serve`: `modmt serve` against the offline Python API on the same sentences.

On one export (a shared base, or direction exports), with the server in a subprocess started as a
user starts it, and its answers read over HTTP:
  offline      the sentences through the Python API in this process (batches of --max-batch, sorted
               by length), before the server starts: sentences/s
  clients      N concurrent clients (e.g. 1, 8, 32), each sending one sentence per request until the
               sentences run out: sentences/s (and its ratio to offline), p50/p95 latency, answers
               equal to the offline API's (batch invariance: all of them)
  behind_long  a one-sentence request's latency on an idle server (median of 3), then the same request
               sent while a 16-paragraph request decodes, and that long request's own time
Texts are cut into sentences the way the server cuts them (runtime/text_pieces.py), so both sides
decode the same pieces.
"""
import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from modmt.runtime.errors import ModmtError

log = logging.getLogger(__name__)


def machine() -> dict:
    from modmt.runtime.cpu_features import int8_features

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    return {"cpu": model, "int8_flags": sorted(int8_features()), "cores": os.cpu_count()}


def offline(backends: dict, jobs: list[tuple], beam: int, max_new_tokens: int, max_batch: int) -> tuple[list, float]:
    """The jobs' translations through the Python API, pieces as the server cuts them; and the seconds taken."""
    from modmt.runtime.decoding import DecodeSettings
    from modmt.runtime.text_pieces import join_pieces, pieces_of, split_text

    layouts, runs = [], []
    for (src, tgt), text in jobs:
        backend = backends[(src, tgt)]
        segments = split_text(text, src, backend.count_tokens, 512)
        layouts.append((segments, len(runs)))
        runs += [((src, tgt, None), p) for p in pieces_of(segments)]
    groups = {}
    for i, (direction, piece) in enumerate(runs):
        groups.setdefault(id(backends[direction[:2]]), (backends[direction[:2]], []))[1].append(i)
    out = [""] * len(runs)
    started = time.perf_counter()
    for backend, indices in groups.values():
        texts = backend.translate([runs[i][1] for i in indices], [runs[i][0] for i in indices],
                                  DecodeSettings(beam, max_new_tokens, batch_size=max_batch))
        for i, text in zip(indices, texts):
            out[i] = text
    seconds = time.perf_counter() - started
    answers = [join_pieces(seg, out[at:at + len(pieces_of(seg))]) for seg, at in layouts]
    return answers, seconds


def start_server(export: Path, beam: int, max_new_tokens: int, max_batch: int, threads: int | None,
                 join: str = "aligned"):
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(Path(sys.executable).parent / "modmt"), "serve", str(export), "--port", str(port), "--beam", str(beam),
           "--max-new-tokens", str(max_new_tokens), "--max-batch", str(max_batch), "--queue", "100000",
           "--char-limit", "1000000", "--provider", "cpu", "--log-every", "3600", "--join", join]
    if threads:
        cmd += ["--threads", str(threads)]
    server = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise ModmtError(f"modmt serve did not start: {server.stderr.read()[-300:]}")
        time.sleep(0.5)


async def _post(client, direction, text) -> tuple[int, str | None, float]:
    started = time.perf_counter()
    r = await client.post("/translate", json={"q": text, "source": direction[0], "target": direction[1]})
    return r.status_code, r.json().get("translatedText"), time.perf_counter() - started


def decoding_counters(url: str) -> dict:
    """The server's decoding work so far, from its /metrics: steps, prefills, their seconds, sentence-steps."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {"modmt_step_seconds_count": "steps", "modmt_step_seconds_sum": "step_s",
              "modmt_prefill_seconds_count": "prefills", "modmt_prefill_seconds_sum": "prefill_s",
              "modmt_step_sentences_sum": "sentence_steps"}
    counters = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name in wanted:
                counters[wanted[sample.name]] = sample.value
    return counters


def under_clients(url: str, jobs: list[tuple], clients: int) -> tuple[list, float]:
    """Each of `clients` sends one job at a time until none are left: answers in job order, wall seconds."""
    import httpx

    async def run():
        answers, queue = [None] * len(jobs), list(range(len(jobs)))[::-1]
        async with httpx.AsyncClient(base_url=url, timeout=3600,
                                     limits=httpx.Limits(max_connections=clients)) as client:
            async def worker():
                while queue:
                    i = queue.pop()
                    answers[i] = await _post(client, *jobs[i])

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            return answers, time.perf_counter() - started

    return asyncio.run(run())


def behind_long(url: str, short: tuple, long_texts: list[str], direction: tuple) -> dict:
    import httpx

    async def run():
        async with httpx.AsyncClient(base_url=url, timeout=3600) as client:
            idle = [(await _post(client, *short))[2] for _ in range(3)]
            started = time.perf_counter()
            long = asyncio.ensure_future(client.post("/translate", json={"q": long_texts, "source": direction[0],
                                                                         "target": direction[1]}))
            await asyncio.sleep(1.0)  # the long request is decoding
            status, _, behind = await _post(client, *short)
            long_running = not long.done()
            reply = await long
            return {"idle_s": statistics.median(idle), "behind_long_s": behind,
                    "ratio": behind / statistics.median(idle), "long_still_running": long_running,
                    "long_s": time.perf_counter() - started, "long_status": reply.status_code,
                    "short_status": status}

    return asyncio.run(run())


def run_serving(export: Path, corpus_dir: Path, directions: list[tuple], sentences: int, clients: list[int],
                beam: int, max_new_tokens: int, max_batch: int, threads: int | None, out: Path,
                join: str = "aligned", rounds: int = 1) -> dict:
    from modmt.benchmarks.routing import segments
    from modmt.runtime.served_directions import load_backends

    texts = segments(corpus_dir, max(sentences, 48))
    for src, _ in directions:
        if src not in texts:
            raise ModmtError(f"the corpus has no {src} devtest; give --directions whose sources it holds")
    jobs = [(directions[i % len(directions)], texts[directions[i % len(directions)][0]][i // len(directions)])
            for i in range(sentences)]
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "export": str(export),
              "directions": [f"{s}-{t}" for s, t in directions], "sentences": sentences, "beam": beam,
              "max_new_tokens": max_new_tokens, "max_batch": max_batch, "join": join,
              "command": "modmt-bench serve " + " ".join(sys.argv[2:])}
    # The offline API and the server alternate, round after round: this machine drifts by ±10 % within
    # minutes, so each round's server figure is compared with the offline figure taken just before it.
    backends = load_backends([str(export)], "cpu", threads)
    server, url = start_server(export, beam, max_new_tokens, max_batch, threads, join)
    try:
        result["offline"], result["clients"] = [], []
        for round_ in range(rounds):
            want, seconds = offline(backends, jobs, beam, max_new_tokens, max_batch)
            result["offline"].append({"round": round_, "seconds": seconds, "sentences_per_s": sentences / seconds})
            log.info(f"round {round_}: offline Python API: {sentences / seconds:.3f} sentences/s")
            for n in clients:
                before = decoding_counters(url)
                answers, wall = under_clients(url, jobs, n)
                work = {k: v - before[k] for k, v in decoding_counters(url).items()}
                latencies = np.array([a[2] for a in answers])
                row = {"round": round_, "clients": n, "sentences_per_s": sentences / wall,
                       "vs_offline": (sentences / wall) / (sentences / seconds),
                       "p50_s": float(np.percentile(latencies, 50)), "p95_s": float(np.percentile(latencies, 95)),
                       "answered_200": sum(a[0] == 200 for a in answers),
                       "equal_to_offline": sum(a[1] == w for a, w in zip(answers, want)),
                       # where the wall time went: decoding steps, prefills, the rest (HTTP, tokenizing, idle)
                       "steps": int(work["steps"]), "step_s": work["step_s"], "prefills": int(work["prefills"]),
                       "prefill_s": work["prefill_s"],
                       "sentences_per_step": work["sentence_steps"] / max(work["steps"], 1)}
                result["clients"].append(row)
                log.info(f"round {round_}, {n} clients: {row}")
            src, tgt = directions[0]
            paragraphs = [" ".join(texts[src][3 * i:3 * i + 3]) for i in range(16)]
            behind = {"round": round_, **behind_long(url, ((src, tgt), texts[src][47]), paragraphs, (src, tgt))}
            result.setdefault("behind_long", []).append(behind)
            log.info(f"round {round_}, behind a 16-paragraph request: {behind}")
    finally:
        server.terminate()
        server.wait(60)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result
