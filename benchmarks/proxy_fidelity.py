"""Proxy fidelity: rank agreement (Kendall tau, Spearman rho) between the proxy score and the
full retrain's test accuracy on >= 12 feasible candidates of spaces/tiny.py, for the proxy as
it is and for the training-free NASWOT score (the --prescreen signal)."""
import random

from common import parser, publish, table
from scipy.stats import kendalltau, spearmanr

from nas.budget import Budget, estimate
from nas.data import Loader, channel_stats, holdout, load, subset
from nas.prescreen import naswot
from nas.spaces import builtin
from nas.train import FULL, PROXY, train


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--candidates", type=int, default=12)
    p.add_argument("--proxy-epochs", type=int, default=PROXY.epochs)
    p.add_argument("--full-epochs", type=int, default=60)
    p.add_argument("--budget", type=int, default=50_000)
    args = p.parse_args()
    data = load(args.data)
    mean, std = channel_stats(data.train)
    train_split, val_split = holdout(data.train, 0.1, seed=args.seed)
    batch = next(iter(Loader(subset(train_split, 64 / len(train_split), args.seed), mean, std, 64, "cpu")))[0]
    space, rng, budget = builtin("tiny"), random.Random(args.seed), Budget(args.budget)
    candidates = []
    while len(candidates) < args.candidates:
        c = space.sample(rng)
        if budget.fits(estimate(space.resolve(c))) and c not in candidates:
            candidates.append(c)
    rows, proxy, zero_cost, full = [], [], [], []
    for i, c in enumerate(candidates):
        arch = space.resolve(c)
        zero_cost.append(naswot(arch.build(), batch))
        proxy.append(train(arch.build(), train_split, val_split, PROXY.with_(epochs=args.proxy_epochs), mean, std,
                           device=args.device, seed=args.seed).history[-1].test_acc)
        full.append(train(arch.build(), data.train, data.test, FULL.with_(epochs=args.full_epochs), mean, std,
                          device=args.device, seed=args.seed).history[-1].test_acc)
        rows.append([i + 1, arch.summary(), f"{estimate(arch).params:,}", f"{zero_cost[-1]:.1f}",
                     f"{100 * proxy[-1]:.2f}%", f"{100 * full[-1]:.2f}%"])
        print(rows[-1], flush=True)
    summary = table(["signal", "Kendall tau", "Spearman rho"], [
        [f"proxy ({args.proxy_epochs} epochs, held-out split)", f"{kendalltau(proxy, full)[0]:.3f}", f"{spearmanr(proxy, full)[0]:.3f}"],
        ["NASWOT (training-free)", f"{kendalltau(zero_cost, full)[0]:.3f}", f"{spearmanr(zero_cost, full)[0]:.3f}"],
        ["params", f"{kendalltau([estimate(space.resolve(c)).params for c in candidates], full)[0]:.3f}",
         f"{spearmanr([estimate(space.resolve(c)).params for c in candidates], full)[0]:.3f}"],
    ])
    publish("Proxy fidelity", summary + f"\n\nAgainst the test accuracy after {args.full_epochs} epochs of full "
            "training (target tau >= 0.6).\n\n" + table(["#", "architecture", "params", "NASWOT", "proxy", "full"], rows),
            args.docs)


if __name__ == "__main__":
    main()
