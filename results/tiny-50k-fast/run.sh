#!/bin/sh
# tiny-50k within the issue's 2.5 hours: search spaces/tiny.py under 50,000 parameters and 10M
# multiply-accumulates per image (the MAC cap keeps the retrain's epochs near a minute on this 2-core CPU),
# training only candidates using 70%+ of the budget, for 35 minutes; retrain the winner for 100 epochs
# without cutout (the 50-epoch retrain of results/tiny-50k-first underfit), then write the report.
# Run on 2026-12-03 on the 2-core Intel Xeon (AMX-BF16): search 35 min, retrain 6,216 s: 2.3 h in all.
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas search spaces/tiny.py --budget 50000 --macs 10M --min-share 0.7 --time 35m --data "$DATA" --out results/tiny-50k-fast/search
nas retrain results/tiny-50k-fast/search/winner.json --epochs 100 --cutout 0 --tta-shift 1 --data "$DATA" --out results/tiny-50k-fast
nas report results/tiny-50k-fast/search results/tiny-50k-fast --pdf --out results/tiny-50k-fast
