"""`modmt-bench routing`: what one routed session costs and gives, against a process per direction.

Three measurements on a shared base exported with --all-directions, each printed and saved as JSON:
  memory   resident memory of a fresh process holding 1, 5 or all directions of the base (after
           loading, and after a batch-8 beam-5 run), next to the adapters' own bytes
  mixed    throughput of one batch stream mixing 4 directions, against the same sentences decoded
           direction by direction on the routed session and on today's shared-base Translators
           (one session per direction), and the side path's cost against a folded export
  serve    `modmt serve` under concurrent clients: requests/s, p50/p95 latency, answers checked
           against the same sentences through the Python API (nothing lost, nothing answered twice);
           `modmt-bench serve` (benchmarks/serving.py) measures the server in more depth
Rounds alternate between variants, so the machine's drift hits every variant alike.
"""
import asyncio
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from modmt.runtime.errors import ModmtError

log = logging.getLogger(__name__)

MIXED = [("en", "fr"), ("fr", "de"), ("de", "en"), ("ja", "zh")]

_MEMORY_PROBE = r"""
import json, sys
from pathlib import Path
from modmt.runtime.routed_translator import RoutedTranslator

def rss(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024

args = json.loads(sys.argv[1])
routed = RoutedTranslator(args["directions"], provider="cpu", verify="size")
loaded = rss("VmRSS:")
routed.translate(args["texts"], directions=[tuple(d) for d in args["route"]], beam=5, batch_size=8, max_new_tokens=32)
print(json.dumps({"loaded_mb": loaded, "after_run_mb": rss("VmRSS:"), "peak_mb": rss("VmHWM:"),
                  "bank_mb": routed.bank_bytes / 2**20, "adapters": len(routed.adapters)}))
"""


def segments(corpus_dir: Path, count: int) -> dict[str, list[str]]:
    from modmt.runtime.languages import load_registry
    from modmt.train.corpus import open_corpus

    corpus = open_corpus(corpus_dir, load_registry())
    table = corpus.multiway("devtest", corpus.languages())
    return {lang: lines[:count] for lang, lines in table.items()}


def memory(base: Path, texts: dict, counts=(1, 5, 20)) -> list[dict]:
    """A fresh process per count, so each figure is that process's own resident memory."""
    from modmt.runtime.open_exports import direction_exports

    every = direction_exports([base])
    rows = []
    for count in counts:
        held = every[:count]
        pairs = [tuple(p.name.split("-")) for p in held]
        route = [pairs[i % len(pairs)] for i in range(8)]
        args = {"directions": [str(p) for p in held], "route": route, "texts": [texts[s][i] for i, (s, _) in
                                                                               enumerate(route)]}
        out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, json.dumps(args)], capture_output=True, text=True)
        if out.returncode != 0:
            raise ModmtError(f"memory probe failed: {out.stderr.strip().splitlines()[-1:]}")
        rows.append({"directions": count, **json.loads(out.stdout.strip().splitlines()[-1])})
        log.info(f"memory: {count} directions: {rows[-1]}")
    return rows


def throughput(base: Path, texts: dict, rounds: int, batch: int, beam: int, max_new_tokens: int,
               folded: list[Path]) -> dict:
    """Sentences/s of the same (text, direction) items in several ways, alternating rounds."""
    from modmt.runtime.decoding import DecodeSettings
    from modmt.runtime.open_exports import DIRECTIONS_FOLDER
    from modmt.runtime.routed_translator import RoutedTranslator
    from modmt.runtime.translator import Translator

    n = len(next(iter(texts.values())))
    items = [(MIXED[i % len(MIXED)], texts[MIXED[i % len(MIXED)][0]][i]) for i in range(n)]
    routed = RoutedTranslator([base], provider="cpu", verify="size")
    shared = {d: Translator(base / DIRECTIONS_FOLDER / f"{d[0]}-{d[1]}", provider="cpu", verify="size") for d in MIXED}
    folded_translators = {(t.src, t.tgt): t for t in (Translator(p, provider="cpu", verify="size") for p in folded)}
    decode = {"settings": DecodeSettings(beam, max_new_tokens, batch_size=batch)}

    def routed_mixed():
        return routed.translate([x for _, x in items], directions=[d for d, _ in items], **decode)

    def by_direction(translate):
        out = {}
        for d in MIXED:
            chosen = [i for i, (di, _) in enumerate(items) if di == d]
            for i, text in zip(chosen, translate(d, [items[i][1] for i in chosen])):
                out[i] = text
        return [out[i] for i in range(len(items))]

    variants = {
        "routed (whole bank), 4 directions mixed in each batch": routed_mixed,
        "routed (whole bank), one direction per batch": lambda: by_direction(lambda d, xs: routed.translate(xs, src=d[0], tgt=d[1],
                                                                                               **decode)),
        "shared-base Translator per direction (before routing)": lambda: by_direction(
            lambda d, xs: shared[d].translate(xs, **decode)),
    }
    single = MIXED[0]
    single_items = [x for d, x in items if d == single]
    variants[f"routed (whole bank), {single[0]}->{single[1]} only"] = lambda: routed.translate(
        single_items, src=single[0], tgt=single[1], **decode)
    if single in folded_translators:
        variants[f"folded standalone export, {single[0]}->{single[1]} only"] = \
            lambda: folded_translators[single].translate(single_items, **decode)
    times, outputs = {k: [] for k in variants}, {}
    for _ in range(rounds):
        for name, run in variants.items():
            started = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - started)
    sizes = {name: (len(single_items) if "only" in name else len(items)) for name in variants}
    result = {name: {"sentences": sizes[name], "seconds": times[name],
                     "sentences_per_s": [sizes[name] / t for t in times[name]],
                     "best_sentences_per_s": max(sizes[name] / t for t in times[name])} for name in variants}
    names = list(variants)
    # Tokens against today's per-direction sessions: equal but for near-ties that padding in another
    # batch composition can flip (a float moves by an ulp), so counted, not asserted.
    reference = outputs[names[2]]
    result["equal_to_per_direction_sessions"] = {n: f"{sum(a == b for a, b in zip(outputs[n], reference))} of "
                                                    f"{len(reference)}" for n in names[:4]}
    return result


