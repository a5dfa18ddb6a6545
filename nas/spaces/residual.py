"""Residual basic block: ReLU(S(x) + F(x)), F = conv-BN-act-conv-BN, S identity or a projection."""
from torch import nn

from .layers import ConvBN, activation


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
