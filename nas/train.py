"""One training loop. The search's proxy and the full retrain differ only by their Recipe."""
from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F

from . import kernels, native
from .data import Augment, Loader, Split
from .records import EpochStats
from .spaces.layers import LayerNorm2d, Whitening
from .execution import COMPILE_MIN_SECONDS, DecisionCache, Execution, choose, default_batch_size, releases_freed_memory


@dataclass(frozen=True)
class Recipe:
    epochs: float = 100  # a fraction of an epoch is allowed (the search's cheapest rungs)
    batch_size: int | None = None  # None: what suits the device (256 on a CPU, 512 on a GPU)
    optimizer: str = "sgd"  # sgd (Nesterov) | adamw
    lr: float = 0.2  # peak learning rate at batch 512; scaled linearly with the batch size
    momentum: float = 0.9
    weight_decay: float = 5e-4  # on conv/linear weights only
    label_smoothing: float = 0.1
    warmup: float = 0.05  # fraction of training spent warming up linearly, then cosine to zero
    lr_start: float = 0.0  # the warm-up starts at this fraction of the peak (airbench: 0.2)
    decay: str = "cosine"  # after the warm-up: cosine | linear (airbench's triangle)
    lr_end: float = 0.0  # the decay ends at this fraction of the peak (airbench: 0.07)
    augment: Augment = field(default_factory=lambda: Augment(flip=True, translate=2, cutout=8))
    tta: bool = True  # also score test-time augmentation after the last epoch: each image's and its mirror's logits averaged
    tta_shift: int = 0  # with tta, also the mirrored pair shifted by this many pixels both ways (airbench's multi-crop)
    lookahead: float = 0.0  # slow weights' per-step decay at the end of training (airbench: 0.95); 0: off
    # knowledge distillation (Hinton et al. 2015): the loss mixes the labels' cross-entropy with the KL divergence
    # from a frozen teacher's softened predictions, weighted `distill` (0: no teacher), at `temperature`
    teacher: str = ""  # a frozen network's folder (model.py + model.pkl, as `nas retrain` writes it)
    distill: float = 0.0
    temperature: float = 4.0
    # airbench's optimisation of a BatchNorm network, each off by default until it is shown to help ours:
    norm_bias_lr: float = 1.0  # learning-rate multiplier of the normalisation layers' biases (airbench: 64)
    freeze_norm_weight: bool = False  # the normalisation layers' scales stay 1, only their biases train (airbench)
    dirac_init: bool = False  # a conv with no more inputs than outputs starts as the identity on its first channels
    bn_momentum: float = 0.1  # BatchNorm's running-statistics momentum while training (PyTorch's; airbench: 0.4)
    classifier_scale: float = 1.0  # train as if the logits were multiplied by this (airbench: 1/9); see classifier_groups
    eval_each_epoch: bool = True  # else only after the last epoch (the proxy needs just its final score)
    time_limit: float | None = None  # seconds; TimeoutError past it

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> "Recipe":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def lr_for(self, batch_size: int) -> float:
        """The peak learning rate at `batch_size` (linear scaling from batch 512)."""
        return self.lr * batch_size / 512


DISTILL_WEIGHT = 0.9  # the teacher's share of the loss with --teacher (the CIFAR distillation literature's)
LOOKAHEAD_EVERY = 5  # steps between pulls of the weights to their slow average
EVAL_BATCH_SIZE = 1000  # evaluation has no gradients to keep: big batches
WHITEN_IMAGES = 5000  # training images a whitened stem's filters are fitted on (airbench's number)
COMPILE_WARMUP_STEPS = 3  # steps a compiled network takes to compile before its speed is measured
TUNE_MIN_STEPS = 600  # timing bf16 against fp32 costs ~12 steps: a shorter run keeps the device's default

# The proxy: a short run on a held-out split. The full retrain: long, stronger augmentation.
PROXY = Recipe(epochs=4, lr=0.2, label_smoothing=0.1, warmup=0.1,
               augment=Augment(flip=True, translate=2, cutout=0), tta=False, eval_each_epoch=False)
