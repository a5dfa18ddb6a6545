"""nas's epoch at several batch sizes: a real FULL-recipe run as cpu_throughput.py's (6,400 training images +
2,000 evaluated, the last of 2 epochs), eager, the execution otherwise the trainer's choice; every network and
size twice, interleaved; medians."""
import statistics
from pathlib import Path

import torch
from common import parser, publish, table
from cpu_throughput import FAMILIES, family_candidate

from nas.data import Split, channel_stats, load
from nas.execution import choose
from nas.records import Winner
from nas.train import FULL, train

TINY_50K = Path(__file__).resolve().parent.parent / "results/tiny-50k/search/winner.json"


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--networks", nargs="+", default=["tiny-50k", "dwsep", "mixer"],
                   help=f"tiny-50k (results/tiny-50k's network) or a family: {', '.join(FAMILIES)}")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    data = load(args.data)
    mean, std = channel_stats(data.train)
    train_split = Split(data.train.x[:6400], data.train.y[:6400])
    eval_split = Split(data.test.x[:2000], data.test.y[:2000])
    archs = {name: Winner.load(TINY_50K, check_space=False).architecture if name == "tiny-50k" else family_candidate(name, args.seed)
             for name in args.networks}
    seconds, execution = {}, {}
    for _ in range(args.repeats):
        for name, arch in archs.items():
            for batch in args.batch_sizes:
                torch.manual_seed(args.seed)
                result = train(arch.build(), train_split, eval_split, FULL.with_(epochs=2, batch_size=batch), mean,
                               std, seed=args.seed, execution=choose("cpu", compile="off"))
                seconds.setdefault((name, batch), []).append(result.history[-1].seconds)
                execution[name] = result.execution.describe()
                print(name, batch, f"{result.history[-1].seconds:.2f} s", flush=True)
    rows = []
    for name in archs:
        base = statistics.median(seconds[(name, 256)]) if (name, 256) in seconds else None
        for batch in args.batch_sizes:
            s = statistics.median(seconds[(name, batch)])
            rows.append([name, batch, f"{s:.2f}", f"{len(train_split) / s:.0f}",
                         f"{base / s:.2f}x" if base else "-", execution[name]])
    publish("nas's epoch at several batch sizes",
            table(["network", "batch", "s/epoch", "img/s", "speed against batch 256", "execution"], rows)
            + f"\n\nEpoch = 6,400 training images + 2,000 evaluated; median of {args.repeats}, interleaved.", args.docs)


if __name__ == "__main__":
    main()
