"""Token-mixer block (ConvNeXt/MixConv style).

x -> [project: a conv(k=stride)-BN when channels or size change]
  -> x + gamma * FFN(LayerNorm(MixConv(x)))
MixConv splits the channels into groups, each mixed by a depthwise conv of its own
kernel size (3, 5, ... up to `kernel`); FFN is a gated pointwise feed-forward:
W2(act(W1a x) * W1b x); gamma is a learned per-channel scale.
"""
import torch
from torch import nn

from .layers import ConvBN, LayerNorm2d, activation
from .cost import ZERO, Cost, conv
from .registry import register


def mix_kernels(kernel):
    """Kernel sizes of the depthwise groups: 3, 5, ... up to `kernel`."""
    return list(range(3, kernel + 1, 2)) or [kernel]


def split_channels(channels, groups):
    """Split `channels` into `groups` near-equal parts, the remainder to the first."""
    parts = [channels // groups] * groups
    parts[0] += channels - sum(parts)
    return parts


class MixerBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, kernel=5, expansion=2, act="gelu", layer_scale=0.1):
        super().__init__()
        self.project = ConvBN(cin, cout, stride, stride) if (stride != 1 or cin != cout) else nn.Identity()
        kernels = mix_kernels(kernel)
        self.splits = split_channels(cout, len(kernels))
        self.mix = nn.ModuleList(
            nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False) for c, k in zip(self.splits, kernels)
        )
        self.norm = LayerNorm2d(cout)
        hidden = max(1, int(round(cout * expansion)))
        self.fc1 = nn.Conv2d(cout, 2 * hidden, 1)
        self.act = activation(act)
        self.fc2 = nn.Conv2d(hidden, cout, 1)
        self.gamma = nn.Parameter(torch.full((cout, 1, 1), float(layer_scale)))

    def mixconv(self, x):
        parts = torch.split(x, self.splits, dim=1)
        return torch.cat([conv(p) for conv, p in zip(self.mix, parts)], dim=1)

    def forward(self, x):
        x = self.project(x)
        a, b = self.fc1(self.norm(self.mixconv(x))).chunk(2, dim=1)
        return x + self.gamma * self.fc2(self.act(a) * b)


# --- registry: the block's cost and plot colour (nas.budget, nas.report); not exported ---

def cost(cin, cout, stride, size, kernel=5, expansion=2, act="gelu", layer_scale=0.1):
    total = ZERO
    if stride != 1 or cin != cout:
        project, size = conv(cin, cout, stride, stride, size)
        total += project
    kernels = mix_kernels(kernel)
    for c, k in zip(split_channels(cout, len(kernels)), kernels):
        total += conv(c, c, k, 1, size, groups=c, bn=False)[0]
    hidden = max(1, int(round(cout * expansion)))
    total += Cost(2 * cout, 0)  # LayerNorm
    total += conv(cout, 2 * hidden, 1, 1, size, bias=True, bn=False)[0]
    total += conv(hidden, cout, 1, 1, size, bias=True, bn=False)[0]
    total += Cost(cout, 0)  # layer scale
    return total, size


FAMILY = register('mixer', MixerBlock, cost, colour='#a6d854')
