"""The first rung, other ways: how well variants of the ladder's cheapest rung (a quarter epoch)
rank the candidates of the proxy-fidelity study against their long training.

The proxy-fidelity study (proxy_fidelity.py) found rung 0 ranking worse than chance (Kendall tau
-0.137 against 30 epochs on 12 candidates) while rung 1 (one epoch) reaches 0.515. This trains
rung 0 again for the same 12 candidates, on the same held-out validation split (and, but for the
half-resolution variants, the same number of images: a quarter epoch of the training split less
the hold-out), once per variant:
- `seed`, `seed2`: exactly as the search trains it, other initial weights and data order: is rung
  0's ranking the candidates' or the seed's? (`seed2` also times rung 0 on the machine at hand.)
- `batch128`, `batch64`: the same images in batches of 128 or 64 (twice or four times the steps,
  the learning rate scaled linearly as always): small networks may learn more per image from
  more, smaller steps, and on a CPU a small network trains as fast per image at batch 128.
- `lr2x`: the search's batch at twice the peak learning rate.
- `epoch05`: half an epoch at full resolution, twice rung 0's images and cost.
- `half1`, `half1-seed`, `half05`: the images at half resolution (16x16, each 2x2 block of pixels
  averaged; training and validation alike), for one epoch (twice with other seeds) or half an epoch:
  a fidelity the issue names. A 16-pixel image costs a quarter of the MACs, so one epoch at 16
  pixels costs about what a quarter epoch at 32 does, with four times the steps and every image seen.
Each variant's tau and rho against the long training are reported beside the study's own rung 0
and rung 1. Resumable: every finished job is kept in --work/results.json.
"""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from common import ROOT, parser, publish, table
from scipy.stats import kendalltau, spearmanr

from nas.budget import Budget
from nas.data import Augment, Split, channel_stats, holdout, load
from nas.execution import choose, default_batch_size
from nas.files import write_json
from nas.search.jobs import Job, Trainer
from nas.search.runner import SearchConfig
from nas.spaces import load_space
from nas.train import PROXY

HALF_AUGMENT = Augment(flip=True, translate=1, cutout=0)  # the proxy's 2-pixel shift, at half the side
VARIANTS = {  # name: (changes to the search's proxy recipe, seed offset, epochs (None: rung 0's), image side / 32)
    "seed": ({}, 1000, None, 1),
    "seed2": ({}, 2000, None, 1),  # a third seed, and rung 0's cost on the machine the variants below run on
    "batch128": ({"batch_size": 128}, 0, None, 1),
    "batch64": ({"batch_size": 64}, 0, None, 1),
    "lr2x": ({"lr": 2 * PROXY.lr}, 0, None, 1),
    "epoch05": ({}, 0, 0.5, 1),
    "half1": ({"augment": HALF_AUGMENT}, 0, 1.0, 0.5),
    "half1-seed": ({"augment": HALF_AUGMENT}, 1000, 1.0, 0.5),
    "half05": ({"augment": HALF_AUGMENT}, 0, 0.5, 0.5),
}


