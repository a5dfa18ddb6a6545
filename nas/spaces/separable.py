"""Depthwise-separable block (MobileNet v1): depthwise conv-BN-act, then pointwise conv-BN-act."""
from torch import nn

from .layers import ConvBN
from .cost import conv
from .registry import register


class SeparableBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, kernel=3, act="relu"):
        super().__init__()
        self.depthwise = ConvBN(cin, cin, kernel, stride, groups=cin, act=act)
        self.pointwise = ConvBN(cin, cout, 1, act=act)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


# --- registry: the block's cost and plot colour (nas.budget, nas.report); not exported ---

def cost(cin, cout, stride, size, kernel=3, act="relu"):
    dw, s1 = conv(cin, cin, kernel, stride, size, groups=cin)
    pw, s2 = conv(cin, cout, 1, 1, s1)
    return dw + pw, s2


FAMILY = register('dwsep', SeparableBlock, cost, colour='#fc8d62')
