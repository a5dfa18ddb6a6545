"""Residual networks in airbench's shape, for budgets up to 5 million parameters.

airbench (the fastest known way to 94% on CIFAR-10) is a whitened stem and three groups, each a
2x2 max-pool between convolutions, at 64/256/256 channels. Here each group is a max-pool then
residual basic blocks ReLU(S(x) + F(x)) (F = conv-BN-ReLU-conv-BN, S a 1x1 projection where the
width changes), so every stage is residual and each of the three widths can go wider than airbench's
while the network stays under 5M parameters; the first group's blocks work at 16x16, the others at
8x8 and 4x4, which keeps an epoch to minutes on a CPU. Widths, depths, the kernel of the first
group, the whitened stem and the classifier's pool are searched.
"""
from nas.spaces import Head, Space, Stage, Stem, choice, irange

space = Space(
    name="resnet-airbench",
    description=__doc__.splitlines()[0],
    stem=Stem(width=choice("stem_width", [32, 48]), kernel=3, whiten=choice("whiten", [True, False])),
    stages=[
        Stage(block="residual", width=choice("s1_width", [96, 128, 160]), depth=irange("s1_depth", 1, 2),
              downsample="maxpool", kernel=choice("s1_kernel", [3, 5]), skip_kernel=1),
        Stage(block="residual", width=choice("s2_width", [192, 256, 320]), depth=irange("s2_depth", 1, 2),
              downsample="maxpool", kernel=3, skip_kernel=1),
        Stage(block="residual", width=choice("s3_width", [256, 384, 512]), depth=1,
              downsample="maxpool", kernel=3, skip_kernel=1),
    ],
    head=Head(pool=choice("head_pool", [1, 2])),
    act="relu",
)
