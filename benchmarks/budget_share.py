"""Budget-aware sampling: the same timed search of spaces/tiny.py, once training only candidates
that use at least the default share of the budget and once sampling the whole feasible space.

Both run `nas search` with the same --time, seed, strategy and ladder into --work/seed{S}-{time}/,
one after the other, or with --parallel side by side with one thread each (on a 2-core CPU: the
same machine for both, in half the wall time). The winners are compared on their score at the
ladder's last rung (the same training length and validation split for both), with how many
candidates each trained. A network's training seed follows from the search's seed and the network
(nas.search.runner.training_seed), so the networks both searches of a pair train score alike in both:
the pair differs in which networks it trains, not in rung 0's noise on the same ones (the report counts
the shared networks and checks their scores agree). Pairs made before that change (the folders under
state/budget_share) are independent draws. Every pair stays in --work, and `--report` tabulates all of
them with the per-seed difference."""
import json
import statistics
import subprocess
import sys
from pathlib import Path

from common import ROOT, parser, publish, table

from nas.search.runner import SearchConfig

DEFAULT_SHARE = SearchConfig.__dataclass_fields__["min_share"].default
SHARES = (DEFAULT_SHARE, 0.0)


def run_pair(args, pair: Path) -> None:
    runs = []
    for share in SHARES:
        cmd = [sys.executable, "-m", "nas", "search", args.space, "--budget", args.budget, "--time", args.time,
               "--strategy", args.strategy, "--seed", str(args.seed), "--min-share", str(share), "--data", args.data,
               "--out", str(pair / f"share-{share:g}")] + (["--device", args.device] if args.device else []) \
            + (["--threads", "1"] if args.parallel else [])
        runs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL))
        if not args.parallel:
            runs[-1].wait()
    for run in runs:
        if run.wait() != 0:
            raise SystemExit(f"{run.args} failed")


def summary(out: Path) -> dict:
    """What one finished search found: its winner and how much it trained."""
    winner = json.loads((out / "winner.json").read_text())
    jobs = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines() if line.strip()]
    first = [j for j in jobs if j["rung"] == 0]
    return {"candidates": len(first),
            "per_rung": [sum(j["rung"] == k for j in jobs) for k in range(winner["ladder"]["rungs"])],
            "mean_params": sum(j["params"] for j in first) / max(1, len(first)),
            "params": winner["params"], "rung": winner["proxy_rung"], "score": winner["proxy_score"],
            "summary": winner["summary"]}


def below_share(out: Path, share: float) -> dict:
    """What a whole-space search spent on candidates under `share` of its params budget, and how far they got."""
    winner = json.loads((out / "winner.json").read_text())
    budget = winner["budget"]["max_params"]
    jobs = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines() if line.strip()]
    small = [j for j in jobs if j["params"] < share * budget]
    rung0 = sorted((j for j in jobs if j["rung"] == 0 and j["score"] is not None), key=lambda j: -j["score"])
    top = rung0[:max(1, len(rung0) // 4)]
    return {"candidates": sum(j["rung"] == 0 for j in small),
            "seconds": sum(j["seconds"] for j in small), "all_seconds": sum(j["seconds"] for j in jobs),
            "promoted": [sum(j["rung"] == k for j in small) for k in range(1, winner["ladder"]["rungs"])],
            "top_small": sum(j["params"] < share * budget for j in top), "top": len(top),
            "won": winner["params"] < share * budget}


def shared(default: Path, whole: Path) -> tuple[int, int]:
    """How many networks both searches trained on rung 0, and how many of them scored the same in both."""
    def rung0(out: Path) -> dict[str, float]:
        jobs = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines() if line.strip()]
        return {j["summary"]: j["score"] for j in jobs if j["rung"] == 0}
    a, b = rung0(default), rung0(whole)
    both = a.keys() & b.keys()
    return len(both), sum(a[k] == b[k] for k in both)


def pairs(work: Path) -> list[tuple[str, dict, dict]]:
    """(name, default's summary, whole space's summary) of every finished pair under `work`."""
    found = []
    if not work.is_dir():
        return found
    for pair in sorted(p for p in work.iterdir() if p.is_dir()):
        outs = [pair / f"share-{share:g}" for share in SHARES]
        if all((out / "winner.json").exists() for out in outs):
            found.append((pair.name, *map(summary, outs)))
    return found


def report(work: Path, args) -> None:
    rows, gaps = [], []
    for name, default, whole in pairs(work):
        for share, s in zip(SHARES, (default, whole)):
            rows.append([name, f"{share:g}" + (" (default)" if share == DEFAULT_SHARE else ""), s["candidates"],
                         ", ".join(map(str, s["per_rung"])), f"{s['mean_params']:,.0f}", f"{s['params']:,}",
                         s["rung"], f"{100 * s['score']:.2f}%", s["summary"]])
        same_rung = default["rung"] == whole["rung"]
        gaps.append(100 * (default["score"] - whole["score"]) if same_rung else None)
    if not rows:
        raise SystemExit(f"no finished pair of searches under {work}")
    scored = [g for g in gaps if g is not None]
    verdict = (f"Default minus whole space, per pair (points, winners on the same rung): "
               f"{', '.join('-' if g is None else f'{g:+.2f}' for g in gaps)}; the default won {sum(g > 0 for g in scored)} "
               f"of {len(scored)}" + (f", median {statistics.median(scored):+.2f}" if scored else "") + ".")
    spent = []
    for name, *_ in pairs(work):
        b = below_share(work / name / "share-0", DEFAULT_SHARE)
        both, alike = shared(work / name / f"share-{DEFAULT_SHARE:g}", work / name / "share-0")
        spent.append([name, b["candidates"], f"{b['seconds']:,.0f} s ({100 * b['seconds'] / b['all_seconds']:.0f}%)",
                      ", ".join(map(str, b["promoted"])), f"{b['top_small']} of {b['top']}", "yes" if b["won"] else "no", f"{both} ({alike})"])
    publish("Budget-aware sampling", f"`nas search {args.space} --budget {args.budget} --strategy {args.strategy}`, "
            "each pair with the same --time and --seed (the folder's name), with and without the minimum share of "
            "the budget. The winner's score is at the ladder's last rung, on the held-out validation split.\n\n"
            + table(["pair", "--min-share", "candidates", "jobs per rung", "mean params trained", "winner params",
                     "winner rung", "winner score", "winner"], rows) + "\n\n" + verdict
            + f"\n\nWhat each whole-space search spent on candidates under the default's share ({DEFAULT_SHARE:g} of the "
            "budget), which the default never trains:\n\n"
            + table(["pair", "candidates under the share", "training time on them", "of them promoted to rungs 1, 2, ...",
                     "under the share in rung 0's top quarter", "won", "networks both trained (same rung-0 score)"], spent),
            args.docs)


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--space", default="spaces/tiny.py")
    p.add_argument("--budget", default="50000")
    p.add_argument("--time", default="20m")
    p.add_argument("--strategy", default="evolution")
    p.add_argument("--work", default=str(ROOT / "runs" / "budget_share"),
                   help="each seed's pair goes in WORK/seed{S}-{time}/")
    p.add_argument("--parallel", action="store_true", help="run both at once, one thread each")
    p.add_argument("--report", action="store_true", help="only tabulate the finished pairs under --work")
    args = p.parse_args()
    work = Path(args.work).resolve()  # the searches run from the project's root
    if not args.report:
        run_pair(args, work / f"seed{args.seed}-{args.time}")
    report(work, args)


if __name__ == "__main__":
    main()
