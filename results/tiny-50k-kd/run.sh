#!/bin/sh
# tiny-50k's searched network (results/tiny-50k/search) retrained with knowledge distillation from the resnet-5m
# answer (results/resnet-5m: a 3M-parameter residual network nas searched and trained on the same training split;
# its frozen model.py + model.pkl), 80 epochs, otherwise tiny-50k's recipe. The teacher, trained with label
# smoothing 0.2, gives soft predictions already (mean top probability 0.81 on the training images at
# temperature 1), so the temperature is 2, not the literature's 4. Started 2026-12-05 on a 2-core AMD EPYC with
# AVX512_BF16; the retrain resumes from its checkpoint when the same command is run again.
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas retrain results/tiny-50k/search/winner.json --epochs 80 --cutout 0 --weight-decay 1e-3 --tta-shift 1 --teacher results/resnet-5m --distill 0.9 --temperature 2 --data "$DATA" --out results/tiny-50k-kd
nas report results/tiny-50k/search results/tiny-50k-kd --pdf --out results/tiny-50k-kd
python results/tiny-50k-kd/evaluate.py --data "$DATA"
