"""A network found by nas, frozen as plain PyTorch. Needs only torch.

    from model import Net
    model = Net()
    model.load_state_dict(torch.load("model.pkl", map_location=lambda storage, loc: storage))
"""
import torch
from torch import nn
import torch.nn.functional as F

MEAN = [0.4913, 0.4821, 0.4465]
STD = [0.2452, 0.2428, 0.2606]
INPUT_SIZE = 32

# Small layers the block families share. Imports only torch, so it can be frozen into exported code.


def activation(name):
    """A fresh activation module by name."""
    table = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "hardswish": nn.Hardswish}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; one of {sorted(table)}")
    return table[name]()


class ConvBN(nn.Sequential):
    """Conv (no bias) then BatchNorm, optionally an activation. 'Same' padding for odd kernels."""

    def __init__(self, cin, cout, kernel=3, stride=1, groups=1, act=None):
        layers = [
            nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act is not None:
            layers.append(activation(act))
        super().__init__(*layers)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW tensor."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


# Inverted residual block (MBConv): expand 1x1, depthwise kxk, project 1x1; residual when shapes match.



class InvertedResidualBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, kernel=3, expansion=4, act="relu"):
        super().__init__()
        hidden = cin * expansion
        self.expand = ConvBN(cin, hidden, 1, act=act) if expansion != 1 else nn.Identity()
        self.depthwise = ConvBN(hidden, hidden, kernel, stride, groups=hidden, act=act)
        self.project = ConvBN(hidden, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


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

class Net(nn.Module):
    """stem 32 | mbconv 24x1 k7 e3 | max/2 mbconv 24x3 k7 e3 | max/2 mbconv 64x1 k5 e1 | pool1 relu

    36,362 trainable parameters, 16,707,712 MACs per 32x32 image.
    Input: images normalised as (x / 255 - MEAN) / STD, NCHW float.
    """

    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, 32, 3, act='relu')
        self.stages = nn.ModuleList([
            nn.Sequential(
                InvertedResidualBlock(32, 24, stride=1, kernel=7, expansion=3, act='relu'),
            ),
            nn.Sequential(
                nn.MaxPool2d(2),
                InvertedResidualBlock(24, 24, stride=1, kernel=7, expansion=3, act='relu'),
                InvertedResidualBlock(24, 24, stride=1, kernel=7, expansion=3, act='relu'),
                InvertedResidualBlock(24, 24, stride=1, kernel=7, expansion=3, act='relu'),
            ),
            nn.Sequential(
                nn.MaxPool2d(2),
                InvertedResidualBlock(24, 64, stride=1, kernel=5, expansion=1, act='relu'),
            ),
        ])
        self.head = Classifier(64, 10, pool=1, hidden=0, act='relu', dropout=0.0)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)
