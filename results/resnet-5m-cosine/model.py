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


# Residual basic block: ReLU(S(x) + F(x)), F = conv-BN-act-conv-BN, S identity or a projection.



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
    """white stem 32 | max/2 residual 96x1 k5 s1 | max/2 residual 320x1 k3 s1 | max/2 residual 256x1 k3 s1 | pool1 relu

    2,961,698 trainable parameters, 149,625,376 MACs per 32x32 image.
    Input: images normalised as (x / 255 - MEAN) / STD, NCHW float.
    """

    def __init__(self):
        super().__init__()
        self.stem = WhiteStem(3, 32, 3, act='relu')
        self.stages = nn.ModuleList([
            nn.Sequential(
                nn.MaxPool2d(2),
                ResidualBlock(32, 96, stride=1, kernel=5, skip_kernel=1, act='relu'),
            ),
            nn.Sequential(
                nn.MaxPool2d(2),
                ResidualBlock(96, 320, stride=1, kernel=3, skip_kernel=1, act='relu'),
            ),
            nn.Sequential(
                nn.MaxPool2d(2),
                ResidualBlock(320, 256, stride=1, kernel=3, skip_kernel=1, act='relu'),
            ),
        ])
        self.head = Classifier(256, 10, pool=1, hidden=0, act='relu', dropout=0.0)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)