def serve_load(base: Path, texts: dict, clients: int, requests: int, beam: int, max_new_tokens: int,
               max_batch: int) -> dict:
    """`modmt serve` in a subprocess, `requests` single-sentence requests from `clients` concurrent clients."""
    import httpx

    from modmt.runtime.routed_translator import RoutedTranslator

    n = len(next(iter(texts.values())))
    jobs = [(MIXED[i % len(MIXED)], texts[MIXED[i % len(MIXED)][0]][i % n]) for i in range(requests)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(Path(sys.executable).parent / "modmt"), "serve", str(base), "--port", str(port), "--beam", str(beam),
           "--max-new-tokens", str(max_new_tokens), "--max-batch", str(max_batch), "--queue", str(4 * requests),
           "--provider", "cpu"]
    server = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise ModmtError(f"modmt serve did not start: {server.stderr.read()[-300:]}")
            time.sleep(0.5)

        async def run_all():
            semaphore = asyncio.Semaphore(clients)
            async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=clients)) as c:
                async def one(direction, text):
                    async with semaphore:
                        started = time.perf_counter()
                        r = await c.post("/translate", json={"q": text, "source": direction[0], "target": direction[1]})
                        return r.status_code, r.json().get("translatedText"), time.perf_counter() - started

                started = time.perf_counter()
                answers = await asyncio.gather(*(one(*job) for job in jobs))
                return answers, time.perf_counter() - started

        answers, wall = asyncio.run(run_all())
    finally:
        server.terminate()
        server.wait(60)
    latencies = np.array([a[2] for a in answers])
    routed = RoutedTranslator([base], provider="cpu", verify="size")
    started = time.perf_counter()
    direct = routed.translate([x for _, x in jobs], directions=[d for d, _ in jobs], beam=beam, batch_size=max_batch,
                              max_new_tokens=max_new_tokens)
    api_seconds = time.perf_counter() - started
    return {"clients": clients, "requests": requests, "answered_200": sum(a[0] == 200 for a in answers),
            "requests_per_s": requests / wall, "p50_ms": 1000 * float(np.percentile(latencies, 50)),
            "p95_ms": 1000 * float(np.percentile(latencies, 95)), "wall_s": wall,
            # Batches form differently in the server (arrival order) than in one call (length order): padding
            # can move a float by an ulp, so count equal answers instead of asserting all.
            "answers_equal_python_api": sum(a[1] == d for a, d in zip(answers, direct)),
            "answers_missing": sum(a[1] is None for a in answers),
            "python_api_sentences_per_s": requests / api_seconds}


def run_routing(base: Path, corpus_dir: Path, out: Path, segments_count: int, rounds: int, batch: int, beam: int,
                max_new_tokens: int, folded: list[Path], clients: int, requests: int, parts: list[str]) -> dict:
    texts = segments(corpus_dir, max(segments_count, 1))
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores", "base": str(base), "segments": segments_count, "batch": batch, "beam": beam,
              "max_new_tokens": max_new_tokens}
    if "memory" in parts:
        result["memory"] = memory(base, texts)
    if "mixed" in parts:
        result["mixed"] = throughput(base, texts, rounds, batch, beam, max_new_tokens, folded)
    if "serve" in parts:
        result["serve"] = serve_load(base, texts, clients, requests, beam, max_new_tokens, 16)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result
