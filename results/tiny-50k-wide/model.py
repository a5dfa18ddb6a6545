"""A network found by nas, frozen as plain PyTorch. Needs only torch.

    from model import Net
    model = Net()
    model.load_state_dict(torch.load("model.pkl", map_location=lambda storage, loc: storage))
"""
import torch
from torch import nn
import torch.nn.functional as F

MEAN = [0.4913, 0.4821, 0.4465]
STD = [0.2452, 0.2428, 0.2606]
INPUT_SIZE = 32

# Small layers the block families share. Imports only torch, so it can be frozen into exported code.


def activation(name):
    """A fresh activation module by name."""
    table = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "hardswish": nn.Hardswish}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; one of {sorted(table)}")
    return table[name]()


class ConvBN(nn.Sequential):
    """Conv (no bias) then BatchNorm, optionally an activation. 'Same' padding for odd kernels."""

    def __init__(self, cin, cout, kernel=3, stride=1, groups=1, act=None):
        layers = [
            nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act is not None:
            layers.append(activation(act))
        super().__init__(*layers)


class Whitening(nn.Module):
    """airbench's frozen first layer: a `patch` x `patch` convolution, no padding, whose filters
    whiten the training images' patches: the eigenvectors of the patches' covariance, each divided
    by the square root of its eigenvalue (+ eps), and their negatives: 2 * cin * patch^2 outputs.
    The filters are a buffer, fitted once from training images before training (`fit`) and saved
    with the weights; only the bias trains."""

    def __init__(self, cin, patch=2, eps=5e-4):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.zeros(2 * cin * patch * patch, cin, patch, patch))
        self.bias = nn.Parameter(torch.zeros(2 * cin * patch * patch))

    @property
    def out_channels(self):
        return self.weight.shape[0]

    @torch.no_grad()
    def fit(self, images):
        """Set the filters from `images`, normalised float NCHW (a few thousand suffice)."""
        cout, cin, patch, _ = self.weight.shape
        patches = images.float().unfold(2, patch, 1).unfold(3, patch, 1)  # N, C, H', W', p, p
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, cin * patch * patch).double()
        values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (vectors / (values.clamp(min=0) + self.eps).sqrt()).T.flip(0)  # largest eigenvalue first
        filters = filters.reshape(-1, cin, patch, patch).to(self.weight)
        self.weight.copy_(torch.cat([filters, -filters]))

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias)


class WhiteStem(nn.Sequential):
    """The stem with a whitening layer first: Whitening, activation, then ConvBN with activation.
    The whitening takes one pixel off each side's size (a 2x2 patch, no padding)."""

    def __init__(self, cin, cout, kernel=3, act="relu"):
        white = Whitening(cin)
        super().__init__(white, activation(act), ConvBN(white.out_channels, cout, kernel, act=act))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW tensor."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


# ConvMixer block (Trockman & Kolter, "Patches Are All You Need?", 2022), BatchNorm throughout.
#
# x -> [project: a conv(k=stride)-BN-act when channels or size change]
#   -> x + depthwise(x)      spatial mixing: a k x k depthwise conv-BN-act, with a skip
#   -> pointwise(x)          channel mixing: a 1x1 conv-BN-act
# Unlike the token-mixer (LayerNorm, gated FFN, layer scale), every norm is a BatchNorm, which
# trains well under SGD; unlike dwsep, the depthwise half has a skip, so deep stacks train.



class ConvMixerBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, kernel=5, act="gelu"):
        super().__init__()
        self.project = ConvBN(cin, cout, stride, stride, act=act) if (stride != 1 or cin != cout) else nn.Identity()
        self.depthwise = ConvBN(cout, cout, kernel, groups=cout, act=act)
        self.pointwise = ConvBN(cout, cout, 1, act=act)

    def forward(self, x):
        x = self.project(x)
        return self.pointwise(x + self.depthwise(x))


# Depthwise-separable block (MobileNet v1): depthwise conv-BN-act, then pointwise conv-BN-act.



class SeparableBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, kernel=3, act="relu"):
        super().__init__()
        self.depthwise = ConvBN(cin, cin, kernel, stride, groups=cin, act=act)
        self.pointwise = ConvBN(cin, cout, 1, act=act)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


# Inverted residual block (MBConv): expand 1x1, depthwise kxk, project 1x1; residual when shapes match.



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


class Classifier(nn.Module):
    """Spatial average pool to pool x pool, flatten, optional hidden layer, linear classifier."""

    def __init__(self, cin, num_classes, pool=1, hidden=0, act="relu", dropout=0.0):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(pool)
        features = cin * pool * pool
        layers = [nn.Flatten()]
        if hidden:
            layers += [nn.Linear(features, hidden), activation(act)]
            features = hidden
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(features, num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x):
        return self.classifier(self.pool(x))

class Net(nn.Module):
    """stem 40 | dwsep 40x1 k5 | max/2 convmixer 96x2 k7 | max/2 mbconv 48x2 k5 e1 | pool1 gelu

    48,042 trainable parameters, 12,551,648 MACs per 32x32 image.
    Input: images normalised as (x / 255 - MEAN) / STD, NCHW float.
    """

    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, 40, 3, act='gelu')
        self.stages = nn.ModuleList([
            nn.Sequential(
                SeparableBlock(40, 40, stride=1, kernel=5, act='gelu'),
            ),
            nn.Sequential(
                nn.MaxPool2d(2),
                ConvMixerBlock(40, 96, stride=1, kernel=7, act='gelu'),
                ConvMixerBlock(96, 96, stride=1, kernel=7, act='gelu'),
            ),
            nn.Sequential(
                nn.MaxPool2d(2),
                InvertedResidualBlock(96, 48, stride=1, kernel=5, expansion=1, act='gelu'),
                InvertedResidualBlock(48, 48, stride=1, kernel=5, expansion=1, act='gelu'),
            ),
        ])
        self.head = Classifier(48, 10, pool=1, hidden=0, act='gelu', dropout=0.0)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)
