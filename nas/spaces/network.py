"""The network every candidate builds: stem -> stages -> head.

Attribute names here (stem, stages, head) are the state_dict keys that exported code reproduces.
"""
from torch import nn

from . import convmixer, convpool, gated, inverted, mixer, plain, residual, separable
from .layers import ConvBN, WhiteStem, activation
from .registry import FAMILIES

FAMILY_FILES = (convmixer, convpool, gated, inverted, mixer, plain, residual, separable)  # importing each registers it
BLOCKS = {name: family.block for name, family in FAMILIES.items()}
POOLS = {"maxpool": nn.MaxPool2d, "avgpool": nn.AvgPool2d}


class Classifier(nn.Module):
    """Spatial average pool to pool x pool, flatten, optional hidden layer, linear classifier."""

    def __init__(self, cin, num_classes, pool=1, hidden=0, act="relu", dropout=0.0):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(pool)
        features = cin * pool * pool
        layers = [nn.Flatten()]
        if hidden:
            layers += [nn.Linear(features, hidden), activation(act)]
            features = hidden
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(features, num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x):
        return self.classifier(self.pool(x))


class Network(nn.Module):
    def __init__(self, arch):
        super().__init__()
        stem = WhiteStem if arch.stem_whiten else ConvBN
        self.stem = stem(arch.in_channels, arch.stem_width, arch.stem_kernel, act=arch.act)
        stages = []
        for stage in arch.plan():
            layers = []
            for layer in stage:
                if layer.kind in POOLS:
                    layers.append(POOLS[layer.kind](2))
                else:
                    layers.append(BLOCKS[layer.kind](layer.cin, layer.cout, stride=layer.stride, **layer.knobs))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.head = Classifier(arch.last_width, arch.num_classes, arch.head_pool, arch.head_hidden, arch.act,
                         arch.head_dropout)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)
