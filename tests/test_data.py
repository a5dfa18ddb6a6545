import numpy as np
import pytest
import torch

from nas.data import Augment, DataError, Loader, Split, augment, channel_stats, holdout, load

from .synthetic import make_split, write_npz


def test_npz_source(tmp_path):
    d = load(str(write_npz(tmp_path / "d.npz", 100, 20)))
    assert d.train.x.shape == (100, 32, 32, 3) and d.test.x.shape == (20, 32, 32, 3)
    assert d.num_classes == 4 and d.train.y.dtype == np.int64


@pytest.mark.parametrize("change,message", [
    (dict(x_train=np.zeros((4, 32, 32), np.uint8)), "(N, H, W, C)"),
    (dict(x_train=np.zeros((4, 32, 32, 3), np.float32)), "uint8"),
    (dict(y_train=np.array([0, 1, 2])), "vector of 4 labels"),
    (dict(y_train=np.array([0, 1, -1, 2])), "labels must lie"),
    (dict(y_train=np.array([0.0, 1.0, 1.0, 2.0])), "integers"),
    (dict(x_test=np.zeros((2, 16, 16, 3), np.uint8), y_test=np.array([0, 1])), "test images"),
])
def test_malformed_npz_is_refused(tmp_path, change, message):
    arrays = dict(x_train=np.zeros((4, 32, 32, 3), np.uint8), y_train=np.array([0, 1, 2, 3]),
                  x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.array([0, 1]))
    arrays.update(change)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(str(tmp_path / "bad.npz"))


def test_npz_missing_arrays_and_missing_path(tmp_path):
    np.savez(tmp_path / "half.npz", x_train=np.zeros((1, 2, 2, 3), np.uint8))
    with pytest.raises(DataError, match="lacks y_train"):
        load(str(tmp_path / "half.npz"))
    with pytest.raises(DataError, match="not found"):
        load(str(tmp_path / "nothing.npz"))
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DataError, match="cannot read"):
        load(str(tmp_path / "junk.npz"))


