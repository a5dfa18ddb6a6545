"""Gated K-conv networks in airbench94's shape, for an epoch of minutes on a CPU.

airbench94 (the fastest known way to 94% on CIFAR-10) is three conv-pool groups of 64, 256 and
256 channels: conv, 2x2 max-pool, conv, each conv followed by BN and its activation. Here every
conv is a gated K-conv block (a = g(W . SpatialAvgPool(X)), O = sum_k a_k Conv_k(X), then BN and
the activation), so the backbone is six gated blocks, the first of each group at the size before
its pool; the classifier is a linear layer on the spatial mean of the last block. K, the gate and
its MLP, the residual knob, the group widths and the whitened stem are searched.
"""
from nas.spaces import Head, Space, Stage, Stem, choice

K = choice("k", [2, 3])
GATE = choice("gate", ["softmax", "sigmoid"])
GATE_HIDDEN = choice("gate_hidden", [0, 16])
RESIDUAL = choice("residual", [False, True])


def group(i, widths):
    """airbench's conv-pool group as two gated blocks: one at the group's input size, one after a 2x2 max-pool."""
    width = choice(f"g{i}_width", widths)
    knobs = dict(kernel=3, k=K, gate=GATE, gate_hidden=GATE_HIDDEN, residual=RESIDUAL, act="gelu")
    return [Stage("gated", width=width, **knobs), Stage("gated", width=width, downsample="maxpool", **knobs)]


space = Space(
    name="gated-airbench",
    description=__doc__.splitlines()[0],
    stem=Stem(width=choice("stem_width", [24, 32]), kernel=3, whiten=choice("whiten", [False, True])),
    stages=[*group(1, [48, 64]), *group(2, [192, 256]), *group(3, [192, 256])],
    head=Head(pool=1),
    act="gelu",
)
