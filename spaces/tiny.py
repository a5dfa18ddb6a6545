"""Small CNNs for budgets around 50,000 parameters.

Three stages at 32, 16 and 8 pixels. Each stage picks its block family: the token-mixer
(depthwise MixConv + gated pointwise FFN), depthwise-separable, inverted residual or a
residual basic block; the kernel and expansion knobs apply where the family takes them.
"""
from nas.spaces import Head, Space, Stage, Stem, choice, irange

BLOCKS = ["mixer", "dwsep", "mbconv", "residual"]

space = Space(
    name="tiny",
    description=__doc__.splitlines()[0],
    stem=Stem(width=choice("stem_width", [16, 24, 32]), kernel=3),
    stages=[
        Stage(block=choice("s1_block", BLOCKS), width=choice("s1_width", [16, 24, 32]),
              depth=irange("s1_depth", 1, 2), kernel=choice("s1_kernel", [3, 5, 7]),
              expansion=choice("s1_expansion", [1, 2, 3])),
        Stage(block=choice("s2_block", BLOCKS), width=choice("s2_width", [24, 32, 48]),
              depth=irange("s2_depth", 1, 3), downsample=choice("s2_down", ["stride", "maxpool"]),
              kernel=choice("s2_kernel", [3, 5, 7]), expansion=choice("s2_expansion", [1, 2, 3])),
        Stage(block=choice("s3_block", BLOCKS), width=choice("s3_width", [48, 64, 96]),
              depth=irange("s3_depth", 1, 3), downsample=choice("s3_down", ["stride", "maxpool"]),
              kernel=choice("s3_kernel", [3, 5, 7]), expansion=choice("s3_expansion", [1, 2, 3])),
    ],
    head=Head(pool=1, hidden=choice("head_hidden", [0, 64])),
    act=choice("act", ["gelu", "relu", "silu"]),
)
