"""Training speed of nas's trainer against a plain eager fp32 NCHW PyTorch loop, same network, same run.

For one 40-50k-parameter candidate of each block family in spaces/tiny.py (every stage of that
family) and for airbench94's network: one epoch of --images real training images plus one
evaluation pass over --eval-images, steady state (the first epoch of each is warm-up and not
timed). The plain loop is what a user would write: batch 512, random flip, SGD-Nesterov, one
evaluation pass. nas's epoch is a real `nas retrain` epoch (the FULL recipe: flip, translate,
cutout, evaluation with flip-TTA) with whatever execution the trainer picks for this machine.
Every plain loop runs before any of nas's, so that none inherits what nas's trainer sets for the
process (its allocator settings). GFLOP/s counts a training step as 3x the forward MACs x 2; the limit beside it is a 3x3,
64-channel conv's own GFLOP/s (fp32 and bf16) measured in the same run."""
import random
import statistics
import time

import torch
import torch.nn.functional as F
from common import parser, publish, table

from airbench94 import space as airbench_space
from nas.budget import estimate
from nas.data import Split, channel_stats, load
from nas.execution import COMPILE_MODES, choose
from nas.spaces import builtin
from nas.train import FULL, train

FAMILIES = ("mixer", "dwsep", "mbconv", "residual")


def family_candidate(family: str, seed: int = 0, low: int = 40_000, high: int = 50_000):
    """airbench94's network, or the first sampled candidate of spaces/tiny.py built only of `family`
    with low..high params."""
    if family == "airbench94":
        return airbench_space.resolve({})
    space, rng = builtin("tiny"), random.Random(seed)
    while True:
        candidate = space.sample(rng)
        candidate.update({f"s{i}_block": family for i in (1, 2, 3)})
        arch = space.resolve(candidate)
        if low <= estimate(arch).params <= high:
            return arch


def plain_epoch(arch, train_split: Split, eval_split: Split, mean, std, seed: int) -> float:
    """Seconds for one epoch of the plain loop (after one warm-up epoch)."""
    torch.manual_seed(seed)
    model = arch.build()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    x_all = (torch.from_numpy(train_split.x).permute(0, 3, 1, 2).float() / 255 - m) / s
    y_all = torch.from_numpy(train_split.y)
    x_eval = (torch.from_numpy(eval_split.x).permute(0, 3, 1, 2).float() / 255 - m) / s
    y_eval = torch.from_numpy(eval_split.y)
    seconds = 0.0
    for epoch in range(2):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(y_all))
        for i in range(0, len(order) - 511, 512):
            idx = order[i:i + 512]
            x, y = x_all[idx], y_all[idx]
            flip = torch.rand(len(y)) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            sum((model(x_eval[i:i + 1000]).argmax(1) == y_eval[i:i + 1000]).sum().item()
                          for i in range(0, len(y_eval), 1000))
        seconds = time.perf_counter() - start
    return seconds


def nas_epoch(arch, train_split, eval_split, mean, std, seed: int, compile: str = "auto"):
    """(seconds of the last epoch of a real FULL-recipe run, the execution it chose). With
    compile 'on' (what a long retrain picks where compiling pays) the run has a third epoch: the
    first compiles the training step, the second the evaluation."""
    torch.manual_seed(seed)
    model = arch.build()
    result = train(model, train_split, eval_split, FULL.with_(epochs=3 if compile == "on" else 2), mean, std,
                   seed=seed, execution=choose("cpu", compile=compile))
    return result.history[-1].seconds, f"{result.execution.describe()}, batch {result.batch_size}"


def conv_gflops(dtype) -> float:
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(256, 64, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        for _ in range(2):
            conv(x)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            conv(x)
            times.append(time.perf_counter() - start)
    return 2 * 256 * 64 * 64 * 9 * 32 * 32 / statistics.median(times) / 1e9


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=6400)
    p.add_argument("--eval-images", type=int, default=2000)
    p.add_argument("--families", nargs="+", default=[*FAMILIES, "airbench94"])
    p.add_argument("--compile", choices=COMPILE_MODES, default="auto",
                   help="nas's torch.compile: auto decides as a run of --images would (off: too short to pay), "
                        "on is what a long retrain gets where compiling pays")
    args = p.parse_args()
    data = load(args.data)
    mean, std = channel_stats(data.train)
    train_split = Split(data.train.x[:args.images], data.train.y[:args.images])
    eval_split = Split(data.test.x[:args.eval_images], data.test.y[:args.eval_images])
    limit32, limit16 = conv_gflops(torch.float32), conv_gflops(torch.bfloat16)
    archs = {family: family_candidate(family, args.seed) for family in args.families}
    # every plain loop first: nas's trainer sets process-wide knobs (its allocator settings, its kernels)
    # that a plain loop run after it would inherit
    plains = {family: plain_epoch(arch, train_split, eval_split, mean, std, args.seed) for family, arch in archs.items()}
    rows = []
    for family, arch in archs.items():
        cost = estimate(arch)
        plain = plains[family]
        ours, execution = nas_epoch(arch, train_split, eval_split, mean, std, args.seed, args.compile)
        n = len(train_split)
        gflops = 6 * cost.macs * n / ours / 1e9
        rows.append([family, f"{cost.params:,}", f"{cost.macs / 1e6:.1f}M", f"{plain:.1f}", f"{ours:.1f}",
                     f"**{plain / ours:.2f}x**", f"{n / plain:.0f}", f"{n / ours:.0f}", f"{gflops:.0f}", execution,
                     arch.summary()])
        print(rows[-1], flush=True)
    note = (f"\nEpoch = {args.images:,} training images + {args.eval_images:,} evaluated. A 3x3 64-channel conv "
            f"(batch 256, 32x32, channels_last) runs at {limit32:.0f} GFLOP/s in fp32 and {limit16:.0f} in bf16 here: "
            f"the limit to read the GFLOP/s column against (training counted as 6 x MACs per image).")
    publish("CPU training throughput: nas's trainer against a plain fp32 NCHW loop",
            table(["network", "params", "MACs", "plain s/epoch", "nas s/epoch", "speed-up", "plain img/s",
                   "nas img/s", "nas GFLOP/s", "execution", "architecture"], rows) + note, args.docs)


if __name__ == "__main__":
    main()
