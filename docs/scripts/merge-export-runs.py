"""Put the rows of several `modmt-bench exports` runs of one direction side by side, so that a variant
measured later is compared with the fp32 row of an earlier run instead of decoding fp32 again.

    .venv/bin/python docs/scripts/merge-export-runs.py OUT_DIR RUN_DIR [RUN_DIR...]

Every run must hold the same direction, segments, beam and references (checked); OUT_DIR/exports.json
gets the first run's header and every run's rows in order, for `modmt-bench exports-summary`.
"""
import json
import sys
from pathlib import Path

out, runs = Path(sys.argv[1]), [json.loads((Path(d) / "exports.json").read_text()) for d in sys.argv[2:]]
same = ("src", "tgt", "segments", "beam", "references", "signature")
for run in runs[1:]:
    for key in same:
        if run[key] != runs[0][key]:
            sys.exit(f"runs differ in {key}: they cannot be put side by side")
merged = {**runs[0], "rows": [row for run in runs for row in run["rows"]]}
out.mkdir(parents=True, exist_ok=True)
(out / "exports.json").write_text(json.dumps(merged, ensure_ascii=False, indent=1) + "\n")
print(f"{out / 'exports.json'}: {len(merged['rows'])} rows")
