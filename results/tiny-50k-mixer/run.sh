#!/bin/sh
# tiny-50k with a token-mixer space: search spaces/tiny_mixer.py under 50,000 parameters, training only
# candidates using 90%+ of the budget, for 25 minutes; retrain the winner for 100 epochs with the recipe of
# results/tiny-50k-fast (the full recipe without cutout), so that the network is what differs; then the report.
# Run on 2026-12-03 on the 2-core Intel Xeon (AMX-BF16).
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas search spaces/tiny_mixer.py --budget 50000 --min-share 0.9 --time 25m --data "$DATA" --out results/tiny-50k-mixer/search
nas retrain results/tiny-50k-mixer/search/winner.json --epochs 100 --cutout 0 --tta-shift 1 --data "$DATA" --out results/tiny-50k-mixer
nas report results/tiny-50k-mixer/search results/tiny-50k-mixer --pdf --out results/tiny-50k-mixer
