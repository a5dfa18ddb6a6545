"""airbench's recipe tricks on our candidates, measured: the full recipe, with lookahead of the
weights (--lookahead), with airbench's alternating flip (each image's flip drawn once, all mirrored
every other epoch), and on the same network with a whitened stem (airbench's frozen 2x2
whitening layer, `Stem(whiten=True)`); each final network's test accuracy plain, with flip-TTA and
with multi-crop TTA (--tta-shift 1), on the same seeds in one run.

Each variant trains from the same seed and data order; the recipe variants train the same network
from the same initialisation, the whitened one its own (it has the whitening layer). Multi-crop TTA needs no training of its own: every final network is evaluated
both ways."""
import statistics
import time
from dataclasses import replace

import torch

from common import parser, publish, table

from cpu_throughput import FAMILIES, family_candidate
from nas.budget import estimate
from nas.data import Loader, channel_stats, load
from nas.train import EVAL_BATCH_SIZE, FULL, evaluate, train


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--network", default="residual", choices=(*FAMILIES, "airbench94"),
                   help="a 40-50k candidate of spaces/tiny.py of this family, or airbench94's network")
    p.add_argument("--epochs", type=float, default=10)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--lookahead", type=float, default=0.95)
    p.add_argument("--variants", default="full,lookahead,altflip,whiten",
                   help="comma-separated, of: full (the full recipe), lookahead, altflip (alternating flip), "
                        "whiten (whitened stem)")
    args = p.parse_args()
    wanted = args.variants.split(",")
    known = {"full", "lookahead", "altflip", "whiten"}
    if not set(wanted) <= known:
        p.error(f"--variants: unknown {', '.join(sorted(set(wanted) - known))}")
    data = load(args.data)
    mean, std = channel_stats(data.train)
    arch = family_candidate(args.network)
    every = {"full": ("full recipe", arch, FULL.with_(epochs=args.epochs)),
             "lookahead": (f"full recipe + lookahead {args.lookahead:g}", arch,
                           FULL.with_(epochs=args.epochs, lookahead=args.lookahead)),
             "altflip": ("full recipe, alternating flip", arch,
                         FULL.with_(epochs=args.epochs, augment=replace(FULL.augment, alternate=True))),
             "whiten": ("full recipe, whitened stem", replace(arch, stem_whiten=True), FULL.with_(epochs=args.epochs))}
    variants = [every[v] for v in wanted]
    rows, runs = [], {name: [] for name, _, _ in variants}
    for seed in range(args.seeds):
        for name, network, recipe in variants:
            torch.manual_seed(args.seed + seed)
            model = network.build()
            start = time.perf_counter()
            result = train(model, data.train, data.test, recipe, mean, std, device=args.device,
                           seed=args.seed + seed, on_epoch=lambda s: print(name, s, flush=True))
            seconds = time.perf_counter() - start
            loader = Loader(data.test, mean, std, EVAL_BATCH_SIZE, torch.device(result.execution.device),
                            channels_last=result.execution.channels_last)
            _, acc, flip = evaluate(model, loader, result.execution, tta=True)
            _, _, multi = evaluate(model, loader, result.execution, tta=True, tta_shift=1)
            runs[name].append((acc, flip, multi, seconds / len(result.history)))
            print(f"{name}, seed {args.seed + seed}: {100 * acc:.2f}% plain, {100 * flip:.2f}% flip-TTA, "
                  f"{100 * multi:.2f}% multi-crop TTA", flush=True)
    for name, results in runs.items():
        med = [statistics.median(r[i] for r in results) for i in range(4)]
        each = ", ".join(f"{100 * r[0]:.2f}" for r in results)
        rows.append([name, f"{100 * med[0]:.2f}% ({each})", f"{100 * med[1]:.2f}%", f"{100 * med[2]:.2f}%",
                     f"{med[3]:.0f}"])
    note = (f"\n`{arch.summary()}`, {estimate(arch).params:,} params, "
            f"{args.epochs:g} epochs of the full 50,000-image training split, test split of 10,000; medians of "
            f"{args.seeds} seeds (each seed's plain accuracy in brackets); {result.execution.describe()}, "
            f"batch {result.batch_size}.")
    publish(f"Recipe tricks from airbench on the {args.network} candidate", table(
        ["recipe", "test acc, final epoch", "flip-TTA", "multi-crop TTA (shift 1)", "s/epoch"], rows) + note,
        args.docs)


if __name__ == "__main__":
    main()
