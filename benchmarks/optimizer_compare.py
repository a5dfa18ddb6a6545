"""SGD-Nesterov against AdamW on searched winners, a few epochs each on the same seed and data order,
scored on a held-out validation split of the training set (the test split is not read): which optimizer a
network of each block family trains better with, before a long retrain is spent on it.

Each network trains from the same initialisation under each optimizer; both use the full recipe's
schedule (5% warm-up, cosine to zero over the epochs given), flip + translate 2, no cutout, label
smoothing 0.1. SGD at the full recipe's learning rate and weight decay; AdamW at --adamw-lr and
--adamw-wd (decoupled, as torch.optim.AdamW applies it), both per 512 images."""
import time
from dataclasses import replace

import torch

from common import parser, publish, table

from nas.budget import estimate
from nas.data import channel_stats, holdout, load
from nas.records import Winner
from nas.train import FULL, train


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("winners", nargs="+", help="winner.json files of searches")
    p.add_argument("--epochs", type=float, default=4)
    p.add_argument("--adamw-lr", type=float, default=4e-3)
    p.add_argument("--adamw-wd", type=float, default=0.05)
    args = p.parse_args()
    data = load(args.data)
    train_split, val_split = holdout(data.train, 0.1, seed=args.seed)
    mean, std = channel_stats(train_split)
    base = FULL.with_(epochs=args.epochs, augment=replace(FULL.augment, cutout=0), tta=False)
    recipes = {"SGD-Nesterov": base,
               "AdamW": base.with_(optimizer="adamw", lr=args.adamw_lr, weight_decay=args.adamw_wd)}
    rows = []
    for path in args.winners:
        arch = Winner.load(path, check_space=False).architecture
        for name, recipe in recipes.items():
            torch.manual_seed(args.seed)
            model = arch.build()
            start = time.perf_counter()
            result = train(model, train_split, val_split, recipe, mean, std, device=args.device, seed=args.seed,
                           on_epoch=lambda s: print(path, name, s, flush=True))
            seconds = time.perf_counter() - start
            last = result.history[-1]
            rows.append([f"`{arch.summary()}`", f"{estimate(arch).params:,}", name,
                         f"{100 * last.train_acc:.2f}%", f"{100 * last.test_acc:.2f}%",
                         f"{seconds / len(result.history):.0f}"])
            print(rows[-1], flush=True)
    note = (f"\n{args.epochs:g} epochs on 45,000 training images, scored on the 5,000 held out (seed {args.seed}); "
            f"SGD: lr {base.lr:g}, weight decay {base.weight_decay:g}; AdamW: lr {args.adamw_lr:g}, weight decay "
            f"{args.adamw_wd:g} (learning rates per 512 images, scaled to the batch); {result.execution.describe()}, batch "
            f"{result.batch_size}.")
    publish("SGD against AdamW on searched winners", table(
        ["network", "params", "optimizer", "train acc (augmented)", "validation acc", "s/epoch"], rows) + note,
        args.docs)


if __name__ == "__main__":
    main()