FULL = Recipe()
# airbench94's optimisation (legacy/airbench94.py's `hyp`), in our units. airbench sums its loss over
# a batch of 1024 and sets SGD's lr to 11.5 / (1024 (1 + 1 / (1 - 0.85))): 1.5 for the mean loss at
# batch 1024, i.e. 0.75 per 512 images; its weight decay (0.0153 per 1024 images, decoupled from the
# lr) is a decay of 0.002 per step: 0.00133 x that lr. Its logits are multiplied by 1/9 after a global
# max-pool; after our global average pool the features are already several times smaller than a max,
# so the scale stays 1 (with 1/9 on top, airbench94's network reached 49.1% after one epoch against
# 62.0% without; benchmarks/airbench_compare.py). On airbench94's network in 10 epochs this recipe
# reached 89.15% on the offline copy against the full recipe's 88.45% (docs/benchmarks.md). Made for
# about 10 epochs of a network that overfits; `nas retrain --recipe airbench`, not the default.
AIRBENCH = Recipe(epochs=10, batch_size=1024, lr=0.75, momentum=0.85, weight_decay=0.00133, label_smoothing=0.2,
                  warmup=0.23, lr_start=0.2, decay="linear", lr_end=0.07,
                  augment=Augment(flip=True, alternate=True, translate=2, cutout=0), lookahead=0.95,
                  norm_bias_lr=64.0, freeze_norm_weight=True, dirac_init=True, bn_momentum=0.4)
RECIPES = {"full": FULL, "airbench": AIRBENCH}  # nas retrain --recipe


@dataclass
class TrainResult:
    history: list[EpochStats]
    execution: Execution  # as it ran: precision and compile decided
    batch_size: int


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


NORMS = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm, torch.nn.LayerNorm, LayerNorm2d)


def _param_groups(model, recipe: Recipe):
    """Conv/linear weights with weight decay; everything else without; with recipe.norm_bias_lr,
    the normalisation layers' biases in a group of their own whose learning rate is scaled by it
    (its "lr_scale"); with recipe.classifier_scale, the classifier in groups of its own
    (`classifier_groups`)."""
    head = classifier(model) if recipe.classifier_scale != 1 else None
    held = {id(p) for p in head.parameters()} if head is not None else set()
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1 and n.endswith("weight")
             and id(p) not in held]
    norm_biases = [m.bias for m in model.modules() if isinstance(m, NORMS) and getattr(m, "bias", None) is not None
                   and m.bias.requires_grad] if recipe.norm_bias_lr != 1 else []
    ids = {id(p) for p in decay + norm_biases} | held
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if norm_biases:
        groups.append({"params": norm_biases, "weight_decay": 0.0, "lr_scale": recipe.norm_bias_lr})
    if head is not None:
        groups += classifier_groups(head, recipe.classifier_scale, recipe.weight_decay)
    return groups


def classifier(model) -> torch.nn.Linear:
    """The layer that makes the logits: the last linear layer."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not layers:
        raise ValueError("classifier_scale needs a network whose logits come from a linear layer")
    return layers[-1]


def classifier_groups(layer: torch.nn.Linear, scale: float, weight_decay: float) -> list[dict]:
    """airbench multiplies its logits by a constant s (1/9). Under SGD (momentum, Nesterov and
    weight decay included), a linear layer whose output is multiplied by s trains step for step
    as a plain linear layer that starts at s x its weights (`scale_classifier`) and learns at s^2
    times the learning rate with weight decay / s^2 (the same decay per step): so the trick needs
    no layer in the network, and the exported model stays plain."""
    weight = {"params": [layer.weight], "weight_decay": weight_decay / scale ** 2, "lr_scale": scale ** 2}
    bias = [{"params": [layer.bias], "weight_decay": 0.0, "lr_scale": scale ** 2}] if layer.bias is not None else []
    return [weight, *bias]


@torch.no_grad()
def scale_classifier(model, scale: float) -> None:
    """The start of `classifier_groups`' equivalence: the classifier's weights times `scale`."""
    layer = classifier(model)
    layer.weight.mul_(scale)
    if layer.bias is not None:
        layer.bias.mul_(scale)


def set_bn_momentum(model, momentum: float) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum


def freeze_norm_weights(model) -> None:
    """The normalisation layers' scales stop training (they stay what they are: 1 at the start)."""
    for m in model.modules():
        if isinstance(m, NORMS) and getattr(m, "weight", None) is not None:
            m.weight.requires_grad_(False)


