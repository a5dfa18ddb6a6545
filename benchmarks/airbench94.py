"""airbench94's network expressed as a nas candidate (our own blocks, not airbench's code).

airbench94 (github.com/KellerJordan/cifar10-airbench): a 2x2 conv stem of 24 channels, three
conv-pool blocks of 64, 256 and 256 channels, a global pool and a linear layer: 1.97M params.
Differences kept on purpose: our stem is a trained conv + BN (airbench whitens with a frozen
PCA conv), our head averages where airbench max-pools, and BN weights train.
"""
from nas.spaces import Head, Space, Stage, Stem

space = Space(
    name="airbench94",
    description=__doc__.splitlines()[0],
    stem=Stem(width=24, kernel=2),
    stages=[Stage("convpool", 64), Stage("convpool", 256), Stage("convpool", 256)],
    head=Head(pool=1),
    act="gelu",
)
CANDIDATE = {}  # every value is fixed
