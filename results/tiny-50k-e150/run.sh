#!/bin/sh
# tiny-50k's searched network (results/tiny-50k/search) retrained 150 epochs instead of 100, otherwise tiny-50k's
# recipe: with the C kernels on PyTorch's own OpenMP team (commit 7638f3d) its epoch takes 52-58 s on a 2-core
# AMD EPYC with AVX512_BF16 instead of 68-78 s, so tiny-50k's 35-minute search and 150 epochs fit about 2.5 hours.
# Started 2026-12-06; the retrain resumes from its checkpoint when the same command is run again.
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas retrain results/tiny-50k/search/winner.json --epochs 150 --cutout 0 --weight-decay 1e-3 --tta-shift 1 --data "$DATA" --out results/tiny-50k-e150
nas report results/tiny-50k/search results/tiny-50k-e150 --pdf --out results/tiny-50k-e150
python results/tiny-50k-e150/evaluate.py --data "$DATA"
