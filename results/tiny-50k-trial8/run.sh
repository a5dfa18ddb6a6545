#!/bin/sh
# tiny-50k's search (results/tiny-50k/search) ranked its deep candidates low on the first rung, a quarter epoch
# that ranks no better than chance (docs/benchmarks.md, "The first rung, other ways"). This retrains one of them,
# trial 8 (a six-block ConvMixer stack at 16 pixels instead of the winner's three; 47,618 params, 11.5M MACs),
# with the winner's recipe (results/tiny-50k: no cutout, weight decay 1e-3) for 150 epochs, as results/tiny-50k-e150 trained the winner, to see whether depth
# the proxy did not reward pays at full training. Started 2026-12-07 on a 2-core AMD EPYC with AVX512_BF16;
# the retrain resumes from its checkpoint when the same command is run again.
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas retrain results/tiny-50k/search/winner.json --trial 8 --epochs 150 --cutout 0 --weight-decay 1e-3 --tta-shift 1 --data "$DATA" --out results/tiny-50k-trial8
nas report results/tiny-50k/search results/tiny-50k-trial8 --pdf --out results/tiny-50k-trial8
python results/tiny-50k-trial8/evaluate.py --data "$DATA"
