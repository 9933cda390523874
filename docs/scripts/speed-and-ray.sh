#!/usr/bin/env bash
# Session-3 measurements on an idle machine: edge precision speed (#11) and Ray scale-out (#12).
# Needs the exports under exports/q/ (docs/results.md, "Edge precision": modmt-export ... --quantize) and corpora/ddtp.
set -x
cd "$(dirname "$0")/../.."
B=.venv/bin
date
# 11: fp32/int8/int4 side by side with CTranslate2 on the same merged weights (fp32 and int8_float32).
$B/modmt-bench latency exports/q/en-fr-none exports/q/en-fr-int8 exports/q/en-fr-int4 --engines modmt,ctranslate2 \
  --data corpora/ddtp --limit 16 --batch 8 --beam 5 --latency-beam 1 --max-new-tokens 64 --out results/latency-q
date
# 12: the same 96 lines (two files) greedy, batch 8: one process vs Ray with 1x2 and 2x1 workers x threads.
rm -rf results/scale/out-*
/usr/bin/time -v $B/modmt-translate exports/q/en-fr-int8 -i results/scale/in/a.txt -o results/scale/out-single-a.txt --beam 1 --max-new-tokens 64 --threads 2 2> results/scale/single-a.log
/usr/bin/time -v $B/modmt-translate exports/q/en-fr-int8 -i results/scale/in/b.txt -o results/scale/out-single-b.txt --beam 1 --max-new-tokens 64 --threads 2 2> results/scale/single-b.log
/usr/bin/time -v $B/modmt-translate exports/q/en-fr-int8 -i results/scale/in -o results/scale/out-ray1 --ray local --workers 1 --threads 2 --beam 1 --max-new-tokens 64 --shard-lines 32 2> results/scale/ray1.log
/usr/bin/time -v $B/modmt-translate exports/q/en-fr-int8 -i results/scale/in -o results/scale/out-ray2 --ray local --workers 2 --threads 1 --beam 1 --max-new-tokens 64 --shard-lines 32 2> results/scale/ray2.log
cmp results/scale/out-single-a.txt results/scale/out-ray1/a.txt && cmp results/scale/out-single-b.txt results/scale/out-ray1/b.txt && echo "RAY (2 threads) OUTPUT IDENTICAL TO SINGLE PROCESS"
diff -r results/scale/out-ray1 results/scale/out-ray2 -x .modmt-ray && echo "RAY 1x2 == RAY 2x1"
date
