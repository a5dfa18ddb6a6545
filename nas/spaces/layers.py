"""Small layers the block families share. Imports only torch, so it can be frozen into exported code."""
import torch
from torch import nn
import torch.nn.functional as F


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
