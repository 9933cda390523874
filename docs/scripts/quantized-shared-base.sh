#!/usr/bin/env bash
# Quantized shared base (int8) on the real model: export once, two directions, quality and load time vs standalone.
# Needs the exports under exports/q/ (docs/results.md, "Edge precision": modmt-export ... --quantize) and corpora/ddtp.
set -x
cd "$(dirname "$0")/../.."
B=.venv/bin
date
rm -rf exports/qs
/usr/bin/time -v $B/modmt-export en fr --pool results/reproduce-cpu/pool --w 1:9 --quantize int8 --shared-base exports/qs/base-int8 --out exports/qs/en-fr-int8 2> results/qs-export-base.log
tail -3 results/qs-export-base.log
$B/modmt-export fr de --pool results/reproduce-cpu/pool --w 1:9 --quantize int8 --shared-base exports/qs/base-int8 --out exports/qs/fr-de-int8
du -sb exports/qs/base-int8 exports/qs/base-int8/adapters exports/q/en-fr-int8
date
for d in en-fr fr-de; do
  $B/modmt-bench exports exports/q/$d-none exports/q/$d-int8 exports/qs/$d-int8 --data corpora/ddtp --limit 50 --beam 1 --max-new-tokens 64 --out results/edge-shared/$d
done
date
