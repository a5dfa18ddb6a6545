#!/bin/sh
# tiny-50k from spaces/tiny_convmixer_wide.py: tiny_convmixer's ranges moved up around the corner where every top
# candidate of results/tiny-50k's search sat (mixer stack 72-112 wide instead of 48-72), searched as tiny-50k was
# (candidates using 90%+ of the 50k params, 16M MAC cap) for 30 minutes, then retrained 100 epochs with
# tiny-50k's recipe, so the two differ in the space. Started 2026-12-07 on a 2-core AMD EPYC with AVX512_BF16;
# the search and the retrain each resume when the same command is run again.
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas search spaces/tiny_convmixer_wide.py --budget 50000 --macs 16M --min-share 0.9 --time 30m --data "$DATA" --out results/tiny-50k-wide/search
nas retrain results/tiny-50k-wide/search/winner.json --epochs 100 --cutout 0 --weight-decay 1e-3 --tta-shift 1 --data "$DATA" --out results/tiny-50k-wide
nas report results/tiny-50k-wide/search results/tiny-50k-wide --pdf --out results/tiny-50k-wide
python results/tiny-50k-wide/evaluate.py --data "$DATA"
