#!/bin/sh
# The tiny-50k result: search spaces/tiny.py under 50,000 parameters for one hour on this 2-core
# CPU, retrain the winner for 50 epochs, then write the report.
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas search spaces/tiny.py --budget 50000 --time 1h --data "$DATA" --out results/tiny-50k/search
nas retrain results/tiny-50k/search/winner.json --epochs 50 --data "$DATA" --out results/tiny-50k
nas report results/tiny-50k/search results/tiny-50k --pdf --out results/tiny-50k
