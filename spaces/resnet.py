"""Residual networks for budgets around 5 million parameters.

Four stages of basic blocks ReLU(S(x) + F(x)); channels, blocks per stage, kernel sizes,
projection-shortcut kernel sizes, how each later stage halves the size (a strided first block or
a max-pool before it) and the classifier's pool size are searched.
"""
from nas.spaces import Head, Space, Stage, Stem, choice, irange


def residual_stage(i, widths, downsample):
    return Stage(block="residual", width=choice(f"s{i}_width", widths), depth=irange(f"s{i}_depth", 1, 3),
                 downsample=downsample, kernel=choice(f"s{i}_kernel", [3, 5]),
                 skip_kernel=choice(f"s{i}_skip", [1, 3]))


space = Space(
    name="resnet",
    description=__doc__.splitlines()[0],
    stem=Stem(width=choice("stem_width", [24, 32, 64]), kernel=3),
    stages=[
        residual_stage(1, [32, 48, 64], "none"),
        residual_stage(2, [64, 96, 128], choice("s2_down", ["stride", "maxpool"])),
        residual_stage(3, [128, 192, 256], choice("s3_down", ["stride", "maxpool"])),
        residual_stage(4, [256, 320, 384], choice("s4_down", ["stride", "maxpool", "none"])),
    ],
    head=Head(pool=choice("head_pool", [1, 2])),
    act="relu",
)
