#!/bin/sh
# The recipe on the tiny-50k network, the other way: its winner (results/tiny-50k-full/search) retrained with the
# same 100-epoch recipe and twice the weight decay (1e-3 against 5e-4). A tenth of the decay (results/tiny-50k-wd5e-5)
# ended lower in training accuracy as well as test (90.1% / 83.62% against 91.1% / 84.85%): with BatchNorm, decay
# keeps the effective step size up late in the schedule. Started 2026-12-03 on the 2-core Intel Xeon (AMX-BF16);
# it resumes from its checkpoint when the same command is run again.
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
# Its winner's folder was results/tiny-50k until 2026-12-04 (now results/tiny-50k-full): the commands recorded in
# result.json name the old folder.
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas retrain results/tiny-50k-full/search/winner.json --epochs 100 --cutout 0 --weight-decay 1e-3 --tta-shift 1 --data "$DATA" --out results/tiny-50k-wd1e-3
nas report results/tiny-50k-full/search results/tiny-50k-wd1e-3 --pdf --out results/tiny-50k-wd1e-3
python results/tiny-50k-wd1e-3/evaluate.py --data "$DATA"
