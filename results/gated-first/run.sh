#!/bin/sh
# The first gated answer (88.02%): search spaces/gated.py (a backbone of gated K-conv blocks, average-pool classifier)
# under 150M multiply-accumulates per image for one hour on this 2-core CPU, retrain the winner, then
# write the report. The MAC cap keeps an epoch to minutes on a CPU (airbench94's network is 118M).
# This folder was results/gated until 2026-12-02, when the better answer (in airbench's shape, 90.16%)
# took that name; the commands recorded in result.json and search/search.json name the old folder.
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas search spaces/gated.py --macs 150M --time 1h --data "$DATA" --out results/gated-first/search
nas retrain results/gated-first/search/winner.json --epochs 30 --data "$DATA" --out results/gated-first
nas report results/gated-first/search results/gated-first --pdf --out results/gated-first