def _image_folder(root, classes_train=("cat", "dog"), classes_test=("cat", "dog")):
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, classes in (("train", classes_train), ("test", classes_test)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


def test_image_folder_source(tmp_path):
    d = load(str(_image_folder(tmp_path / "imgs")))
    assert d.classes == ["cat", "dog"] and d.train.x.shape == (6, 8, 8, 3) and sorted(d.test.y) == [0, 0, 0, 1, 1, 1]


def test_image_folder_with_an_unreadable_image(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    (root / "train" / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="unreadable image"):
        load(str(root))


def test_image_folder_whose_class_lists_differ(tmp_path):
    root = _image_folder(tmp_path / "imgs", classes_test=("cat", "cow"))
    with pytest.raises(DataError, match="classes differ"):
        load(str(root))


def test_holdout_is_disjoint_and_deterministic():
    split = make_split(100)
    split.x[:, 0, 0, 0] = np.arange(100)  # tag each image
    tr, va = holdout(split, 0.2, seed=3)
    tags_tr, tags_va = set(tr.x[:, 0, 0, 0]), set(va.x[:, 0, 0, 0])
    assert len(va) == 20 and len(tr) == 80 and not tags_tr & tags_va
    assert set(holdout(split, 0.2, seed=3)[1].x[:, 0, 0, 0]) == tags_va


def test_augment_keeps_shape_and_is_seeded():
    x = torch.randint(1, 256, (16, 32, 32, 3), dtype=torch.uint8)  # NHWC, no zero pixel
    aug = Augment(flip=True, translate=4, cutout=8)
    a = augment(x, aug, torch.Generator().manual_seed(1))
    b = augment(x, aug, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == torch.uint8 and torch.equal(a, b) and not torch.equal(a, x)
    # cutout fills at most an 8x8 square per image (translate reflects, adding no fill)
    filled = (a == 0).all(dim=3).sum(dim=(1, 2))
    assert (filled <= 64).all() and (filled > 0).any()


def test_cutout_fills_with_the_given_colour():
    x = torch.full((8, 16, 16, 3), 200, dtype=torch.uint8)
    fill = torch.tensor([10, 20, 30], dtype=torch.uint8)
    out = augment(x, Augment(flip=False, translate=0, cutout=4), torch.Generator().manual_seed(0), fill)
    changed = (out != 200).any(dim=3)
    assert changed.any() and (out[changed] == fill).all()


def test_translate_moves_pixels_by_at_most_the_shift():
    x = torch.zeros(64, 9, 9, 1)
    x[:, 4, 4, :] = 1
    out = augment(x, Augment(flip=False, translate=2), torch.Generator().manual_seed(0))
    pos = out.flatten(1).argmax(1)
    rows, cols = pos // 9, pos % 9
    assert ((rows - 4).abs() <= 2).all() and ((cols - 4).abs() <= 2).all() and len(set(pos.tolist())) > 5


def test_translate_reflects_at_the_border():
    x = torch.arange(5.0).view(1, 1, 5, 1).expand(32, 5, 5, 1).contiguous()  # every row 0 1 2 3 4
    out = augment(x, Augment(flip=False, translate=2), torch.Generator().manual_seed(0))
    rows = {tuple(r[0].flatten().tolist()) for r in out}
    assert (2.0, 1.0, 0.0, 1.0, 2.0) in rows and (2.0, 3.0, 4.0, 3.0, 2.0) in rows  # shifted by -2 and +2
    assert rows <= {(2.0, 1.0, 0.0, 1.0, 2.0), (1.0, 0.0, 1.0, 2.0, 3.0), (0.0, 1.0, 2.0, 3.0, 4.0),
                    (1.0, 2.0, 3.0, 4.0, 3.0), (2.0, 3.0, 4.0, 3.0, 2.0)}


def _mirrored_per_epoch(aug, epochs=2):
    """For each epoch of a loader with `aug`, {label: mirrored?} of its 64 distinct images."""
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8), np.arange(64, dtype=np.int64))
    loader = Loader(split, [0.0] * 3, [1 / 255] * 3, batch_size=16, device="cpu", augment=aug, shuffle=True, seed=5)
    seen = []
    for _ in range(epochs):
        mirrored = {}
        for x, y in loader:
            for image, label in zip(x.permute(0, 2, 3, 1).round().to(torch.uint8), y.tolist()):
                original = torch.from_numpy(split.x[label])
                assert torch.equal(image, original) or torch.equal(image, original.flip(1))
                mirrored[label] = torch.equal(image, original.flip(1))
        seen.append(mirrored)
    return seen


def test_the_alternating_flip_shows_each_image_both_ways_in_two_epochs():
    first, second, third = _mirrored_per_epoch(Augment(flip=True, alternate=True, translate=0), epochs=3)
    assert 10 < sum(first.values()) < 54  # the first epoch's flips are drawn per image
    assert all(first[i] != second[i] for i in range(64)) and first == third
    a, b = _mirrored_per_epoch(Augment(flip=True, translate=0))  # independent draws: some repeat
    assert any(a[i] == b[i] for i in range(64)) and any(a[i] != b[i] for i in range(64))


def test_loader_normalises_and_covers_every_sample_once():
    split = make_split(50)
    mean, std = channel_stats(split)
    loader = Loader(split, mean, std, batch_size=16, device="cpu", shuffle=True, seed=0)
    ys = torch.cat([y for _, y in loader])
    assert sorted(ys.tolist()) == sorted(split.y.tolist()) and len(loader) == 4
    assert loader.x.dtype == torch.uint8  # the data set stays uint8 on the device
    x = torch.cat([x for x, _ in loader])
    assert x.shape[1:] == (3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05


def test_the_proxy_evaluates_only_after_its_last_epoch():
    from nas.spaces import Space, Stage, Stem
    from nas.train import PROXY, train
    space = Space("t", Stem(8), [Stage("conv", 8)], num_classes=4)
    split = make_split(64)
    mean, std = channel_stats(split)
    history = train(space.build({}), split, make_split(16, seed=1), PROXY.with_(epochs=3, batch_size=32), mean, std,
                    device="cpu").history
    assert [h.test_acc is None for h in history] == [True, True, False]
