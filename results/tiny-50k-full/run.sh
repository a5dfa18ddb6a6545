#!/bin/sh
# tiny-50k near its caps: search spaces/tiny.py under 50,000 parameters and 12M multiply-accumulates per image
# (so that a retrain epoch stays near a minute on this 2-core CPU), training only candidates that use 90%+ of
# either cap (tiny-50k-fast's winner used 74% of the params and 89% of its 10M MACs), for 35 minutes; retrain
# the winner for 100 epochs with tiny-50k-fast's recipe (the full recipe without cutout); then the report.
# Search run on 2026-12-03 on the 2-core Intel Xeon (AMX-BF16); the retrain resumes from its checkpoint when
# the same command is run again.
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
# This folder was results/tiny-50k (the tiny-50k answer, 84.85%) from 2026-12-03 to 2026-12-04, when the
# ConvMixer search's network (results/tiny-50k-convmixer until then) replaced it; it has its first name again.
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas search spaces/tiny.py --budget 50000 --macs 12M --min-share 0.9 --time 35m --data "$DATA" --out results/tiny-50k-full/search
nas retrain results/tiny-50k-full/search/winner.json --epochs 100 --cutout 0 --tta-shift 1 --data "$DATA" --out results/tiny-50k-full
nas report results/tiny-50k-full/search results/tiny-50k-full --pdf --out results/tiny-50k-full
