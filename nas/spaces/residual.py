"""Residual basic block: ReLU(S(x) + F(x)), F = conv-BN-act-conv-BN, S identity or a projection."""
from torch import nn

from .layers import ConvBN, activation
from .cost import ZERO, conv
from .registry import register


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, kernel=3, skip_kernel=1, act="relu"):
        super().__init__()
        self.f = nn.Sequential(ConvBN(cin, cout, kernel, stride, act=act), ConvBN(cout, cout, kernel))
        if stride == 1 and cin == cout:
            self.s = nn.Identity()
        else:
            self.s = ConvBN(cin, cout, skip_kernel, stride)
        self.act = activation(act)

    def forward(self, x):
        return self.act(self.s(x) + self.f(x))


# --- registry: the block's cost and plot colour (nas.budget, nas.report); not exported ---

def cost(cin, cout, stride, size, kernel=3, skip_kernel=1, act="relu"):
    c1, s1 = conv(cin, cout, kernel, stride, size)
    c2, s2 = conv(cout, cout, kernel, 1, s1)
    skip = ZERO if (stride == 1 and cin == cout) else conv(cin, cout, skip_kernel, stride, size)[0]
    return c1 + c2 + skip, s2


FAMILY = register('residual', ResidualBlock, cost, colour='#66c2a5')
