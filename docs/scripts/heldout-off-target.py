"""Off-target outputs on held-out paragraphs, through a real `modmt serve`, labelled by a detector modmt does not use.

Starts `modmt serve BASE` (with the extra server options given after --), sends each language's paragraphs
(heldout-paragraphs.py's OUT/<lang>.txt) into every other language the base serves, one request per
direction, and labels every output with langdetect (Google's language-detection profiles; modmt labels with
py3langid). Off-target: langdetect's first language is not the target. Copy: the output equals its source
(whitespace aside). Writes OUT.jsonl (every output) and prints the shares per direction and in all.

    python heldout-off-target.py BASE PARAGRAPHS OUT [--serve-bin modmt] [-- --no-guard ...]
"""
import argparse
import json
import socket
import subprocess
import sys
import time
from itertools import permutations
from pathlib import Path

import httpx
from langdetect import DetectorFactory, detect_langs

DetectorFactory.seed = 0


def label(text: str) -> str | None:
    try:
        return detect_langs(text)[0].lang.split("-")[0] if text.strip() else None
    except Exception:  # langdetect raises on text without features (digits only)
        return None


def same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("paragraphs", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--serve-bin", default=str(Path(sys.executable).parent / "modmt"))
    parser.add_argument("serve_options", nargs="*")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(args.out.with_suffix(".serve.log"), "w")
    server = subprocess.Popen([args.serve_bin, "serve", args.base, "--port", str(port), *args.serve_options],
                              stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start; see {log.name}")
            time.sleep(1)
        langs = sorted({e["code"] for e in httpx.get(f"{url}/languages").json()})
        texts = {lang: (args.paragraphs / f"{lang}.txt").read_text(encoding="utf-8").splitlines() for lang in langs}
        rows, started = [], time.perf_counter()
        for src, tgt in permutations(langs, 2):
            answer = httpx.post(f"{url}/translate", json={"q": texts[src], "source": src, "target": tgt},
                                timeout=3600).json()["translatedText"]
            for source, output in zip(texts[src], answer):
                found = label(output)
                rows.append({"src": src, "tgt": tgt, "source": source, "output": output, "label": found,
                             "off_target": found != tgt, "copy": same(source, output)})
            done = [r for r in rows if (r["src"], r["tgt"]) == (src, tgt)]
            print(f"{src}->{tgt}: {sum(r['off_target'] for r in done)} of {len(done)} off-target, "
                  f"{sum(r['copy'] for r in done)} copies", flush=True)
        metrics = httpx.get(f"{url}/metrics").text
    finally:
        server.terminate()
        server.wait(60)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    off, copies = sum(r["off_target"] for r in rows), sum(r["copy"] for r in rows)
    guard = [line for line in metrics.splitlines() if line.startswith("modmt_guard_sentences_total")]
    verdicts = {}
    for line in guard:
        verdict = line.split('verdict="')[1].split('"')[0]
        verdicts[verdict] = verdicts.get(verdict, 0) + float(line.rsplit(" ", 1)[1])
    print(f"all: {off} of {len(rows)} off-target ({100 * off / len(rows):.1f} %), {copies} copies; "
          f"{time.perf_counter() - started:.0f} s; guard verdicts per sentence piece: {verdicts}")


if __name__ == "__main__":
    main()
