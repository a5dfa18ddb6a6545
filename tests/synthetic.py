"""Small synthetic image data sets the tests make: learnable (the class sets the brightness)."""
from pathlib import Path

import numpy as np

from nas.data import Dataset, Split

SMALL_SPACE = '''
from nas.spaces import Head, Space, Stage, Stem, choice
space = Space(
    name="small",
    stem=Stem(width=choice("stem", [8, 12])),
    stages=[
        Stage(choice("b1", ["conv", "mixer", "gated", "dwsep"]), width=choice("w1", [8, 16]), kernel=3),
        Stage(choice("b2", ["residual", "mbconv"]), width=choice("w2", [16, 24]), downsample="maxpool",
              expansion=2),
    ],
    head=Head(hidden=choice("fc", [0, 16])),
)
'''


def make_split(n, classes=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 80, (n, size, size, 3)) + (y * (170 // max(1, classes - 1)))[:, None, None, None]
    return Split(x.astype(np.uint8), y.astype(np.int64))


def make_dataset(n_train=256, n_test=64, classes=4, size=32) -> Dataset:
    return Dataset(make_split(n_train, classes, size, 0), make_split(n_test, classes, size, 1),
                   [f"c{i}" for i in range(classes)], "synthetic")


def write_npz(path: Path, n_train=256, n_test=64, classes=4) -> Path:
    d = make_dataset(n_train, n_test, classes)
    np.savez(path, x_train=d.train.x, y_train=d.train.y, x_test=d.test.x, y_test=d.test.y)
    return path


def write_space(path: Path, classes=4) -> Path:
    path.write_text(SMALL_SPACE.replace('head=Head(hidden=choice("fc", [0, 16])),',
                                        f'head=Head(hidden=choice("fc", [0, 16])), num_classes={classes},'))
    return path