@torch.no_grad()
def dirac_init(model) -> None:
    """airbench's partial identity initialisation: each ungrouped conv with an odd square kernel and
    no more inputs than outputs has its first `in_channels` filters set to pass its input through."""
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d) and m.groups == 1 and m.in_channels <= m.out_channels \
                and m.kernel_size[0] == m.kernel_size[1] and m.kernel_size[0] % 2 == 1:
            torch.nn.init.dirac_(m.weight[:m.in_channels])


def make_optimizer(model, recipe: Recipe, lr: float):
    """The recipe's optimizer at peak learning rate `lr` (the recipe's, scaled to the batch size)."""
    groups = _param_groups(model, recipe)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, nesterov=True)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99))
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")


@dataclass(frozen=True)
class Schedule:
    """The learning rate over `total` steps: a linear warm-up from `start` x the peak to the peak
    over `warm` steps, the peak held until `decay_from`, then a cosine (or a straight line) down to
    `end` x the peak at `total`.

    A recipe's own schedule decays from the end of its warm-up (warm-up, then cosine; airbench's
    triangle is warm-up from 0.2, then a line to 0.07). A rung of the search's ladder holds the
    peak until its last stretch (warmup-stable-decay), so the next rung can go on from the weights
    saved where the decay began instead of starting again."""

    total: int
    warm: int
    decay_from: int
    start: float = 0.0
    end: float = 0.0
    shape: str = "cosine"  # cosine | linear

    @classmethod
    def of(cls, recipe: Recipe, steps_per_epoch: int) -> "Schedule":
        total = steps_for(recipe.epochs, steps_per_epoch)
        warm = max(1, int(recipe.warmup * total))
        return cls(total, warm, warm, recipe.lr_start, recipe.lr_end, recipe.decay)

    def lr(self, step: int, peak: float) -> float:
        if step < self.warm:
            return peak * (self.start + (1 - self.start) * (step + 1) / self.warm)
        if step < self.decay_from:
            return peak
        progress = (step - self.decay_from) / max(1, self.total - self.decay_from)
        left = 1 - progress if self.shape == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
        return peak * (self.end + (1 - self.end) * left)


def steps_for(epochs: float, steps_per_epoch: int) -> int:
    """Training steps in `epochs` (fractions allowed), at least one."""
    return max(1, round(epochs * steps_per_epoch))


def tta_views(x, shift: int = 0):
    """(weight, view) pairs whose weighted logits make the TTA prediction: the image and its mirror;
    with `shift`, half the weight goes to the mirrored pairs of the image shifted by `shift` pixels
    up-left and down-right (reflect-padded), as airbench's multi-crop evaluation does."""
    if not shift:
        return [(0.5, x), (0.5, x.flip(3))]
    padded = F.pad(x, (shift,) * 4, mode="reflect")
    size = x.shape[2]
    crops = [padded[:, :, :size, :size], padded[:, :, 2 * shift:, 2 * shift:]]
    views = [(0.25, x), (0.25, x.flip(3))]
    for crop in crops:
        crop = crop.contiguous(memory_format=torch.channels_last if x.is_contiguous(
            memory_format=torch.channels_last) else torch.contiguous_format)
        views += [(0.125, crop), (0.125, crop.flip(3))]
    return views


@torch.no_grad()
def evaluate(model, loader: Loader, execution: Execution, tta: bool = False,
             tta_shift: int = 0) -> tuple[float, float, float | None]:
    """(mean loss, accuracy, TTA accuracy or None) over a loader, in one pass: the plain logits
    score the first two; with tta the weighted logits of `tta_views` score the third."""
    model.eval()
    total_loss, correct, correct_tta, n = 0.0, 0, 0, 0
    for x, y in loader:
        with torch.autocast(execution.device.split(":")[0], dtype=torch.bfloat16, enabled=execution.autocast):
            logits = model(x).float()
            if tta:
                views = tta_views(x, tta_shift)
                both = views[0][0] * logits + sum(w * model(v).float() for w, v in views[1:])
                correct_tta += (both.argmax(1) == y).sum().item()
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    return total_loss / n, correct / n, (correct_tta / n if tta else None)


