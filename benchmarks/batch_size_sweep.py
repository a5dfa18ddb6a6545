"""(c) Epoch time of a tiny (<= 50k params) candidate at batch sizes 256 to 2048."""
import random

from common import parser, publish, sync, table

from nas.budget import Budget, estimate
from nas.data import channel_stats, load
from nas.spaces import builtin
from nas.train import PROXY, train


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    p.add_argument("--epochs", type=int, default=3, help="epochs per batch size; the first is warm-up")
    args = p.parse_args()
    data = load(args.data)
    mean, std = channel_stats(data.train)
    space, rng = builtin("tiny"), random.Random(args.seed)
    while True:
        candidate = space.sample(rng)
        arch = space.resolve(candidate)
        if Budget(50_000).fits(estimate(arch)) and estimate(arch).params > 35_000:
            break
    rows = []
    for bs in args.batch_sizes:
        model = arch.build()
        sync(args.device)
        history = train(model, data.train, data.test, PROXY.with_(epochs=args.epochs, batch_size=bs),
                        mean, std, device=args.device, seed=args.seed).history
        steady = [h.seconds for h in history[1:]] or [history[0].seconds]
        rows.append([bs, f"{sum(steady) / len(steady):.2f}", f"{len(data.train) / (sum(steady) / len(steady)):,.0f}",
                     f"{100 * history[-1].test_acc:.2f}%"])
    publish("Epoch time against batch size",
            f"Candidate: `{arch.summary()}` ({estimate(arch).params:,} params, {estimate(arch).macs:,} MACs).\n\n"
            + table(["batch size", "seconds per epoch (incl. eval)", "images per second", f"test acc after {args.epochs} epochs"],
                    rows), args.docs)


if __name__ == "__main__":
    main()
