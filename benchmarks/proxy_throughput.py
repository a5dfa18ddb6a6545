"""(a) Proxy evaluations per GPU-minute for each space file at its default proxy settings.

Runs a real random search of --trials candidates per space (within the space's usual budget) and
divides by the wall time, which includes building, training and scoring each candidate."""
import tempfile
import time

from common import parser, publish, table

from nas.budget import parse_budget
from nas.data import load
from nas.search import SearchConfig, run_search
from nas.spaces import builtin
from nas.train import PROXY

BUDGETS = {"tiny": "50k", "gated": "3M", "resnet": "5M"}


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--spaces", nargs="+", default=list(BUDGETS))
    args = p.parse_args()
    data = load(args.data)
    rows = []
    for name in args.spaces:
        space = builtin(name)
        recipe = PROXY
        config = SearchConfig(f"spaces/{name}.py", parse_budget(BUDGETS[name]), strategy="random", trials=args.trials,
                              recipe=recipe, seed=args.seed, data_source=args.data, device=args.device)
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            winner = run_search(space, config, data, out)
            seconds = time.perf_counter() - start
        rows.append([name, BUDGETS[name], args.trials, recipe.epochs, f"{seconds:.1f}",
                     f"{60 * args.trials / seconds:.1f}", f"{100 * winner['proxy_score']:.2f}%"])
    publish("Proxy throughput", table(["space", "budget", "trials", "proxy epochs", "seconds", "evals per minute",
                                       "best proxy acc"], rows), args.docs)


if __name__ == "__main__":
    main()
