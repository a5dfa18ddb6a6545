"""Our trainer on airbench94's network (as a nas candidate) for 10 epochs: seconds per epoch and
test accuracy, beside what airbench94's own code does.

airbench94's rows are what the speed issue measured for its own code on the offline copy: on an
H100, 90.66% after 10 epochs; moved to this 2-core CPU in fp32, 158 s per 50k-image epoch (66.1%
after one epoch). Ours is measured here with the execution the trainer picks for the machine.
An epoch's seconds include the per-epoch evaluation of the 10,000 test images (plain and flip-TTA).

The accuracy airbench94.py prints at the end of a run (and returns) is its `tta_level=2`
evaluation: the image and its mirror, each also shifted one pixel up-left and down-right, half the
weight to the unshifted pair. Our multi-crop TTA (`tta_shift=1`) is the same evaluation, so that
column compares like with like; the final-epoch column without TTA is the stricter target."""
import statistics
import time
from dataclasses import replace

import torch

from common import parser, publish, sync, table

from airbench94 import space
from nas.budget import estimate
from nas.data import Augment, Loader, channel_stats, load
from nas.train import AIRBENCH as AIRBENCH_RECIPE, EVAL_BATCH_SIZE, FULL, evaluate, train

# airbench94's hyper-parameters in our units, from nas.train.AIRBENCH (where the conversion is explained)
AIRBENCH_HYP = {"whiten": True, "batch_size": AIRBENCH_RECIPE.batch_size, "lr": AIRBENCH_RECIPE.lr,
                "momentum": AIRBENCH_RECIPE.momentum, "weight_decay": AIRBENCH_RECIPE.weight_decay,
                "label_smoothing": AIRBENCH_RECIPE.label_smoothing, "norm_bias_lr": AIRBENCH_RECIPE.norm_bias_lr,
                "freeze_norm_weight": AIRBENCH_RECIPE.freeze_norm_weight, "dirac_init": AIRBENCH_RECIPE.dirac_init,
                "alternate_flip": AIRBENCH_RECIPE.augment.alternate, "lookahead": AIRBENCH_RECIPE.lookahead,
                "bn_momentum": AIRBENCH_RECIPE.bn_momentum, "classifier_scale": AIRBENCH_RECIPE.classifier_scale,
                "triangle": True}
