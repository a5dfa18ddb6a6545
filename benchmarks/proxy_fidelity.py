"""Proxy fidelity: how well each rung of the search's ladder ranks candidates, against a long training.

For --candidates feasible candidates of spaces/tiny.py (sampled as the search samples them: within
the budget, using at least the default share of it), every rung of the default ladder is trained
exactly as the search trains it (nas.search.jobs.Trainer: rung k goes on from rung k-1's
weights), and each candidate is also trained --long-epochs epochs on --long-images images of the
training split. Everything is scored on the same held-out validation split; the test split is
never read. Kendall tau and Spearman rho of each rung's score against the long training's, beside
two free baselines: the parameter count and NASWOT (training-free).

It takes hours on a CPU: run it in the background. Every finished job is kept in --work
(results.json, per-epoch checkpoints of the long trainings), so the same command resumes; the
rungs of all candidates are trained first, then the long trainings, and `--report` prints what
is finished so far.
"""
import json
import random
from pathlib import Path

import torch
from common import ROOT, parser, publish, table
from scipy.stats import kendalltau, spearmanr

from nas.budget import Budget, estimate
from nas.data import Loader, channel_stats, holdout, load, subset
from nas.execution import choose, default_batch_size
from nas.files import save_torch, write_json
from nas.prescreen import naswot
from nas.search.jobs import Job, Trainer
from nas.search.runner import SearchConfig
from nas.spaces import load_space
from nas.train import PROXY, train


def sample(space, budget, share, n, seed):
    rng, found = random.Random(seed), []
    while len(found) < n:
        c = space.sample(rng)
        cost = estimate(space.resolve(c))
        if budget.fits(cost) and budget.use(cost) >= share and c not in found:
            found.append(c)
    return found


def correlations(xs, ys):
    return kendalltau(xs, ys)[0], spearmanr(xs, ys)[0]


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--space", default=str(ROOT / "spaces" / "tiny.py"))
    p.add_argument("--budget", type=int, default=50_000)
    p.add_argument("--candidates", type=int, default=12)
    p.add_argument("--long-epochs", type=int, default=30)
    p.add_argument("--long-images", type=int, default=20_000, help="of the training split (0: all of it)")
    p.add_argument("--work", default=str(ROOT / "runs" / "proxy_fidelity"))
    p.add_argument("--report", action="store_true", help="only print (and with --docs publish) what is done")
    args = p.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    state_path = work / "results.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    space = load_space(args.space)
    budget = Budget(args.budget)
    config = SearchConfig(args.space, budget, seed=args.seed)
    ladder, share = config.ladder, config.min_share
    execution = choose(args.device)
    recipe = PROXY.with_(batch_size=default_batch_size(execution.device))
    data = load(args.data)
    mean, std = channel_stats(data.train)
    train_split, val_split = holdout(data.train, config.val_fraction, seed=args.seed)
    long_split = subset(train_split, args.long_images / len(train_split), seed=args.seed) if args.long_images else train_split
    candidates = sample(space, budget, share, args.candidates, args.seed)
    images = next(iter(Loader(subset(train_split, 64 / len(train_split), args.seed), mean, std, 64, "cpu")))[0]
    trainer = Trainer(train_split, val_split, recipe, ladder, mean, std, execution, 1.0)

    def save():
        write_json(state_path, state)

    def entry(i, c):
        arch = space.resolve(c)
        return state.setdefault(str(i), {"candidate": c, "summary": arch.summary(), "params": estimate(arch).params,
                                         "rungs": {}, "long": None})

    if not args.report:
        for i, c in enumerate(candidates, 1):  # every rung of every candidate first (the cheap part)
            e = entry(i, c)
            if e.get("naswot") is None:
                e["naswot"] = naswot(space.build(c), images)
                save()
            for rung in range(ladder.rungs):
                if str(rung) in e["rungs"]:
                    continue
                below = work / "snapshots" / f"trial-{i}-rung-{rung - 1}.pt"
                start = torch.load(below, map_location="cpu", weights_only=False) if below.exists() else None
                result = trainer.run(Job(i, rung, c, space.resolve(c), seed=args.seed + i, start=start))
                record = result.record
                if result.snapshot is not None:
                    save_torch(work / "snapshots" / f"trial-{i}-rung-{rung}.pt", result.snapshot)
                e["rungs"][str(rung)] = {"score": record.score, "seconds": record.seconds}
                save()
                below.unlink(missing_ok=True)
                print(f"candidate {i} rung {rung}: {record.score} in {record.seconds:.0f}s", flush=True)
        for i, c in enumerate(candidates, 1):  # then the long trainings, checkpointed every epoch
            e = entry(i, c)
            if e["long"] is not None:
                continue
            ckpt_path = work / f"long-{i}.pt"
            torch.manual_seed(args.seed + i)
            model, start, opt_state = space.build(c), 0, None
            if ckpt_path.exists():
                saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)
                model.load_state_dict(saved["model"])
                start, opt_state = saved["epoch"], saved["optimizer"]

            def on_checkpoint(epoch, model, optimizer, path=ckpt_path):
                save_torch(path, {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict()})
                print(f"candidate {i} long training: epoch {epoch}/{args.long_epochs}", flush=True)

            result = train(model, long_split, val_split, recipe.with_(epochs=args.long_epochs), mean, std,
                           execution=execution, seed=args.seed + i, start_epoch=start, optimizer_state=opt_state,
                           on_checkpoint=on_checkpoint)
            e["long"] = result.history[-1].test_acc
            save()
            ckpt_path.unlink(missing_ok=True)

    done = [e for e in (state.get(str(i)) for i in range(1, args.candidates + 1)) if e and e.get("long") is not None]
    rows = [[i + 1, e["summary"], f"{e['params']:,}", f"{e['naswot']:.1f}"]
            + [f"{100 * e['rungs'][str(k)]['score']:.2f}%" for k in range(ladder.rungs)] + [f"{100 * e['long']:.2f}%"]
            for i, e in enumerate(done)]
    long = [e["long"] for e in done]
    signals = [("parameter count (free)", [e["params"] for e in done]),
               ("NASWOT (free, training-free)", [e["naswot"] for e in done])]
    signals += [(f"rung {k}: {ladder.epochs(k):g} epochs", [e["rungs"][str(k)]["score"] for e in done])
                for k in range(ladder.rungs)]
    summary = table(["signal", "Kendall tau", "Spearman rho", "cost per candidate"],
                    [[name, *(f"{v:.3f}" for v in correlations(xs, long)),
                      "-" if name.startswith(("param", "NASWOT")) else
                      f"{sum(e['rungs'][name.split(':')[0].split()[1]]['seconds'] for e in done) / len(done):.0f} s"]
                     for name, xs in signals]) if len(done) >= 3 else "(fewer than 3 candidates finished)"
    publish("Proxy fidelity (each rung of the ladder)",
            f"{len(done)} candidates of {args.space} within {args.budget:,} parameters (using "
            f"{100 * share:.0f}%+ of it), against {args.long_epochs} epochs on "
            f"{len(long_split):,} training images, all scored on the same held-out {len(val_split):,} validation "
            f"images. A rung's cost is its own job (promoted jobs go on from the rung below).\n\n" + summary + "\n\n"
            + table(["#", "architecture", "params", "NASWOT", *(f"rung {k}" for k in range(ladder.rungs)), "long"], rows),
            args.docs)


if __name__ == "__main__":
    main()
