"""ConvMixer block (Trockman & Kolter, "Patches Are All You Need?", 2022), BatchNorm throughout.

x -> [project: a conv(k=stride)-BN-act when channels or size change]
  -> x + depthwise(x)      spatial mixing: a k x k depthwise conv-BN-act, with a skip
  -> pointwise(x)          channel mixing: a 1x1 conv-BN-act
Unlike the token-mixer (LayerNorm, gated FFN, layer scale), every norm is a BatchNorm, which
trains well under SGD; unlike dwsep, the depthwise half has a skip, so deep stacks train.
"""
from torch import nn

from .layers import ConvBN
from .cost import ZERO, conv
from .registry import register


class ConvMixerBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, kernel=5, act="gelu"):
        super().__init__()
        self.project = ConvBN(cin, cout, stride, stride, act=act) if (stride != 1 or cin != cout) else nn.Identity()
        self.depthwise = ConvBN(cout, cout, kernel, groups=cout, act=act)
        self.pointwise = ConvBN(cout, cout, 1, act=act)

    def forward(self, x):
        x = self.project(x)
        return self.pointwise(x + self.depthwise(x))


# --- registry: the block's cost and plot colour (nas.budget, nas.report); not exported ---

def cost(cin, cout, stride, size, kernel=5, act="gelu"):
    total = ZERO
    if stride != 1 or cin != cout:
        total, size = conv(cin, cout, stride, stride, size)
    dw, size = conv(cout, cout, kernel, 1, size, groups=cout)
    pw, size = conv(cout, cout, 1, 1, size)
    return total + dw + pw, size


FAMILY = register('convmixer', ConvMixerBlock, cost, colour='#b3b3b3')