def downsample(split: Split, scale: float) -> Split:
    """The split's images shrunk by `scale` (1/2: each 2x2 block averaged), uint8 as before."""
    if scale == 1:
        return split
    k = round(1 / scale)
    n, h, w, c = split.x.shape
    x = split.x.reshape(n, h // k, k, w // k, k, c).astype(np.float32).mean(axis=(2, 4))
    return Split(np.round(x).astype(np.uint8), split.y)


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--space", default=str(ROOT / "spaces" / "tiny.py"))
    p.add_argument("--budget", type=int, default=50_000)
    p.add_argument("--study", default=str(ROOT / "benchmarks" / "state" / "proxy_fidelity" / "results.json"),
                   help="proxy_fidelity.py's results: the candidates and their long training")
    p.add_argument("--work", default=str(ROOT / "runs" / "rung0_variants"))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--report", action="store_true", help="only tabulate what is finished")
    args = p.parse_args()

    if not Path(args.study).is_file():
        raise SystemExit(f"no proxy-fidelity results at {args.study} (run proxy_fidelity.py first, or pass --study)")
    study = {int(k): v for k, v in json.loads(Path(args.study).read_text()).items() if v.get("long") is not None}
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    state_path = work / "results.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    space = load_space(args.space)
    config = SearchConfig(args.space, Budget(args.budget), seed=args.seed)
    ladder = config.ladder

    if not args.report:
        execution = choose(args.device)
        data = load(args.data)
        mean, std = channel_stats(data.train)
        train_split, val_split = holdout(data.train, config.val_fraction, seed=args.seed)  # as the study's
        base = PROXY.with_(batch_size=default_batch_size(execution.device))
        for name in args.variants:
            changes, offset, epochs, scale = VARIANTS[name]
            at = ladder if epochs is None else replace(ladder, top_epochs=epochs * ladder.eta ** (ladder.rungs - 1))
            trainer = Trainer(downsample(train_split, scale), downsample(val_split, scale), base.with_(**changes),
                              at, mean, std, execution, 1.0)
            done = state.setdefault(name, {})
            for i, e in sorted(study.items()):
                if str(i) in done:
                    continue
                c = e["candidate"]
                record = trainer.run(Job(i, 0, c, space.resolve(c), seed=args.seed + i + offset)).record
                done[str(i)] = {"score": record.score, "seconds": record.seconds}
                write_json(state_path, state)
                print(f"{name}: candidate {i} rung 0 {record.score} in {record.seconds:.0f}s", flush=True)

    long = {i: e["long"] for i, e in study.items()}
    rows = []

    def row(label, scores, seconds):
        ids = sorted(scores)
        if len(ids) < 3:
            return
        xs, ys = [scores[i] for i in ids], [long[i] for i in ids]
        rows.append([label, len(ids), f"{kendalltau(xs, ys)[0]:.3f}", f"{spearmanr(xs, ys)[0]:.3f}",
                     f"{sum(seconds) / len(seconds):.0f} s"])

    for k in (0, 1):
        row(f"study's rung {k} ({ladder.epochs(k):g} epochs)", {i: e["rungs"][str(k)]["score"] for i, e in study.items()},
            [e["rungs"][str(k)]["seconds"] for e in study.values()])
    for name in VARIANTS:
        done = {int(i): r["score"] for i, r in state.get(name, {}).items() if r["score"] is not None}
        row(f"rung 0, {name}", done, [r["seconds"] for r in state.get(name, {}).values()])
    agreement = []  # a variant against itself with other seeds: how much of its ranking is the seed's
    for a, b in (("study", "seed"), ("study", "seed2"), ("seed", "seed2"), ("half1", "half1-seed")):
        runs = {name: {int(i): r["score"] for i, r in state.get(name, {}).items()} for name in (a, b) if name != "study"}
        if a == "study":
            runs[a] = {i: e["rungs"]["0"]["score"] for i, e in study.items()}
        ids = sorted(set(runs[a]) & set(runs.get(b, {})))
        if len(ids) >= 3:
            tau = kendalltau([runs[a][i] for i in ids], [runs[b][i] for i in ids])[0]
            agreement.append(f"{a} against {b}: {tau:.3f}")
    seeds = ("\n\nThe same rung against itself with other seeds, Kendall tau: " + "; ".join(agreement) + "."
             if agreement else "")
    publish("The first rung, other ways", f"The {len(study)} candidates of the proxy-fidelity study, rung 0 "
            f"({ladder.epochs(0):g} epochs) trained again per variant, against their long training, on the same "
            "held-out validation split.\n\n"
            + table(["signal", "candidates", "Kendall tau", "Spearman rho", "cost per candidate"], rows) + seeds,
            args.docs)


if __name__ == "__main__":
    main()
