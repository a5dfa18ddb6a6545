"""A teacher for knowledge distillation: a frozen network (model.py + model.pkl, as `nas retrain`
writes it, needing no nas) and its logits on the training images.

The teacher runs once per image and mirror before training (a forward pass of each), not once per
step: a 2-pixel shift barely moves a teacher's prediction, so each augmented view is distilled from
the logits of its image as stored or mirrored. The logits are kept beside the retrain
(teacher_logits.pt) so that a resumed retrain does not compute them again.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch

from .errors import UserError
from .files import save_torch

BATCH = 500
LOGITS_FILE = "teacher_logits.pt"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_teacher(folder: str | Path) -> tuple[torch.nn.Module, list, list, int]:
    """The frozen network in `folder` in eval mode, with its MEAN, STD and INPUT_SIZE; one line
    saying what is wrong where it is not one."""
    folder = Path(folder)
    code, weights = folder / "model.py", folder / "model.pkl"
    for need in (code, weights):
        if not need.is_file():
            raise UserError(f"teacher {folder}: no {need.name} there (a folder `nas retrain` wrote)")
    spec = importlib.util.spec_from_file_location(f"nas_teacher_{_digest(code)}", code)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        net = module.Net()
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        mean, std, size = list(module.MEAN), list(module.STD), int(module.INPUT_SIZE)
    except Exception as e:  # anything a foreign file can raise: said in one line
        raise UserError(f"teacher {folder}: cannot load its network ({type(e).__name__}: {e})") from None
    return net.eval(), mean, std, size


@torch.no_grad()
def teacher_logits(folder: str | Path, images, num_classes: int, out: Path | None = None,
                   autocast: bool = False) -> torch.Tensor:
    """(N, 2, num_classes) float32: the teacher's logits for each uint8 NHWC image of `images`
    (a numpy array) as stored [:, 0] and mirrored [:, 1]. Read from `out`/teacher_logits.pt where
    it holds them for this teacher and these images, else computed (on the CPU, bf16 with
    `autocast`) and written there."""
    folder = Path(folder)
    key = {"model.pkl": _digest(folder / "model.pkl") if (folder / "model.pkl").is_file() else None,
           "images": hashlib.sha256(memoryview(images).cast("B")).hexdigest()[:16]}
    cached = None if out is None else out / LOGITS_FILE
    if cached is not None and cached.exists():
        saved = torch.load(cached, map_location="cpu", weights_only=True)
        if saved.get("key") == key:
            return saved["logits"]
    net, mean, std, size = load_teacher(folder)
    n, h, w, c = images.shape
    if (h, w) != (size, size):
        raise UserError(f"teacher {folder} takes {size}x{size} images, the data has {h}x{w}")
    mean = torch.tensor(mean).view(1, -1, 1, 1) * 255
    std = torch.tensor(std).view(1, -1, 1, 1) * 255
    net = net.to(memory_format=torch.channels_last)
    logits = torch.empty(n, 2, num_classes)
    for i in range(0, n, BATCH):
        x = (torch.from_numpy(images[i:i + BATCH]).permute(0, 3, 1, 2).float() - mean) / std
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            plain, mirrored = net(x).float(), net(x.flip(3)).float()
        if plain.shape[1] != num_classes:
            raise UserError(f"teacher {folder} predicts {plain.shape[1]} classes, the data has {num_classes}")
        logits[i:i + BATCH, 0], logits[i:i + BATCH, 1] = plain, mirrored
    if cached is not None:
        save_torch(cached, {"key": key, "logits": logits})
    return logits


def agreement(logits: torch.Tensor, labels) -> float:
    """The share of images whose label the teacher's plain view ranks first (its training accuracy)."""
    return (logits[:, 0].argmax(1) == torch.as_tensor(labels)).float().mean().item()
