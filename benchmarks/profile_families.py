"""Where a training step's time goes, per block family: torch.profiler, operators by self time.

For the same 40-50k candidates as cpu_throughput.py (and airbench94's network), profiles
--steps training steps (forward, backward and optimizer) on real images, once as a plain loop
would run them (fp32, NCHW), in channels_last, in bf16 autocast + channels_last, and as nas's
trainer runs them in bf16 (with nas.kernels' depthwise weight gradient), and prints the top
operators of each with their share."""
import time

import torch
import torch.nn.functional as F
from common import parser, publish, table
from cpu_throughput import FAMILIES, family_candidate
from torch.profiler import ProfilerActivity, profile

from nas import kernels
from nas.budget import estimate
from nas.data import Loader, Split, channel_stats, load
from nas.execution import choose
from nas.train import FULL


def profile_steps(arch, batches, channels_last: bool, bf16: bool, top: int, fast_kernels: bool = False):
    torch.manual_seed(0)
    model = arch.build().to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if fast_kernels:
        kernels.accelerate(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def step(x, y):
        x = x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step(*batches[0])  # warm-up
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for x, y in batches[1:]:
            step(x, y)
    seconds = (time.perf_counter() - start) / (len(batches) - 1)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    ops = [f"{e.key} {100 * e.self_cpu_time_total / total:.0f}%" for e in events[:top]]
    return seconds, ops


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--families", nargs="+", default=[*FAMILIES, "airbench94"])
    args = p.parse_args()
    data = load(args.data)
    mean, std = channel_stats(data.train)
    split = Split(data.train.x[:args.batch_size * (args.steps + 1)], data.train.y[:args.batch_size * (args.steps + 1)])
    batches = list(Loader(split, mean, std, args.batch_size, "cpu", augment=FULL.augment, shuffle=True,
                          channels_last=False))
    execution = choose("cpu")
    execution.apply()
    rows = []
    for family in args.families:
        arch = family_candidate(family, args.seed)
        macs = estimate(arch).macs
        for label, cl, bf16, fast in (("fp32 NCHW", False, False, False), ("fp32 channels_last", True, False, False),
                                      ("bf16 channels_last", True, execution.autocast, False),
                                      ("bf16 channels_last + nas.kernels", True, execution.autocast, True)):
            seconds, ops = profile_steps(arch, batches, cl, bf16, args.top, fast)
            rows.append([family, label, f"{args.batch_size / seconds:.0f}",
                         f"{6 * macs * args.batch_size / seconds / 1e9:.0f}", "; ".join(ops)])
            print(rows[-1], flush=True)
    publish("Where a training step's time goes, per block family",
            table(["network", "execution", "img/s", "GFLOP/s", "top operators by self CPU time"], rows)
            + f"\n\nBatch {args.batch_size}, {args.steps} profiled steps after one warm-up, real images, "
              f"{execution.threads} threads.", args.docs)


if __name__ == "__main__":
    main()
