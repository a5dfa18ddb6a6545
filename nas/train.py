"""One training loop. The search's proxy and the full retrain differ only by their Recipe."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F

from .data import Augment, Loader, Split


@dataclass(frozen=True)
class Recipe:
    epochs: int = 100
    batch_size: int = 512
    optimizer: str = "sgd"  # sgd (Nesterov) | adamw
    lr: float = 0.2  # peak learning rate
    momentum: float = 0.9
    weight_decay: float = 5e-4  # on conv/linear weights only
    label_smoothing: float = 0.1
    warmup: float = 0.05  # fraction of training spent warming up linearly, then cosine to zero
    augment: Augment = field(default_factory=lambda: Augment(flip=True, translate=2, cutout=8))
    tta: bool = True  # also report flip test-time augmentation
    eval_each_epoch: bool = True  # else only after the last epoch (the proxy needs just its final score)
    time_limit: float | None = None  # seconds; TimeoutError past it
    compile: bool = False  # torch.compile the model on a GPU (small nets are launch-bound); no-op on the CPU

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Recipe":
        data = dict(data)
        data["augment"] = Augment(**data.get("augment", {}))
        return cls(**data)

    def with_(self, **changes) -> "Recipe":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# The proxy: a short run on a held-out split. The full retrain: long, stronger augmentation.
PROXY = Recipe(epochs=8, batch_size=512, lr=0.2, label_smoothing=0.1, warmup=0.1,
               augment=Augment(flip=True, translate=2, cutout=0), tta=False, eval_each_epoch=False)
FULL = Recipe()


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float | None  # None where the recipe skipped this epoch's evaluation
    test_acc: float | None
    test_acc_tta: float | None
    lr: float
    seconds: float


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


def device_default() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _param_groups(model, weight_decay):
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1 and n.endswith("weight")]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def make_optimizer(model, recipe: Recipe):
    groups = _param_groups(model, recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.lr, betas=(0.9, 0.99))
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")


def lr_at(step: int, total: int, recipe: Recipe) -> float:
    warm = max(1, int(recipe.warmup * total))
    if step < warm:
        return recipe.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def evaluate(model, loader: Loader, tta: bool = False, autocast: bool = False) -> tuple[float, float]:
    """(mean loss, accuracy) over a loader; with tta the logits of the image and its mirror are averaged."""
    model.eval()
    total_loss, correct, n = 0.0, 0, 0
    for x, y in loader:
        with torch.autocast(loader.device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(x).float()
            if tta:
                logits = (logits + model(x.flip(3)).float()) / 2
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    return total_loss / n, correct / n


def train(model, train_split: Split, eval_split: Split, recipe: Recipe, mean, std, device=None, seed: int = 0,
          on_epoch=None, start_epoch: int = 0, optimizer_state=None, on_checkpoint=None) -> list[EpochStats]:
    """Train `model` on train_split with `recipe`, evaluating on eval_split after every epoch.

    on_epoch(stats) is called after each epoch; on_checkpoint(epoch, model, optimizer) lets the
    caller save state to resume from (start_epoch, optimizer_state)."""
    device = torch.device(device) if device is not None else device_default()
    cuda = device.type == "cuda"
    torch.manual_seed(seed)
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if (recipe.compile and cuda) else model
    dtype = torch.float32
    train_loader = Loader(train_split, mean, std, recipe.batch_size, device, dtype, augment=recipe.augment,
                          shuffle=True, seed=seed, drop_last=True)
    train_loader.epoch = start_epoch
    eval_loader = Loader(eval_split, mean, std, 1024, device, dtype)
    optimizer = make_optimizer(model, recipe)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    steps_per_epoch = len(train_loader)
    total = recipe.epochs * steps_per_epoch
    step = start_epoch * steps_per_epoch
    history, started = [], time.perf_counter()
    for epoch in range(start_epoch, recipe.epochs):
        t0 = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for x, y in train_loader:
            lr = lr_at(step, total, recipe)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            step += 1
            if recipe.time_limit is not None and time.perf_counter() - started > recipe.time_limit:
                raise TimeoutError(f"passed the time limit of {recipe.time_limit:g}s in epoch {epoch + 1}")
        train_loss = loss_sum.item() / max(1, seen)
        if not math.isfinite(train_loss):
            raise Diverged(f"loss is {train_loss} in epoch {epoch + 1}")
        test_loss = test_acc = tta = None
        if recipe.eval_each_epoch or epoch + 1 == recipe.epochs:
            test_loss, test_acc = evaluate(net, eval_loader, autocast=cuda)
            tta = evaluate(net, eval_loader, tta=True, autocast=cuda)[1] if recipe.tta else None
        stats = EpochStats(epoch + 1, train_loss, correct.item() / max(1, seen), test_loss, test_acc, tta,
                           lr, time.perf_counter() - t0)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if on_checkpoint is not None:
            on_checkpoint(epoch + 1, model, optimizer)
    return history
