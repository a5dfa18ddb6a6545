"""Conv-pool block (VGG / airbench style): conv, 2x2 max-pool, BN, act, then conv, BN, act.
Halves the size itself, so its stage needs no other downsampling."""
from torch import nn

from .layers import ConvBN, activation
from .cost import conv
from .registry import register


class ConvPoolBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, kernel=3, act="gelu"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = activation(act)
        self.conv2 = ConvBN(cout, cout, kernel, act=act)

    def forward(self, x):
        return self.conv2(self.act1(self.bn1(self.pool(self.conv1(x)))))


# --- registry: the block's cost and plot colour (nas.budget, nas.report); not exported ---

def cost(cin, cout, stride, size, kernel=3, act="gelu"):
    c1, s1 = conv(cin, cout, kernel, stride, size)
    c2, s2 = conv(cout, cout, kernel, 1, s1 // 2)
    return c1 + c2, s2


FAMILY = register('convpool', ConvPoolBlock, cost, colour='#e5c494')
