"""Peak memory of `modmt demo` (the README's command), counting every process it starts.

The demo trains and exports in child processes, so the figure that matters is the sum of resident
memory over the whole process tree at each moment, sampled here every 0.2 s with psutil, beside the
largest single process (what `/usr/bin/time -v` reports for a tree: its max over the processes).

    .venv/bin/python docs/scripts/demo-memory.py --workdir /tmp/demo-rss --out results/demo-memory.json
"""
import argparse
import json
import shutil
import sys
import time

import psutil

parser = argparse.ArgumentParser()
parser.add_argument("--workdir", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()
shutil.rmtree(args.workdir, ignore_errors=True)  # a fresh workdir: every step runs (the model stays cached)
started = time.perf_counter()
demo = psutil.Popen([sys.executable, "-c", "from modmt.app.cli import main; main()", "demo",
                     "--workdir", args.workdir], stdout=sys.stdout, stderr=sys.stderr)
peak_tree = peak_single = 0
per_process = {}  # "parent", or "child N (from Ms)": which phase the peak belongs to (the log says what ran when)
while demo.poll() is None:
    try:
        processes = [demo] + demo.children(recursive=True)
        sizes = []
        for p in processes:
            try:
                rss = p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            sizes.append(rss)
            label = "parent" if p.pid == demo.pid else f"child {p.pid} (from {p.create_time() - demo.create_time():.0f} s)"
            per_process[label] = max(per_process.get(label, 0), rss)
        peak_tree, peak_single = max(peak_tree, sum(sizes)), max(peak_single, max(sizes, default=0))
    except psutil.NoSuchProcess:
        pass
    time.sleep(0.2)
result = {"returncode": demo.returncode, "seconds": round(time.perf_counter() - started, 1),
          "peak_tree_rss_bytes": peak_tree, "peak_single_process_rss_bytes": peak_single,
          "peak_rss_bytes_per_process": {k: v for k, v in per_process.items() if v > 100e6},
          "report": json.load(open(f"{args.workdir}/demo-report.json")) if demo.returncode == 0 else None}
with open(args.out, "w") as f:
    json.dump(result, f, indent=2, ensure_ascii=False)
print(json.dumps({k: v for k, v in result.items() if k != "report"}))
