"""Depthwise-separable block (MobileNet v1): depthwise conv-BN-act, then pointwise conv-BN-act."""
from torch import nn

from .layers import ConvBN


class SeparableBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, kernel=3, act="relu"):
        super().__init__()
        self.depthwise = ConvBN(cin, cin, kernel, stride, groups=cin, act=act)
        self.pointwise = ConvBN(cin, cout, 1, act=act)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))
