#!/bin/sh
# The control for results/tiny-50k-kd: tiny-50k's searched network (results/tiny-50k/search) retrained 80 epochs
# with the same recipe and seed as tiny-50k-kd, but no teacher, so that the two differ only in distillation.
# Started 2026-12-06 on a 2-core AMD EPYC with AVX512_BF16; the retrain resumes from its checkpoint when the same
# command is run again.
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas retrain results/tiny-50k/search/winner.json --epochs 80 --cutout 0 --weight-decay 1e-3 --tta-shift 1 --data "$DATA" --out results/tiny-50k-e80
nas report results/tiny-50k/search results/tiny-50k-e80 --pdf --out results/tiny-50k-e80
python results/tiny-50k-e80/evaluate.py --data "$DATA"
