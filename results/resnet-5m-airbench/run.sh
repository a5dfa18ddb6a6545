#!/bin/sh
# A second resnet-5m answer (89.26%, below the 89.47% of results/resnet-5m, so not the answer): search
# spaces/resnet_airbench.py (basic residual blocks ReLU(S(x) + F(x)), F = conv-BN-ReLU-conv-BN, every stage
# residual, in airbench's shape: a whitened stem and three groups of a 2x2 max-pool then residual blocks)
# under 5,000,000 parameters and 200M multiply-accumulates per image for 40 minutes on this 2-core CPU,
# retrain the winner for 24 epochs with airbench94's optimisation (--recipe airbench) plus cutout 12, then
# write the report.
# DATA: the unpacked offline copy (python ../shared/data/unpack_cifar10.py --out DIR).
set -e
DATA=${DATA:-/work/data/cifar10.npz}
cd "$(dirname "$0")/../.."
nas search spaces/resnet_airbench.py --budget 5M --macs 200M --time 40m --data "$DATA" --out results/resnet-5m-airbench/search
nas retrain results/resnet-5m-airbench/search/winner.json --recipe airbench --epochs 24 --tta-shift 1 --cutout 12 --data "$DATA" --out results/resnet-5m-airbench
nas report results/resnet-5m-airbench/search results/resnet-5m-airbench --pdf --out results/resnet-5m-airbench
