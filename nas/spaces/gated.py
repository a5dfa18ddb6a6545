"""Gated K-conv block.

a = g(W . SpatialAvgPool(X))          a K-vector per sample (W: a linear layer or a small MLP)
O = a_1 Conv_1(X) + ... + a_K Conv_K(X)
Y = act(BN(O) + S(X)) with residual, else act(BN(O))
The K convs are held as one conv with K*cout output channels; slice k is Conv_k.
"""
import torch
from torch import nn

from .layers import ConvBN, activation
from .cost import ZERO, Cost, conv, linear
from .registry import register


def gate_function(name):
    table = {
        "softmax": lambda z: torch.softmax(z, dim=1),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
    }
    if name not in table:
        raise ValueError(f"unknown gate {name!r}; one of {sorted(table)}")
    return table[name]


class GatedKConvBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, kernel=3, k=3, gate="softmax", gate_hidden=0,
                 residual=False, act="relu"):
        super().__init__()
        self.k, self.cout, self.gate_name = k, cout, gate
        if gate_hidden:
            self.attention = nn.Sequential(nn.Linear(cin, gate_hidden), nn.ReLU(), nn.Linear(gate_hidden, k))
        else:
            self.attention = nn.Linear(cin, k)
        self.convs = nn.Conv2d(cin, k * cout, kernel, stride, padding=(kernel - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = activation(act)
        self.skip = None
        if residual:
            self.skip = nn.Identity() if (stride == 1 and cin == cout) else ConvBN(cin, cout, 1, stride)

    def gate(self, x):
        """The per-sample gate a = g(W . mean_hw(x)), shape (N, K)."""
        return gate_function(self.gate_name)(self.attention(x.mean(dim=(2, 3))))

    def mix(self, a, y):
        """O = sum_k a_k Conv_k(X), from y = the K convs' outputs side by side on the channels. In
        channels_last memory (how nas trains) as K multiply-adds on NHWC views, which keeps the
        layout and ran fwd+bwd 12x faster than einsum's batched matmul on a CPU; otherwise einsum
        (the same sum; what fvcore and ptflops trace to count the block's MACs)."""
        n, _, h, w = y.shape
        if not y.is_contiguous(memory_format=torch.channels_last) or y.is_contiguous():
            return torch.einsum("nk,nkchw->nchw", a, y.view(n, self.k, self.cout, h, w))
        parts = y.permute(0, 2, 3, 1).view(n, h, w, self.k, self.cout)
        out = parts[:, :, :, 0] * a[:, 0].view(n, 1, 1, 1)
        for i in range(1, self.k):
            out = out + parts[:, :, :, i] * a[:, i].view(n, 1, 1, 1)
        return out.permute(0, 3, 1, 2)

    def forward(self, x):
        a = self.gate(x)
        y = self.bn(self.mix(a, self.convs(x)))
        if self.skip is not None:
            y = y + self.skip(x)
        return self.act(y)


# --- registry: the block's cost and plot colour (nas.budget, nas.report); not exported ---

def cost(cin, cout, stride, size, kernel=3, k=3, gate="softmax", gate_hidden=0, residual=False, act="relu"):
    gate_cost = linear(cin, gate_hidden) + linear(gate_hidden, k) if gate_hidden else linear(cin, k)
    convs, out = conv(cin, k * cout, kernel, stride, size, bn=False)
    mixing = Cost(2 * cout, k * cout * out * out)  # BN affine; the einsum over k
    skip = ZERO
    if residual and not (stride == 1 and cin == cout):
        skip = conv(cin, cout, 1, stride, size)[0]
    return gate_cost + convs + mixing + skip, out


FAMILY = register('gated', GatedKConvBlock, cost, colour='#ffd92f')