class Lookahead:
    """airbench's lookahead: slow weights (every float tensor of the state, BN statistics too)
    that follow the trained ones; each pull moves the slow weights toward the trained ones, then
    sets the trained ones to them. The pull's decay grows as progress cubed to `decay` per step, so
    early training is untouched and the end averages over its last few hundred steps. After a
    pull the two are equal, so a checkpoint taken then needs nothing of this."""

    def __init__(self, model, decay: float):
        self.decay = decay
        self.fast = [t for t in model.state_dict().values() if t.is_floating_point()]  # the model's own storage
        self.slow = [t.detach().clone() for t in self.fast]

    @torch.no_grad()
    def pull(self, steps: int, progress: float):
        """`steps` training steps since the last pull, `progress` (0..1) of training done."""
        if steps <= 0:
            return
        keep = self.decay ** steps * progress ** 3
        torch._foreach_lerp_(self.slow, self.fast, 1 - keep)
        torch._foreach_copy_(self.fast, self.slow)


def loss_of(logits, y, recipe: Recipe, teacher_logits=None):
    """The recipe's training loss: cross-entropy with smoothed labels, mixed with the KL divergence
    from the teacher's softened predictions where there is one (scaled by T², so its gradients keep
    their size whatever the temperature)."""
    logits = logits.float()
    loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
    if teacher_logits is None or not recipe.distill:
        return loss
    t = recipe.temperature
    kl = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits.float() / t, 1), log_target=True,
                  reduction="batchmean")
    return (1 - recipe.distill) * loss + recipe.distill * t * t * kl


def _step(net, optimizer, x, y, recipe: Recipe, autocast: bool, device_type: str, teacher_logits=None):
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
        logits = net(x)
        loss = loss_of(logits, y, recipe, teacher_logits)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits


def _timed_steps(net, optimizer, x, y, recipe, autocast, device_type, steps: int) -> float:
    """Fastest of `steps` training steps after one untimed warm-up step (the minimum: noise on a
    shared machine only ever adds time)."""
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        _step(net, optimizer, x, y, recipe, autocast, device_type)
        if device_type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def tune(model, x, y, recipe: Recipe, execution: Execution, steps: int = 5) -> tuple[Execution, float]:
    """Decide bf16 or fp32 by timing training steps of a copy of `model` in each (the model itself
    is not touched), or take the decision made before for this network on this machine; return the
    execution and the chosen precision's seconds per step."""
    device_type = execution.device.split(":")[0]
    trial = copy.deepcopy(model)
    optimizer = torch.optim.SGD(trial.parameters(), lr=0.0)
    cache = DecisionCache()
    key = cache.key("precision", repr(model), len(y), execution.threads, execution.device)
    known = cache.get(key) if execution.tune_precision else execution.precision
    if known is not None:
        return (execution.with_(precision=known, tune_precision=False),
                _timed_steps(trial, optimizer, x, y, recipe, known == "bf16", device_type, 1))
    seconds = {p: _timed_steps(trial, optimizer, x, y, recipe, p == "bf16", device_type, steps) for p in ("bf16", "fp32")}
    best = min(seconds, key=seconds.get)
    cache.put(key, best)
    return execution.with_(precision=best, tune_precision=False), seconds[best]


class CompileCheck:
    """Decides torch.compile by timing the real training loop, the same steps with the same
    optimizer and data: CHECK_STEPS eager steps, then the compiled network's first
    COMPILE_WARMUP_STEPS (it compiles on them) untimed and CHECK_STEPS more. It keeps compile only
    if the compiled median step is at least 10% faster than the eager median (timing a step or two
    of a copy of the network outside the loop chose compile for airbench94's network at batch 1024,
    whose epochs it then made 30% slower)."""

    CHECK_STEPS = 5

    def __init__(self, model):
        self.model, self.compiled = model, None
        self.eager, self.timed = [], []

    def net(self):
        """The network to run the next step with."""
        return self.compiled if self.compiled is not None else self.model

    def record(self, seconds: float) -> str | None:
        """The last step took `seconds`; "on" or "off" once decided (then `net()` is the keeper)."""
        if self.compiled is None:
            self.eager.append(seconds)
            if len(self.eager) == self.CHECK_STEPS + 1:  # the first eager step warms up too
                self.compiled = native.compile(self.model)
            return None
        self.timed.append(seconds)
        if len(self.timed) < COMPILE_WARMUP_STEPS + self.CHECK_STEPS:
            return None
        keep = statistics.median(self.timed[COMPILE_WARMUP_STEPS:]) < 0.9 * statistics.median(self.eager[1:])
        if not keep:
            self.compiled = None
        return "on" if keep else "off"


