"""Plain block: conv-BN-activation."""
from torch import nn

from .layers import ConvBN
from .cost import conv
from .registry import register


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, kernel=3, act="relu"):
        super().__init__()
        self.conv = ConvBN(cin, cout, kernel, stride, act=act)

    def forward(self, x):
        return self.conv(x)


# --- registry: the block's cost and plot colour (nas.budget, nas.report); not exported ---

def cost(cin, cout, stride, size, kernel=3, act="relu"):
    return conv(cin, cout, kernel, stride, size)


FAMILY = register('conv', ConvBlock, cost, colour='#8da0cb')
