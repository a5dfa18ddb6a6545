"""Budget-aware sampling: the same timed search of spaces/tiny.py, once training only candidates
that use at least the default share of the budget and once sampling the whole feasible space.

Both run `nas search` with the same --time, seed, strategy and ladder into --work, one after the
other, or with --parallel side by side with one thread each (on a 2-core CPU: the same machine
for both, in half the wall time). The winners are compared on their score at the ladder's last
rung (the same training length and validation split for both), with how many candidates each
trained."""
import json
import subprocess
import sys
from pathlib import Path

from common import ROOT, parser, publish, table

from nas.search.runner import SearchConfig


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--space", default="spaces/tiny.py")
    p.add_argument("--budget", default="50000")
    p.add_argument("--time", default="20m")
    p.add_argument("--strategy", default="evolution")
    p.add_argument("--work", default=str(ROOT / "runs" / "budget_share"))
    p.add_argument("--parallel", action="store_true", help="run both at once, one thread each")
    args = p.parse_args()
    default_share = SearchConfig.__dataclass_fields__["min_share"].default
    shares = (default_share, 0.0)
    runs = []
    for share in shares:
        out = Path(args.work) / f"share-{share:g}"
        cmd = [sys.executable, "-m", "nas", "search", args.space, "--budget", args.budget, "--time", args.time,
               "--strategy", args.strategy, "--seed", str(args.seed), "--min-share", str(share), "--data", args.data,
               "--out", str(out)] + (["--device", args.device] if args.device else []) \
            + (["--threads", "1"] if args.parallel else [])
        runs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL))
        if not args.parallel:
            runs[-1].wait()
    for run in runs:
        if run.wait() != 0:
            raise SystemExit(f"{run.args} failed")
    rows = []
    for share in shares:
        out = Path(args.work) / f"share-{share:g}"
        winner = json.loads((out / "winner.json").read_text())
        jobs = [json.loads(l) for l in (out / "trials.jsonl").read_text().splitlines()]
        rungs = winner["ladder"]["rungs"]
        rows.append([f"{share:g}" + (" (default)" if share == default_share else ""),
                     sum(j["rung"] == 0 for j in jobs), ", ".join(str(sum(j["rung"] == k for j in jobs)) for k in range(rungs)),
                     f"{sum(j['params'] for j in jobs if j['rung'] == 0) / max(1, sum(j['rung'] == 0 for j in jobs)):,.0f}",
                     f"{winner['params']:,}", winner["proxy_rung"], f"{100 * winner['proxy_score']:.2f}%", winner["summary"]])
    publish("Budget-aware sampling", f"`nas search {args.space} --budget {args.budget} --time {args.time} --strategy "
            f"{args.strategy} --seed {args.seed}`{' --threads 1, both at once' if args.parallel else ''}, with and "
            "without the minimum share of the budget. The winner's "
            "score is at the ladder's last rung, on the held-out validation split.\n\n"
            + table(["--min-share", "candidates", "jobs per rung", "mean params trained", "winner params",
                     "winner rung", "winner score", "winner"], rows), args.docs)


if __name__ == "__main__":
    main()
