"""tiny_convmixer with wider ConvMixer stacks, for budgets around 50,000 parameters.

results/tiny-50k's search of spaces/tiny_convmixer.py ended with every top candidate at the top of
its ranges (stem 32, first stage 32, mixer stack 72 wide, 3 deep, downsampling by max-pool). This
space moves the ranges up around that corner: a mixer stack 72-112 wide and 2-5 deep at 16 pixels,
wider first stages at 32 pixels, and the blocks at 8 pixels 48-96 wide.
"""
from nas.spaces import Head, Space, Stage, Stem, choice, irange

space = Space(
    name="tiny_convmixer_wide",
    description=__doc__.splitlines()[0],
    stem=Stem(width=choice("stem_width", [24, 32, 40]), kernel=3),
    stages=[
        Stage(block=choice("s1_block", ["dwsep", "convmixer"]), width=choice("s1_width", [24, 32, 40]),
              depth=1, kernel=choice("s1_kernel", [3, 5])),
        Stage(block="convmixer", width=choice("s2_width", [72, 80, 88, 96, 112]),
              depth=irange("s2_depth", 2, 5), downsample="maxpool",
              kernel=choice("s2_kernel", [5, 7])),
        Stage(block=choice("s3_block", ["convmixer", "mbconv"]), width=choice("s3_width", [48, 64, 96]),
              depth=irange("s3_depth", 1, 2), downsample="maxpool",
              kernel=choice("s3_kernel", [3, 5]), expansion=1),
    ],
    head=Head(pool=1),
    act=choice("act", ["gelu", "relu"]),
)
