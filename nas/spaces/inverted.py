"""Inverted residual block (MBConv): expand 1x1, depthwise kxk, project 1x1; residual when shapes match."""
from torch import nn

from .layers import ConvBN
from .cost import ZERO, conv
from .registry import register


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


# --- registry: the block's cost and plot colour (nas.budget, nas.report); not exported ---

def cost(cin, cout, stride, size, kernel=3, expansion=4, act="relu"):
    hidden = cin * expansion
    expand = conv(cin, hidden, 1, 1, size)[0] if expansion != 1 else ZERO
    dw, s1 = conv(hidden, hidden, kernel, stride, size, groups=hidden)
    project, s2 = conv(hidden, cout, 1, 1, s1)
    return expand + dw + project, s2


FAMILY = register('mbconv', InvertedResidualBlock, cost, colour='#e78ac3')
