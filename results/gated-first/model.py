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


# Gated K-conv block.
#
# a = g(W . SpatialAvgPool(X))          a K-vector per sample (W: a linear layer or a small MLP)
# O = a_1 Conv_1(X) + ... + a_K Conv_K(X)
# Y = act(BN(O) + S(X)) with residual, else act(BN(O))
# The K convs are held as one conv with K*cout output channels; slice k is Conv_k.



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

    def forward(self, x):
        a = self.gate(x)
        y = self.convs(x)
        y = y.view(y.shape[0], self.k, self.cout, y.shape[2], y.shape[3])
        y = self.bn(torch.einsum("nk,nkchw->nchw", a, y))
        if self.skip is not None:
            y = y + self.skip(x)
        return self.act(y)


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
    """stem 32 | gated 48x1 k3 K2 h64 softmax | max/2 gated 64x1 k3 K2 h64 softmax | /2 gated 192x1 k5 K2 h64 softmax | max/2 gated 192x2 k5 K2 h64 softmax | pool1 relu

    4,422,740 trainable parameters, 141,860,352 MACs per 32x32 image.
    Input: images normalised as (x / 255 - MEAN) / STD, NCHW float.
    """

    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, 32, 3, act='relu')
        self.stages = nn.ModuleList([
            nn.Sequential(
                GatedKConvBlock(32, 48, stride=1, kernel=3, k=2, gate='softmax', gate_hidden=64, residual=False, act='relu'),
            ),
            nn.Sequential(
                nn.MaxPool2d(2),
                GatedKConvBlock(48, 64, stride=1, kernel=3, k=2, gate='softmax', gate_hidden=64, residual=False, act='relu'),
            ),
            nn.Sequential(
                GatedKConvBlock(64, 192, stride=2, kernel=5, k=2, gate='softmax', gate_hidden=64, residual=False, act='relu'),
            ),
            nn.Sequential(
                nn.MaxPool2d(2),
                GatedKConvBlock(192, 192, stride=1, kernel=5, k=2, gate='softmax', gate_hidden=64, residual=False, act='relu'),
                GatedKConvBlock(192, 192, stride=1, kernel=5, k=2, gate='softmax', gate_hidden=64, residual=False, act='relu'),
            ),
        ])
        self.head = Classifier(192, 10, pool=1, hidden=0, act='relu', dropout=0.0)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)
