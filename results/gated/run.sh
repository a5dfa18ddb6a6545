#!/bin/sh
# The gated result: search spaces/gated.py (a backbone of gated K-conv blocks, average-pool classifier)
# under 150M multiply-accumulates per image for one hour on this 2-core CPU, retrain the winner, then
# write the report. The MAC cap keeps an epoch to minutes on a CPU (airbench94's network is 118M).
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas search spaces/gated.py --macs 150M --time 1h --data "$DATA" --out results/gated/search
nas retrain results/gated/search/winner.json --epochs 30 --data "$DATA" --out results/gated
nas report results/gated/search results/gated --pdf --out results/gated
