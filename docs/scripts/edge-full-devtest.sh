#!/usr/bin/env bash
# Edge precision on the whole DDTP devtest split (333 segments per direction, greedy), four directions:
# fp32, weight-only int8, w8a8 and int4 side by side, then the four-direction summary.
# 50 segments were too few: an export of the same recipe whose weights differ by float rounding
# (7 of 4.4M int8 values) moved en->fr by 1.8 chrF++ on 50 segments (docs/results.md).
set -x
cd "$(dirname "$0")/../.."
B=.venv/bin
for d in en-fr en-de fr-de de-fr; do
  $B/modmt-bench exports exports/q/$d-none exports/q/$d-int8 exports/q/$d-w8a8 exports/q/$d-int4 --data corpora/ddtp --limit 333 --beam 1 --max-new-tokens 64 --out results/edge-full/$d
done
$B/modmt-bench exports-summary results/edge-full/en-fr results/edge-full/en-de results/edge-full/fr-de results/edge-full/de-fr
