#!/bin/sh
# The resnet-5m result: search spaces/resnet.py (basic residual blocks ReLU(S(x) + F(x)), every stage
# residual) under 5,000,000 parameters and 150M multiply-accumulates per image for one hour on this
# 2-core CPU, retrain the winner, then write the report. The MAC cap keeps an epoch to minutes on a
# CPU (airbench94's network, which reaches 94% in 10 GPU epochs, is about 150M).
# This folder was results/resnet-5m until 2026-12-03 (the commands recorded in result.json and
# search/search.json name that folder); the resnet-5m answer is now results/resnet-5m (90.25%).
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas search spaces/resnet.py --budget 5M --macs 150M --time 1h --data "$DATA" --out results/resnet-5m-first/search
nas retrain results/resnet-5m-first/search/winner.json --epochs 30 --data "$DATA" --out results/resnet-5m-first
nas report results/resnet-5m-first/search results/resnet-5m-first --pdf --out results/resnet-5m-first