def fit_whitening(model, images) -> None:
    """Fit the filters of every whitening layer in `model` (a whitened stem) from `images`,
    normalised training images; before training starts, never on a resume."""
    for layer in model.modules():
        if isinstance(layer, Whitening):
            layer.fit(images)


@releases_freed_memory
def train(model, train_split: Split, eval_split: Split, recipe: Recipe, mean, std, device=None, seed: int = 0,
          on_epoch=None, start_epoch: int = 0, optimizer_state=None, on_checkpoint=None,
          execution: Execution | None = None, on_step=None, schedule: Schedule | None = None,
          start_step: int | None = None, snapshot_at: int | None = None, on_snapshot=None,
          teacher_logits: torch.Tensor | None = None) -> TrainResult:
    """Train `model` on train_split with `recipe`; evaluate on eval_split after every epoch, or
    only after the last where recipe.eval_each_epoch is False.

    `execution` (default: `choose(device)`) says how to run; precision 'auto' and compile 'auto'
    are decided here by timing steps of the real network. on_epoch(stats) is called after each
    epoch, on_step(step, total) after each step; on_checkpoint(epoch, model, optimizer) lets the
    caller save state to resume from (start_epoch, optimizer_state).

    The search's rungs train by steps: `schedule` (default: the recipe's) sets the steps and the
    learning rate, training starts at `start_step` (the data order goes on where that step falls
    in its epoch) and on_snapshot(step, model, optimizer) is called once `snapshot_at` steps are
    done, before the next.

    With recipe.distill, `teacher_logits` (N, 2, classes) are a teacher's logits for each training
    image as stored and mirrored (nas/distill.py), which the loss is distilled from."""
    if bool(recipe.distill) != (teacher_logits is not None):
        raise ValueError("recipe.distill and teacher_logits go together")
    if teacher_logits is not None and teacher_logits.shape[:2] != (len(train_split), 2):
        raise ValueError(f"teacher_logits of shape {tuple(teacher_logits.shape)} for {len(train_split)} images")
    execution = execution or choose(device)
    execution.apply()
    device = torch.device(execution.device)
    device_type = device.type
    torch.manual_seed(seed)
    model.to(device=device, memory_format=execution.memory_format)
    batch_size = recipe.batch_size or default_batch_size(execution.device)
    peak_lr = recipe.lr_for(batch_size)
    train_loader = Loader(train_split, mean, std, batch_size, device, augment=recipe.augment, shuffle=True,
                          seed=seed, drop_last=True, channels_last=execution.channels_last,
                          soft_targets=teacher_logits)
    eval_loader = Loader(eval_split, mean, std, EVAL_BATCH_SIZE, device, channels_last=execution.channels_last)
    if recipe.freeze_norm_weight:
        freeze_norm_weights(model)
    optimizer = make_optimizer(model, recipe, peak_lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    steps_per_epoch = len(train_loader)
    schedule = schedule or Schedule.of(recipe, steps_per_epoch)
    total = schedule.total
    step = start_step if start_step is not None else start_epoch * steps_per_epoch
    if step == 0 and recipe.dirac_init:
        dirac_init(model)
    if step == 0 and recipe.classifier_scale != 1:
        scale_classifier(model, recipe.classifier_scale)
    set_bn_momentum(model, recipe.bn_momentum)
    if step == 0 and any(isinstance(m, Whitening) for m in model.modules()):
        fit_whitening(model, train_loader.normalise(train_loader.x[:WHITEN_IMAGES]))
    net, compile_check = model, None
    if execution.device == "cpu":
        kernels.accelerate(model)  # a faster depthwise weight gradient, merged MixConv (nas/kernels.py)
    if execution.tune_precision and total - step < TUNE_MIN_STEPS:
        execution = execution.with_(tune_precision=False)  # not worth timing: bf16 where the CPU has it
    if execution.tune_precision or execution.compile == "auto":
        x0, y0 = next(iter(Loader(train_split, mean, std, batch_size, device, channels_last=execution.channels_last)))
        execution, step_seconds = tune(model, x0, y0, recipe, execution)
        if execution.compile == "auto":
            compile_key = DecisionCache.key("compile", repr(model), batch_size, execution.threads, execution.device,
                                            execution.precision)
            known = DecisionCache().get(compile_key)
            if step_seconds * (total - step) < COMPILE_MIN_SECONDS:
                execution = execution.with_(compile="off")
            elif known is not None:
                execution = execution.with_(compile=known)
            else:
                compile_check = CompileCheck(model)  # time eager steps, then compiled ones, keep the faster
    if execution.compile == "on":
        net = native.compile(model)
    lookahead = Lookahead(model, recipe.lookahead) if recipe.lookahead else None
    pulled = step  # the step of the last pull: training starts from weights equal to the slow ones
    history, started = [], time.perf_counter()
    while step < total:
        epoch, offset = divmod(step, steps_per_epoch)
        t0 = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        train_loader.epoch = epoch
        for x, y, *soft in train_loader.batches(offset, min(steps_per_epoch, total - epoch * steps_per_epoch)):
            soft = soft[0] if soft else None
            if step == snapshot_at and on_snapshot is not None:
                if lookahead is not None:
                    lookahead.pull(step - pulled, step / total)
                    pulled = step
                on_snapshot(step, model, optimizer)
            lr = schedule.lr(step, peak_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            t_step = time.perf_counter()
            if compile_check is not None:
                net = compile_check.net()
            try:
                loss, logits = _step(net, optimizer, x, y, recipe, execution.autocast, device_type, soft)
            except Exception:
                if compile_check is None or net is model:
                    raise
                net, compile_check = model, None  # torch.compile failed on this network: stay eager
                execution = execution.with_(compile="off")
                DecisionCache().put(compile_key, "off")
                loss, logits = _step(net, optimizer, x, y, recipe, execution.autocast, device_type, soft)
            if compile_check is not None:
                if device_type == "cuda":
                    torch.cuda.synchronize()
                decided = compile_check.record(time.perf_counter() - t_step)
                if decided is not None:
                    net = compile_check.net()
                    execution = execution.with_(compile=decided)
                    DecisionCache().put(compile_key, decided)
                    compile_check = None
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            step += 1
            if lookahead is not None and (step - pulled == LOOKAHEAD_EVERY or step % steps_per_epoch == 0
                                          or step == total):
                lookahead.pull(step - pulled, step / total)
                pulled = step
            if on_step is not None:
                on_step(step, total)
            if recipe.time_limit is not None and time.perf_counter() - started > recipe.time_limit:
                raise TimeoutError(f"passed the time limit of {recipe.time_limit:g}s in epoch {epoch + 1}")
        train_loss = loss_sum.item() / max(1, seen)
        if not math.isfinite(train_loss):
            raise Diverged(f"loss is {train_loss} in epoch {epoch + 1}")
        test_loss = test_acc = tta = None
        if recipe.eval_each_epoch or step == total:
            # TTA costs a forward pass per view: only the final epoch's is reported, the curves are plain
            test_loss, test_acc, tta = evaluate(model, eval_loader, execution, tta=recipe.tta and step == total,
                                                tta_shift=recipe.tta_shift)
        stats = EpochStats(epoch + 1, train_loss, correct.item() / max(1, seen), test_loss, test_acc, tta,
                           lr, time.perf_counter() - t0)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if on_checkpoint is not None and step % steps_per_epoch == 0:
            on_checkpoint(step // steps_per_epoch, model, optimizer)
    if step == snapshot_at and on_snapshot is not None:
        on_snapshot(step, model, optimizer)
    if execution.compile == "auto":  # the run ended before the check did
        execution = execution.with_(compile="on" if compile_check is not None and compile_check.compiled else "off")
    kernels.restore(model)
    return TrainResult(history, execution, batch_size)