BASE = {"batch_size": None, "lr": 0.2, "label_smoothing": 0.2}  # this benchmark's own defaults
AIRBENCH = {"gpu_accuracy": 0.9066, "cpu_epoch_seconds": 158.0, "cpu_one_epoch_accuracy": 0.661, "epochs": 10}


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=None, help="default: the trainer's choice for the device")
    p.add_argument("--lr", type=float, default=0.2, help="peak lr at batch 512, scaled with the batch size")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--whiten", action="store_true",
                   help="airbench's frozen 2x2 whitening stem in place of our trained 2x2 conv stem")
    # airbench's optimisation, one knob at a time (the Recipe's fields of the same names)
    p.add_argument("--momentum", type=float, default=FULL.momentum, help="airbench: 0.85")
    p.add_argument("--weight-decay", type=float, default=FULL.weight_decay)
    p.add_argument("--norm-bias-lr", type=float, default=1.0, help="BN biases' lr multiplier (airbench: 64)")
    p.add_argument("--freeze-norm-weight", action="store_true", help="BN scales stay 1 (airbench)")
    p.add_argument("--dirac-init", action="store_true", help="partial identity init of the convs (airbench)")
    p.add_argument("--alternate-flip", action="store_true", help="airbench's derandomised flip")
    p.add_argument("--lookahead", type=float, default=0.0, help="airbench: 0.95")
    p.add_argument("--label-smoothing", type=float, default=0.2)
    p.add_argument("--bn-momentum", type=float, default=FULL.bn_momentum, help="airbench: 0.4 (its 0.6)")
    p.add_argument("--classifier-scale", type=float, default=1.0, help="airbench: 1/9")
    p.add_argument("--triangle", action="store_true",
                   help="airbench's schedule: warm-up from 0.2x over 23%%, then a line down to 0.07x")
    p.add_argument("--airbench", action="store_true",
                   help="all of airbench94's settings at once (each in airbench's value, in our units: the "
                        "mean loss, lr per 512 images): " + ", ".join(f"{k} {v}" for k, v in AIRBENCH_HYP.items()))
    if p.parse_known_args()[0].airbench:  # airbench's values become the defaults; a flag given still wins
        p.set_defaults(**AIRBENCH_HYP)
    args = p.parse_args()
    data = load(args.data)
    mean, std = channel_stats(data.train)
    arch = space.resolve({})
    if args.whiten:
        arch = replace(arch, stem_whiten=True)
    schedule = dict(warmup=AIRBENCH_RECIPE.warmup, lr_start=AIRBENCH_RECIPE.lr_start, decay=AIRBENCH_RECIPE.decay,
                    lr_end=AIRBENCH_RECIPE.lr_end) if args.triangle else dict(warmup=0.1)
    recipe = FULL.with_(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        label_smoothing=args.label_smoothing, **schedule, bn_momentum=args.bn_momentum,
                        classifier_scale=args.classifier_scale,
                        augment=Augment(flip=True, alternate=args.alternate_flip, translate=2, cutout=0),
                        momentum=args.momentum, weight_decay=args.weight_decay, norm_bias_lr=args.norm_bias_lr,
                        freeze_norm_weight=args.freeze_norm_weight, dirac_init=args.dirac_init,
                        lookahead=args.lookahead)
    tricks = [k if isinstance(v, bool) else f"{k} {v:g}" for k, v in recipe.to_dict().items()
              if k in ("batch_size", "lr", "momentum", "weight_decay", "label_smoothing", "norm_bias_lr",
                       "freeze_norm_weight", "dirac_init", "lookahead", "bn_momentum", "classifier_scale")
              and v != BASE.get(k, FULL.to_dict()[k])] + (["alternate flip"] if args.alternate_flip else []) \
        + (["airbench's triangular schedule"] if args.triangle else [])
    runs = []
    for i in range(args.repeats):
        model = arch.build()
        sync(args.device)
        start = time.perf_counter()
        result = train(model, data.train, data.test, recipe, mean, std, device=args.device, seed=args.seed + i,
                       on_epoch=lambda s: print(s, flush=True))
        sync(args.device)
        seconds = time.perf_counter() - start
        loader = Loader(data.test, mean, std, EVAL_BATCH_SIZE, torch.device(result.execution.device),
                        channels_last=result.execution.channels_last)
        _, _, multi = evaluate(model, loader, result.execution, tta=True, tta_shift=1)
        runs.append((seconds, result, multi))
    seconds = statistics.median(r[0] for r in runs)
    last = [r[1].history[-1] for r in runs]
    epoch_seconds = statistics.median(statistics.median(h.seconds for h in r[1].history) for r in runs)
    acc, tta = statistics.median(h.test_acc for h in last), statistics.median(h.test_acc_tta for h in last)
    multi = statistics.median(r[2] for r in runs)
    first = statistics.median(r[1].history[0].test_acc for r in runs)
    result = runs[0][1]
    rows = [["airbench94's own code (CPU, fp32; GPU for accuracy)", "1,972,826", AIRBENCH["epochs"],
             f"{AIRBENCH['cpu_epoch_seconds']:.0f}", f"{100 * AIRBENCH['cpu_one_epoch_accuracy']:.1f}%",
             "-", "-", f"{100 * AIRBENCH['gpu_accuracy']:.2f}% (H100)"],
            ["nas trainer, same network" + (", whitened stem" if args.whiten else "")
             + "".join(f", {t}" for t in tricks), f"{estimate(arch).params:,}", args.epochs, f"{epoch_seconds:.0f}",
             f"{100 * first:.1f}%", f"{100 * acc:.2f}%", f"{100 * tta:.2f}%", f"{100 * multi:.2f}%"]]
    note = (f"\nnas: {result.execution.describe()}, batch {result.batch_size}; {seconds:.0f} s in all. Targets: an "
            f"epoch in at most {AIRBENCH['cpu_epoch_seconds']:.0f} s and at least 90% test accuracy after 10 epochs "
            f"(final epoch, no TTA; airbench's own 90.66% is its multi-crop TTA number).")
    publish("Trainer against airbench94 on the CPU", table(
        ["trainer", "params", "epochs", "s/epoch", "acc after epoch 1", "final test acc", "with flip-TTA",
         "with multi-crop TTA (airbench's printed number)"], rows)
        + note, args.docs)


if __name__ == "__main__":
    main()
