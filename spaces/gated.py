"""A backbone of N gated K-conv blocks and an average-pool classifier.

Four stages of gated K-conv blocks (N = the sum of their depths). K, the gate's
non-linearity g and its MLP size are shared by every block; widths, kernel sizes, depths,
residuals and where the network pools (max-pool, strided conv or neither) are per stage.
"""
from nas.spaces import Head, Space, Stage, Stem, choice, irange

K = choice("k", [2, 3, 4])
GATE = choice("gate", ["softmax", "sigmoid", "tanh"])
GATE_HIDDEN = choice("gate_hidden", [0, 16, 64])
RESIDUAL = choice("residual", [True, False])


def gated_stage(i, widths, downsample):
    return Stage(block="gated", width=choice(f"s{i}_width", widths), depth=irange(f"s{i}_depth", 1, 3),
                 downsample=downsample, kernel=choice(f"s{i}_kernel", [3, 5]), k=K, gate=GATE,
                 gate_hidden=GATE_HIDDEN, residual=RESIDUAL)


space = Space(
    name="gated",
    description=__doc__.splitlines()[0],
    stem=Stem(width=choice("stem_width", [24, 32]), kernel=3),
    stages=[
        gated_stage(1, [32, 48, 64], "none"),
        gated_stage(2, [64, 96, 128], choice("s2_pool", ["maxpool", "stride"])),
        gated_stage(3, [128, 192, 256], choice("s3_pool", ["maxpool", "stride"])),
        gated_stage(4, [192, 256, 384], choice("s4_pool", ["maxpool", "stride", "none"])),
    ],
    head=Head(pool=1, hidden=choice("head_hidden", [0, 128])),
    act="relu",
)
