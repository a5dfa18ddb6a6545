"""Data sources and the batched loader/augmenter.

Sources (`--data`):
  cifar10            torchvision's CIFAR10, downloaded into the cache directory when online
  PATH.npz           x_train, y_train, x_test, y_test: uint8 NHWC images, integer labels
  DIR                an ImageFolder tree: DIR/train/<class>/*, DIR/test/<class>/*

Images stay uint8, on the device too; each batch is normalised there and augmentation (flip,
random translate, cutout) runs there on the whole batch. The same code runs on the CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import UserError

DEFAULT_CACHE = Path(os.environ.get("NAS_DATA_CACHE", Path.home() / ".cache" / "nas"))


class DataError(UserError):
    """A data source that is missing or malformed."""


@dataclass
class Split:
    x: np.ndarray  # (N, H, W, C) uint8
    y: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    train: Split
    test: Split
    classes: list
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple:
        return self.train.x.shape[1:]


# --- sources ---------------------------------------------------------------------------------

def load(source: str, cache: str | Path | None = None) -> Dataset:
    """The data set named by `source`: 'cifar10', an .npz file, or an ImageFolder directory."""
    if source == "cifar10":
        return _cifar10(Path(cache or DEFAULT_CACHE))
    path = Path(source)
    if not path.exists():
        raise DataError(f"data not found: {source} (give cifar10, an .npz file or an ImageFolder directory)")
    if path.is_dir():
        return _image_folder(path)
    return _npz(path)


def _check_split(name: str, x, y, classes: int | None = None) -> Split:
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"{name} images must be an (N, H, W, C) array with C 1 or 3, not shape {getattr(x, 'shape', None)}")
    if x.dtype != np.uint8:
        raise DataError(f"{name} images must be uint8, not {x.dtype}")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{name} labels must be a vector of {len(x)} labels, not shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name} labels must be integers, not {y.dtype}")
    if len(y) == 0:
        raise DataError(f"{name} split is empty")
    if y.min() < 0 or (classes is not None and y.max() >= classes):
        raise DataError(f"{name} labels must lie in [0, {classes}), found {y.min()}..{y.max()}")
    return Split(x, y.astype(np.int64))


def _from_arrays(x_train, y_train, x_test, y_test, classes, source) -> Dataset:
    for name, y in (("train", y_train), ("test", y_test)):
        if np.size(y) == 0:
            raise DataError(f"{source}: the {name} split is empty")
    if classes is None:
        classes = [str(c) for c in range(int(max(np.max(y_train), np.max(y_test))) + 1)]
    train = _check_split("train", x_train, y_train, len(classes))
    test = _check_split("test", x_test, y_test, len(classes))
    if train.x.shape[1:] != test.x.shape[1:]:
        raise DataError(f"train images are {train.x.shape[1:]} but test images are {test.x.shape[1:]}")
    return Dataset(train, test, list(classes), source)


def _npz(path: Path) -> Dataset:
    try:
        pack = np.load(path, allow_pickle=False)
    except Exception as e:
        raise DataError(f"cannot read {path} as .npz: {e}") from e
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in pack.files]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)} (needs x_train, y_train, x_test, y_test)")
    classes = [str(c) for c in pack["classes"]] if "classes" in pack.files else None
    return _from_arrays(pack["x_train"], pack["y_train"], pack["x_test"], pack["y_test"], classes, str(path))


def _image_folder(root: Path) -> Dataset:
    from PIL import Image
    from torchvision.datasets import ImageFolder

    splits, class_lists = {}, {}
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"ImageFolder {root} has no {split}/ directory")
        try:
            ds = ImageFolder(str(folder))
        except (FileNotFoundError, RuntimeError) as e:
            raise DataError(f"ImageFolder {folder}: {e}") from e
        images = []
        for file, _ in ds.samples:
            try:
                with Image.open(file) as im:
                    images.append(np.asarray(im.convert("RGB")))
            except Exception as e:
                raise DataError(f"unreadable image {file}: {type(e).__name__}") from e
        sizes = {im.shape for im in images}
        if len(sizes) != 1:
            raise DataError(f"images in {folder} differ in size: {sorted(sizes)[:3]}")
        splits[split] = (np.stack(images), np.array(ds.targets, dtype=np.int64))
        class_lists[split] = ds.classes
    if class_lists["train"] != class_lists["test"]:
        raise DataError(f"train and test classes differ in {root}: {class_lists['train']} vs {class_lists['test']}")
    (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
    return _from_arrays(xtr, ytr, xte, yte, class_lists["train"], str(root))


def _cifar10(cache: Path) -> Dataset:
    from torchvision.datasets import CIFAR10

    try:
        train = CIFAR10(str(cache), train=True, download=True)
        test = CIFAR10(str(cache), train=False, download=True)
    except Exception as e:  # offline, or the cache cannot be written
        raise DataError(f"cannot get CIFAR-10 into {cache}: {e}; pass --data PATH.npz for an offline copy") from e
    return _from_arrays(train.data, np.array(train.targets), test.data, np.array(test.targets), train.classes,
                        "cifar10")


def check_compatible(data: Dataset, input_size: int, in_channels: int, num_classes: int) -> None:
    """Refuse data a network of this shape cannot train on."""
    if tuple(data.shape) != (input_size, input_size, in_channels) or data.num_classes != num_classes:
        raise DataError(f"data {data.source} has images {'x'.join(map(str, data.shape))} and {data.num_classes} "
                        f"classes; the network expects {input_size}x{input_size}x{in_channels} and {num_classes}")


def holdout(split: Split, fraction: float, seed: int = 0) -> tuple[Split, Split]:
    """Split a training set into (train, validation): the search never looks at the test set."""
    if not 0 < fraction < 1:
        raise DataError(f"the validation fraction must lie in (0, 1), not {fraction}")
    order = np.random.default_rng(seed).permutation(len(split))
    n_val = max(1, int(round(fraction * len(split))))
    if n_val >= len(split):
        raise DataError(f"holding out {fraction:g} of {len(split)} training images leaves none to train on")
    val, train = order[:n_val], order[n_val:]
    return Split(split.x[train], split.y[train]), Split(split.x[val], split.y[val])


def subset(split: Split, fraction: float, seed: int = 0) -> Split:
    """A random fraction of a split (for cheaper proxies)."""
    if fraction >= 1:
        return split
    keep = np.random.default_rng(seed).permutation(len(split))[: max(1, int(round(fraction * len(split))))]
    return Split(split.x[keep], split.y[keep])


def channel_stats(split: Split) -> tuple[list, list]:
    """Per-channel mean and std of uint8 images, on the 0..1 scale."""
    x = split.x.reshape(-1, split.x.shape[-1]).astype(np.float64) / 255
    return x.mean(0).round(4).tolist(), x.std(0).round(4).tolist()


# --- on the device ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Augment:
    flip: bool = True
    alternate: bool = False  # derandomised flip (airbench): each image's flip is drawn once, and every
    #                          other epoch mirrors them all, so an image is seen both ways in two epochs
    translate: int = 2  # pixels, each way (the border reflected)
    cutout: int = 0  # side of the square cut out (filled with the mean colour); 0: none


class Loader:
    """Batches of a split kept on `device` as uint8 NHWC (as stored: a quarter of float's memory).

    Training batches are augmented there while still uint8, then normalised to float in
    channels_last layout (NHWC memory, NCHW shape: what the convolutions run fastest on), or
    contiguous NCHW with channels_last=False."""

    def __init__(self, split: Split, mean, std, batch_size: int, device, augment: Augment | None = None,
                 shuffle: bool = False, seed: int = 0, drop_last: bool = False, channels_last: bool = True,
                 soft_targets: torch.Tensor | None = None):
        self.device = torch.device(device)
        # (N, 2, classes): a teacher's logits for each image as stored and mirrored; with them each batch
        # is (x, y, the logits of the view each image is shown in, shifts aside)
        self.soft_targets = None if soft_targets is None else soft_targets.to(self.device)
        self.x = torch.from_numpy(split.x).to(self.device)  # (N, H, W, C) uint8
        self.y = torch.from_numpy(split.y).to(self.device)
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255
        self.fill = torch.tensor(mean, device=self.device).mul(255).round().to(torch.uint8)  # cutout colour
        self.batch_size, self.augment, self.shuffle, self.drop_last = batch_size, augment, shuffle, drop_last
        self.channels_last = channels_last
        self.seed, self.epoch = seed, 0
        self._first_flips = None  # with augment.alternate: each image's flip in even epochs

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last and n >= self.batch_size else -(-n // self.batch_size)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC -> normalised float, NCHW shape (channels_last memory unless told otherwise)."""
        x = (x.permute(0, 3, 1, 2).float() - self.mean) / self.std
        return x if self.channels_last else x.contiguous()

    def __iter__(self):
        yield from self.batches()

    def batches(self, start: int = 0, stop: int | None = None):
        """Batches start..stop of this epoch's order (the order depends on the seed and the
        epoch only, so training stopped mid-epoch can go on with the same epoch's rest)."""
        epoch = self.epoch
        gen = torch.Generator(device="cpu").manual_seed(self.seed * 100_003 + epoch)
        self.epoch += 1
        n = len(self.y)
        order = torch.randperm(n, generator=gen).to(self.device) if self.shuffle else torch.arange(n, device=self.device)
        for i in range(start, len(self) if stop is None else stop):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x, y = self.x[idx], self.y[idx]
            mirrored = None
            if self.augment is not None:
                x, mirrored = augment(x, self.augment, gen, self.fill, flips=self._flips(idx, epoch), return_flips=True)
            if self.soft_targets is None:
                yield self.normalise(x), y
            else:
                view = mirrored.long() if mirrored is not None else torch.zeros_like(idx)
                yield self.normalise(x), y, self.soft_targets[idx, view]

    def _flips(self, idx: torch.Tensor, epoch: int) -> torch.Tensor | None:
        """With an alternating flip, which of the images `idx` `epoch` mirrors; else None (drawn
        independently in augment)."""
        if self.augment is None or not (self.augment.flip and self.augment.alternate):
            return None
        if self._first_flips is None:
            gen = torch.Generator(device="cpu").manual_seed(self.seed * 100_003 - 1)
            self._first_flips = (torch.rand(len(self.y), generator=gen) < 0.5).to(self.device)
        return self._first_flips[idx] ^ (epoch % 2 == 1)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Indices past either border reflected back inside (as reflect padding does)."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index).clamp(0, size - 1)


def augment(x: torch.Tensor, aug: Augment, gen: torch.Generator, fill: torch.Tensor | None = None,
            flips: torch.Tensor | None = None, return_flips: bool = False):
    """Flip, translate and cut out a batch of NHWC images, each sample drawn independently.

    Works on uint8 (or any dtype): a flip is one select, a translation one gather of whole pixels
    from reflected indices, a cutout one masked fill with `fill` (a colour, default 0). `flips`
    (bool, one per image) says which to mirror instead of drawing it (the alternating flip). With
    `return_flips`, returns (images, which were mirrored: bool, one per image) instead."""
    n, h, w, c = x.shape
    dev = x.device
    mirrored = torch.zeros(n, dtype=torch.bool, device=dev)
    if aug.flip:
        drawn = torch.rand(n, generator=gen) < 0.5  # drawn even when given: the rest of the draws stay as they were
        mirrored = drawn.to(dev) if flips is None else flips
        x = torch.where(mirrored.view(n, 1, 1, 1), x.flip(2), x)
    if aug.translate:
        r = aug.translate
        dy = torch.randint(-r, r + 1, (n,), generator=gen).to(dev)
        dx = torch.randint(-r, r + 1, (n,), generator=gen).to(dev)
        rows = _reflect(dy.view(n, 1) + torch.arange(h, device=dev), h).view(n, h, 1)
        cols = _reflect(dx.view(n, 1) + torch.arange(w, device=dev), w).view(n, 1, w)
        x = x[torch.arange(n, device=dev).view(n, 1, 1), rows, cols]
    if aug.cutout:
        s = aug.cutout
        cy = torch.randint(0, h, (n,), generator=gen).to(dev).view(n, 1, 1, 1)
        cx = torch.randint(0, w, (n,), generator=gen).to(dev).view(n, 1, 1, 1)
        ys = torch.arange(h, device=dev).view(1, h, 1, 1)
        xs = torch.arange(w, device=dev).view(1, 1, w, 1)
        top, left = cy - s // 2, cx - s // 2
        inside = (ys >= top) & (ys < top + s) & (xs >= left) & (xs < left + s)
        colour = fill if fill is not None else torch.zeros(c, dtype=x.dtype, device=dev)
        x = torch.where(inside, colour.to(x.dtype), x)
    return (x, mirrored) if return_flips else x
