"""Plain block: conv-BN-activation."""
from torch import nn

from .layers import ConvBN


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, kernel=3, act="relu"):
        super().__init__()
        self.conv = ConvBN(cin, cout, kernel, stride, act=act)

    def forward(self, x):
        return self.conv(x)
