"""Token-mixer CNNs that spend a 50,000-parameter budget.

Three stages at 32, 16 and 8 pixels, every block a token-mixer (depthwise MixConv + gated
pointwise FFN, ConvNeXt style); the first stage may instead be depthwise-separable, which
is cheaper at full resolution. Wider and with finer expansions than spaces/tiny.py, so
that candidates near the budget are many: searched for results/tiny-50k.
"""
from nas.spaces import Head, Space, Stage, Stem, choice, irange

space = Space(
    name="tiny_mixer",
    description=__doc__.splitlines()[0],
    stem=Stem(width=choice("stem_width", [24, 32]), kernel=3),
    stages=[
        Stage(block=choice("s1_block", ["mixer", "dwsep"]), width=choice("s1_width", [24, 32]),
              depth=irange("s1_depth", 1, 2), kernel=choice("s1_kernel", [3, 5]),
              expansion=choice("s1_expansion", [1, 1.5, 2])),
        Stage(block="mixer", width=choice("s2_width", [40, 48, 56, 64]),
              depth=irange("s2_depth", 1, 3), downsample=choice("s2_down", ["stride", "maxpool"]),
              kernel=choice("s2_kernel", [3, 5, 7]), expansion=choice("s2_expansion", [1, 1.5, 2])),
        Stage(block="mixer", width=choice("s3_width", [56, 64, 80, 96]),
              depth=irange("s3_depth", 1, 3), downsample=choice("s3_down", ["stride", "maxpool"]),
              kernel=choice("s3_kernel", [3, 5, 7]), expansion=choice("s3_expansion", [1, 1.5, 2])),
    ],
    head=Head(pool=1, hidden=0),
    act=choice("act", ["gelu", "silu"]),
)
