"""Trials in parallel: candidates per hour of `nas search --workers N` against the default single
process, on the same candidates at the same fidelity.

Both run `nas search` (random strategy, so the candidates do not depend on the order results
arrive in; one rung of --epochs, the default ladder's first) with the same --trials and seed,
one after the other, into --work; each is timed from the command's start to its end (loading
the data and starting the cluster included). With --repeats the pair runs again, alternating, and
the median is quoted."""
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, parser, publish, table


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--space", default="spaces/tiny.py")
    p.add_argument("--budget", default="50000")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", default="0.25", help="the one rung's epochs (default: the default ladder's rung 0)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--work", default=str(ROOT / "runs" / "parallel_workers"))
    args = p.parse_args()
    seconds = {1: [], args.workers: []}
    candidates = {}
    for repeat in range(args.repeats):
        for workers in seconds:
            out = Path(args.work) / f"workers-{workers}-{repeat}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            cmd = [sys.executable, "-m", "nas", "search", args.space, "--budget", args.budget, "--strategy", "random",
                   "--trials", str(args.trials), "--rungs", "1", "--proxy-epochs", args.epochs, "--seed",
                   str(args.seed), "--data", args.data, "--out", str(out), "--workers", str(workers)] \
                + (["--device", args.device] if args.device else [])
            t0 = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
            seconds[workers].append(time.perf_counter() - t0)
            jobs = [json.loads(l) for l in (out / "trials.jsonl").read_text().splitlines()]
            candidates[workers] = (sorted(json.dumps(j["candidate"], sort_keys=True) for j in jobs),
                                   [j["seconds"] for j in jobs], [j["score"] for j in jobs])
            print(f"workers {workers}, repeat {repeat}: {seconds[workers][-1]:.1f}s", flush=True)
    same = candidates[1][0] == candidates[args.workers][0]
    base = statistics.median(seconds[1])
    rows = []
    for workers, runs in seconds.items():
        wall = statistics.median(runs)
        jobs = candidates[workers][1]
        rows.append([workers, f"{wall:.0f}", f"{3600 * args.trials / wall:.0f}", f"{statistics.median(jobs):.1f}",
                     f"{base / wall:.2f}x"])
    publish("Trials in parallel on Dask workers (issue 12)",
            f"`nas search {args.space} --budget {args.budget} --strategy random --trials {args.trials} --rungs 1 "
            f"--proxy-epochs {args.epochs} --seed {args.seed} --workers N` on the offline copy; wall time from the "
            f"command's start to its end, median of {args.repeats}. "
            f"{'The same' if same else 'NOT the same'} {args.trials} candidates in both.\n\n"
            + table(["--workers", "wall s", "candidates per hour", "median job s", "candidates per hour vs 1"], rows),
            args.docs)


if __name__ == "__main__":
    main()
