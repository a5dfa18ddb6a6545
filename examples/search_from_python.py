"""The whole pipeline from Python instead of the command line: a space of your own, what a
budget leaves of it, a short search, a retrain and the frozen code.

    python examples/search_from_python.py --data PATH/cifar10.npz --out runs/example
"""
import argparse

from nas.budget import Budget, estimate
from nas.data import load
from nas.records import Winner
from nas.retrain import run_retrain
from nas.search import SearchConfig, run_search
from nas.spaces import Head, Space, Stage, Stem, choice, irange
from nas.survey import survey
from nas.train import FULL, PROXY

space = Space(
    name="example",
    stem=Stem(width=choice("stem", [16, 24])),
    stages=[
        Stage(choice("b1", ["mixer", "residual"]), width=choice("w1", [24, 32]), depth=irange("d1", 1, 2), kernel=5),
        Stage("mbconv", width=choice("w2", [48, 64]), depth=irange("d2", 1, 3), downsample="stride",
              expansion=choice("e2", [2, 3])),
    ],
    head=Head(hidden=choice("fc", [0, 64])),
)

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="cifar10")
    p.add_argument("--out", default="runs/example")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--epochs", type=int, default=30)
    args = p.parse_args()

    budget = Budget(max_params=50_000)
    s = survey(space, budget)
    print(f"{s.feasible} of {s.size} candidates fit {budget.describe()}")
    print("largest that fits:", space.resolve(s.largest.candidate).summary(), estimate(space.resolve(s.largest.candidate)))

    data = load(args.data)
    config = SearchConfig(__file__, budget, strategy="evolution", trials=args.trials, recipe=PROXY, data_source=args.data)
    winner = run_search(space, config, data, args.out)
    print("winner:", winner.summary, f"proxy {100 * winner.proxy_score:.1f}%")

    result = run_retrain(Winner.load(f"{args.out}/winner.json", check_space=False), data, f"{args.out}/retrain",
                         FULL.with_(epochs=args.epochs))
    print(f"test accuracy {100 * result.final_test_acc:.2f}%; frozen code in {args.out}/retrain/model.py")
