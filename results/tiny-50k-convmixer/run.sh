#!/bin/sh
# tiny-50k from a ConvMixer space (spaces/tiny_convmixer.py): most of the 50k parameters in a deep stack of
# ConvMixer blocks at 16 pixels, searched as tiny-50k was (35 minutes, candidates using 90%+ of the params or
# of a 16M MAC cap), then retrained for 100 epochs with the recipe of results/tiny-50k-wd1e-3. Started 2026-12-04
# on the 2-core Intel Xeon (AMX-BF16); the search and the retrain each resume when the same command is run again.
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas search spaces/tiny_convmixer.py --budget 50000 --macs 16M --min-share 0.9 --time 35m --data "$DATA" --out results/tiny-50k-convmixer/search
nas retrain results/tiny-50k-convmixer/search/winner.json --epochs 100 --cutout 0 --weight-decay 1e-3 --tta-shift 1 --data "$DATA" --out results/tiny-50k-convmixer
nas report results/tiny-50k-convmixer/search results/tiny-50k-convmixer --pdf --out results/tiny-50k-convmixer
python results/tiny-50k-convmixer/evaluate.py --data "$DATA"
