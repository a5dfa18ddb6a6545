#!/bin/sh
# The gated result: search spaces/gated_airbench.py (gated K-conv blocks in airbench94's shape:
# three groups of two gated blocks with a 2x2 max-pool between them, average-pool classifier) under 260M
# multiply-accumulates per image for 20 minutes on this 2-core CPU, retrain the winner for 24 epochs with
# airbench94's optimisation (--recipe airbench) plus cutout 12, then write the report. The retrain was run
# with --out run/gated-cutout (result.json records that command) and its files copied here.
# This folder was results/gated-airbench until 2026-12-02 (the commands recorded in result.json and
# search/search.json name that folder); the first gated answer (88.02%) is now results/gated-first.
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas search spaces/gated_airbench.py --macs 260M --time 20m --data "$DATA" --out results/gated/search
nas retrain results/gated/search/winner.json --recipe airbench --epochs 24 --tta-shift 1 --cutout 12 --data "$DATA" --out results/gated
nas report results/gated/search results/gated --pdf --out results/gated
