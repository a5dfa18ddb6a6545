"""Which cheap signal ranks like the ladder's higher rungs, on every candidate of finished searches.

proxy_fidelity.py measures the rungs against a long training on 12 candidates; this uses the
hundreds of candidates that real `nas search` runs trained (by default the searches of
budget_share.py). For each search's candidates that reached rung 1 (or rung 2), it gives the
Kendall tau and Spearman rho between their score there and three signals known before rung 1
trains: the parameter count, the NASWOT score at initialisation (computed here on a fixed batch
of training images, as `--prescreen` does) and their rung-0 score. Candidates reach rung 1 only
from rung 0's top quarter, which narrows rung 0's range among them and so flatters nothing but
can hide part of rung 0's signal; and a promoted job goes on from its rung-0 weights, so rung 0
and rung 1 share their first quarter epoch, which flatters rung 0 (params and NASWOT share
nothing with the rung). Per-search taus are pooled by their median, with the candidates counted;
a search needs 3 candidates on a rung to count for it."""
import json
import statistics
from pathlib import Path

from common import ROOT, parser, publish, table
from scipy.stats import kendalltau, spearmanr

from nas.data import Loader, channel_stats, holdout, load, subset
from nas.prescreen import naswot
from nas.spaces import load_space
from nas.spaces.space import candidate_key

SIGNALS = ("params", "NASWOT", "rung 0")


def searches(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("trials.jsonl") if (p.parent / "winner.json").exists())


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--searches", default=str(ROOT / "benchmarks" / "state" / "budget_share"),
                   help="a folder holding finished searches (any depth)")
    p.add_argument("--space", default=str(ROOT / "spaces" / "tiny.py"))
    args = p.parse_args()
    found = searches(Path(args.searches))
    if not found:
        raise SystemExit(f"no finished search (trials.jsonl + winner.json) under {args.searches}")
    data = load(args.data)
    train, _ = holdout(data.train, 0.1, 0)
    mean, std = channel_stats(train)
    images = next(iter(Loader(subset(train, 64 / len(train), 0), mean, std, 64, "cpu")))[0]  # as --prescreen
    space, scores = load_space(args.space), {}

    per = {(rung, s): [] for rung in (1, 2) for s in SIGNALS}
    counts = {1: 0, 2: 0}
    for out in found:
        jobs = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines() if line.strip()]
        by_trial = {}
        for j in jobs:
            if j["status"] == "ok":
                by_trial.setdefault(j["trial"], {})[j["rung"]] = j
        for rung in (1, 2):
            reached = [r for r in by_trial.values() if rung in r and 0 in r]
            if len(reached) < 3:
                continue
            counts[rung] += len(reached)
            target = [r[rung]["score"] for r in reached]
            for r in reached:
                key = candidate_key(r[0]["candidate"])
                if key not in scores:
                    scores[key] = naswot(space.build(r[0]["candidate"]), images)
            signal = {"params": [r[0]["params"] for r in reached],
                      "NASWOT": [scores[candidate_key(r[0]["candidate"])] for r in reached],
                      "rung 0": [r[0]["score"] for r in reached]}
            for s in SIGNALS:
                per[(rung, s)].append((kendalltau(signal[s], target)[0], spearmanr(signal[s], target)[0],
                                       len(reached)))
    rows = []
    for rung in (1, 2):
        for s in SIGNALS:
            got = [t for t in per[(rung, s)] if t[0] == t[0]]  # nan where a signal is constant
            if got:
                rows.append([f"rung {rung}", s, len(got), counts[rung], f"{statistics.median(t[0] for t in got):.3f}",
                             f"{statistics.median(t[1] for t in got):.3f}",
                             ", ".join(f"{t[0]:+.2f}" for t in got)])
    publish("Cheap signals against the higher rungs, on real searches (issue 11)",
            f"{len(found)} finished searches under `{Path(args.searches).relative_to(ROOT)}`; for each, the "
            "candidates that reached the rung, their score there against each signal (NASWOT on 64 training "
            "images at initialisation). Median over searches. A promoted job goes on from its rung-0 weights, so rung 0 "
            "shares its first quarter epoch with the rungs above it; params and NASWOT share nothing with them.\n\n"
            + table(["rung", "signal", "searches", "candidates", "median Kendall tau", "median Spearman rho",
                     "per-search tau"], rows), args.docs)


if __name__ == "__main__":
    main()
