"""Freeze a trained architecture as code: model.py (plain PyTorch, chosen values written in),
model.pkl (its state_dict) and evaluate.py (test accuracy, needing nothing from nas)."""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import torch

from .budget import estimate
from .files import save_torch, write_text
from .spaces import layers as layers_module
from .spaces import network as network_module
from .spaces.network import BLOCKS, POOLS
from .spaces.space import Architecture

_IMPORT = re.compile(r"^(import |from )")


NOT_EXPORTED = "# --- registry:"  # a family file's cost and registration follow this line


def _body(module) -> str:
    """A module's source with its imports dropped, its docstring turned into a comment, and what
    follows NOT_EXPORTED (a block family's cost function and registration) left out."""
    source = inspect.getsource(module).split("\n" + NOT_EXPORTED)[0]
    tree = ast.parse(source)
    doc = ast.get_docstring(tree)
    lines = source.splitlines()
    if doc:
        lines = [f"# {l}".rstrip() for l in doc.splitlines()] + lines[tree.body[0].end_lineno:]
    return "\n".join(l for l in lines if not _IMPORT.match(l)).strip() + "\n"


def _call(name: str, *args, **kwargs) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def model_source(arch: Architecture, mean, std) -> str:
    cost = estimate(arch)
    families = sorted({layer.kind for stage in arch.plan() for layer in stage if layer.kind in BLOCKS})
    sources = [_body(layers_module)]
    for family in families:
        sources.append(_body(inspect.getmodule(BLOCKS[family])))
    sources.append(inspect.getsource(network_module.Classifier))

    stages = []
    for stage in arch.plan():
        rows = []
        for layer in stage:
            if layer.kind in POOLS:
                rows.append(f"nn.{POOLS[layer.kind].__name__}(2)")
            else:
                rows.append(_call(BLOCKS[layer.kind].__name__, layer.cin, layer.cout, stride=layer.stride, **layer.knobs))
        stages.append("            nn.Sequential(\n" + "".join(f"                {r},\n" for r in rows) + "            ),\n")
    net = f'''
class Net(nn.Module):
    """{arch.summary()}

    {cost.params:,} trainable parameters, {cost.macs:,} MACs per {arch.input_size}x{arch.input_size} image.
    Input: images normalised as (x / 255 - MEAN) / STD, NCHW float.
    """

    def __init__(self):
        super().__init__()
        self.stem = {_call("WhiteStem" if arch.stem_whiten else "ConvBN", arch.in_channels, arch.stem_width, arch.stem_kernel, act=arch.act)}
        self.stages = nn.ModuleList([
{"".join(stages)}        ])
        self.head = {_call("Classifier", arch.last_width, arch.num_classes, pool=arch.head_pool, hidden=arch.head_hidden, act=arch.act, dropout=arch.head_dropout)}

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)
'''
    header = f'''"""A network found by nas, frozen as plain PyTorch. Needs only torch.

    from model import Net
    model = Net()
    model.load_state_dict(torch.load("model.pkl", map_location=lambda storage, loc: storage))
"""
import torch
from torch import nn
import torch.nn.functional as F

MEAN = {list(mean)!r}
STD = {list(std)!r}
INPUT_SIZE = {arch.input_size}

'''
    return header + "\n\n".join(s.strip() + "\n" for s in sources) + net


EVALUATE = '''"""Test accuracy of the frozen network in this folder. Needs torch and numpy (torchvision and
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

DATA = {data!r}
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
    print(f"test accuracy: {{100 * evaluate(args.data, tta=args.tta, shift=args.shift):.2f}}%")
'''


@torch.no_grad()
def frozen_accuracy(model: torch.nn.Module, x, y, mean, std, tta_shift: int = 0,
                    batch_size: int = 1000) -> tuple[float, float]:
    """(accuracy, TTA accuracy) of `model` on uint8 NHWC images `x` and labels `y`, computed as the
    frozen evaluate.py computes it: on the CPU, in fp32, NCHW, batches of 1,000, images normalised as
    (x / 255 - MEAN) / STD. This is what result.json claims, so that `python evaluate.py` prints it
    whatever the training ran in: bf16 logits differ enough from fp32 to move an image or two."""
    from .train import tta_views

    model = model.to("cpu").eval()
    mean, std = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    correct = correct_tta = 0
    for i in range(0, len(y), batch_size):
        xb = (torch.from_numpy(x[i:i + batch_size]).permute(0, 3, 1, 2).float() / 255 - mean) / std
        yb = torch.from_numpy(y[i:i + batch_size]).long()
        correct += (model(xb).argmax(1) == yb).sum().item()
        tta = sum(w * model(v) for w, v in tta_views(xb, tta_shift))
        correct_tta += (tta.argmax(1) == yb).sum().item()
    return correct / len(y), correct_tta / len(y)


def freeze(arch: Architecture, model: torch.nn.Module, out: str | Path, mean, std, data_source: str) -> None:
    out = Path(out)
    write_text(out / "model.py", model_source(arch, mean, std))
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    save_torch(out / "model.pkl", state)
    write_text(out / "evaluate.py", EVALUATE.format(data=data_source))
