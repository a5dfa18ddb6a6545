"""Small ConvMixer-style CNNs for budgets around 50,000 parameters.

Where spaces/tiny.py spends its parameters across three resolutions, this space spends most of
them on a deep stack of ConvMixer blocks (a depthwise conv-BN-act with a skip, then a 1x1
conv-BN-act) at 16 pixels, where each parameter buys 256 multiply-accumulates: a short first
stage at 32 pixels, the mixer stack at 16, and an optional few blocks at 8.
"""
from nas.spaces import Head, Space, Stage, Stem, choice, irange

space = Space(
    name="tiny_convmixer",
    description=__doc__.splitlines()[0],
    stem=Stem(width=choice("stem_width", [16, 24, 32]), kernel=3),
    stages=[
        Stage(block=choice("s1_block", ["dwsep", "convmixer"]), width=choice("s1_width", [16, 24, 32]),
              depth=1, kernel=choice("s1_kernel", [3, 5])),
        Stage(block="convmixer", width=choice("s2_width", [48, 56, 64, 72]),
              depth=irange("s2_depth", 3, 8), downsample=choice("s2_down", ["stride", "maxpool"]),
              kernel=choice("s2_kernel", [5, 7, 9])),
        Stage(block=choice("s3_block", ["convmixer", "mbconv"]), width=choice("s3_width", [64, 96]),
              depth=irange("s3_depth", 1, 2), downsample="maxpool",
              kernel=choice("s3_kernel", [3, 5]), expansion=1),
    ],
    head=Head(pool=1),
    act=choice("act", ["gelu", "relu"]),
)
