"""Test accuracy of the frozen network in this folder. Needs torch and numpy (torchvision and
Pillow for the cifar10 and ImageFolder sources), never nas.

    python evaluate.py [--data SOURCE] [--tta [--shift 1]]
    from evaluate import evaluate; evaluate()
"""
import argparse
import os
import pathlib
import sys

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from model import MEAN, STD, Net  # noqa: E402

DATA = '/work/data/cifar10.npz'
CACHE = pathlib.Path(os.environ.get("NAS_DATA_CACHE", pathlib.Path.home() / ".cache" / "nas"))


def load_test(source=DATA):
    """The test split as (uint8 NHWC images, int64 labels)."""
    if source == "cifar10":
        from torchvision.datasets import CIFAR10
        ds = CIFAR10(str(CACHE), train=False, download=True)
        return ds.data, np.array(ds.targets, dtype=np.int64)
    path = pathlib.Path(source)
    if path.is_dir():
        from PIL import Image
        from torchvision.datasets import ImageFolder
        ds = ImageFolder(str(path / "test"))
        images = [np.asarray(Image.open(f).convert("RGB")) for f, _ in ds.samples]
        return np.stack(images), np.array(ds.targets, dtype=np.int64)
    pack = np.load(path)
    return pack["x_test"], pack["y_test"].astype(np.int64)


def load_model(device="cpu"):
    model = Net()
    model.load_state_dict(torch.load(HERE / "model.pkl", map_location=lambda storage, loc: storage))
    return model.to(device).eval()


def views(xb, shift=0):
    """(weight, view) pairs for test-time augmentation: the image and its mirror; with shift, half
    the weight goes to the mirrored pairs shifted by `shift` pixels up-left and down-right."""
    if not shift:
        return [(0.5, xb), (0.5, xb.flip(3))]
    padded = torch.nn.functional.pad(xb, (shift,) * 4, mode="reflect")
    size = xb.shape[2]
    crops = [padded[:, :, :size, :size], padded[:, :, 2 * shift:, 2 * shift:]]
    return [(0.25, xb), (0.25, xb.flip(3))] + [(0.125, v) for c in crops for v in (c, c.flip(3))]


@torch.no_grad()
def evaluate(source=DATA, tta=False, shift=0, batch_size=1000, device=None):
    """Accuracy on the test split (0..1); with tta, the weighted logits of `views` (as nas's TTA)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    x, y = load_test(source)
    model = load_model(device)
    mean = torch.tensor(MEAN, device=device).view(1, -1, 1, 1)
    std = torch.tensor(STD, device=device).view(1, -1, 1, 1)
    correct = 0
    for i in range(0, len(y), batch_size):
        xb = torch.from_numpy(x[i:i + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255
        xb = (xb - mean) / std
        if tta:
            logits = sum(w * model(v) for w, v in views(xb, shift))
        else:
            logits = model(xb)
        correct += (logits.argmax(1).cpu() == torch.from_numpy(y[i:i + batch_size])).sum().item()
    return correct / len(y)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Test accuracy of the network in this folder.")
    parser.add_argument("--data", default=DATA, help="cifar10, an .npz with x_test/y_test, or an ImageFolder root")
    parser.add_argument("--tta", action="store_true", help="average with the mirrored image")
    parser.add_argument("--shift", type=int, default=0,
                        help="with --tta, also the mirrored pair shifted by this many pixels (as the retrain's --tta-shift)")
    args = parser.parse_args()
    print(f"test accuracy: {100 * evaluate(args.data, tta=args.tta, shift=args.shift):.2f}%")
