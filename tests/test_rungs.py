"""Successive halving, the search's time limit and budget-aware sampling (synthetic data, CPU)."""
import json
import time

import pytest

import nas.search.jobs as job_module
import nas.search.runner as runner
from nas.budget import Budget, estimate
from nas.records import TrialRecord
from nas.search import SearchConfig, run_search
from nas.search.clock import parse_duration
from nas.search.rungs import Ladder, due_promotions
from nas.spaces.space import candidate_key
from nas.spaces import load_space
from nas.train import PROXY

from .conftest import run_nas
from .synthetic import make_dataset, write_npz, write_space

RECIPE = PROXY.with_(epochs=1, batch_size=64)


def _jobs(out):
    return [json.loads(l) for l in (out / "trials.jsonl").read_text().splitlines()]


def _strip(jobs):
    return [{k: v for k, v in r.items() if k not in ("seconds", "elapsed")} for r in jobs]


def test_the_ladder_trains_eta_times_longer_per_rung_and_continues_from_the_decay():
    ladder = Ladder(top_epochs=9, rungs=4, eta=3)
    assert [ladder.epochs(k) for k in range(4)] == pytest.approx([1 / 3, 1, 3, 9])
    spe = 100
    for k in range(3):
        here, above = ladder.schedule(k, PROXY, spe), ladder.schedule(k + 1, PROXY, spe)
        assert here.warm == above.warm  # the same warm-up on every rung: one run, stopped and continued
        assert ladder.resume_step(k, PROXY, spe) == here.decay_from < above.decay_from < above.total
        peak = 1.0
        assert here.lr(here.decay_from - 1, peak) == peak == above.lr(here.decay_from, peak)  # flat until the decay
        assert here.lr(here.total - 1, peak) < 0.1  # each rung ends decayed, then is scored
    assert ladder.resume_step(3, PROXY, spe) is None
    one = Ladder(top_epochs=8, rungs=1)  # one rung: the recipe's own warm-up and cosine
    assert one.schedule(0, PROXY, spe).decay_from == one.schedule(0, PROXY, spe).warm


def _job(trial, rung, score):
    return TrialRecord.from_dict({"trial": trial, "rung": rung, "candidate": {"n": trial},
                                  "status": "ok" if score is not None else "failed", "score": score})


def test_promotion_takes_the_best_third_of_each_rung_and_never_a_failure():
    ladder = Ladder(top_epochs=9, rungs=3, eta=3)
    records = [_job(i, 0, s) for i, s in enumerate([0.5, 0.9, 0.7, 0.8, 0.2], 1)] + [_job(6, 0, None)]
    assert [(r.trial, k) for r, k in due_promotions(records, ladder)] == [(2, 1), (4, 1)]
    records.append(_job(2, 1, 0.95))
    assert [(r.trial, k) for r, k in due_promotions(records, ladder)] == [(4, 1)]  # rung 1 has 1 result: none up


def test_each_rung_holds_at_most_a_third_of_the_one_below():
    ladder = Ladder(top_epochs=9, rungs=2, eta=3)
    records = [_job(i, 0, s) for i, s in enumerate([0.5, 0.4, 0.3], 1)]
    records.append(_job(1, 1, 0.6))
    records.append(_job(4, 0, 0.9))  # a new best, but rung 1 is full
    assert due_promotions(records, ladder) == []
    records += [_job(i, 0, 0.1) for i in (5, 6)]  # 6 results: two places
    assert [(r.trial, k) for r, k in due_promotions(records, ladder)] == [(4, 1)]


def test_rungs_are_recorded_and_promotions_go_on_from_the_rungs_weights(tmp_path, monkeypatch):
    starts = []
    real = job_module.train

    def spy(model, *a, **k):
        starts.append(k["start_step"])
        return real(model, *a, **k)

    monkeypatch.setattr(job_module, "train", spy)
    space_file = write_space(tmp_path / "small.py")
    config = SearchConfig(str(space_file), Budget(6000), strategy="random", trials=9, rungs=3, eta=3,
                          recipe=PROXY.with_(epochs=3, batch_size=32), data_fraction=0.5)
    winner = run_search(load_space(space_file), config, make_dataset(512), tmp_path / "run")
    jobs = _jobs(tmp_path / "run")
    assert [sum(r["rung"] == k for r in jobs) for k in range(3)] == [9, 3, 1]
    for i, r in enumerate(jobs):
        assert r["epochs"] == pytest.approx(config.ladder.epochs(r["rung"]), abs=1e-4) and r["data_fraction"] == 0.5
        if r["rung"] > 0:  # promoted from among the best third of its rung's results at the time,
            below = [j for j in jobs[:i] if j["rung"] == r["rung"] - 1]  # into a place that was free
            best = sorted(j["score"] for j in below if j["status"] == "ok")[::-1][:len(below) // 3]
            assert next(j["score"] for j in below if j["trial"] == r["trial"]) in best
            assert sum(j["rung"] == r["rung"] for j in jobs[:i + 1]) <= len(below) // 3
    train_split = round(512 * 0.9 * 0.5)
    resume = config.ladder.resume_step(0, config.recipe, train_split // 32)
    assert [s for s, r in zip(starts, jobs) if r["rung"] == 1] == [resume] * 3 and resume > 0
    assert [s for s, r in zip(starts, jobs) if r["rung"] == 0] == [0] * 9
    assert winner.proxy_rung == 2 and winner.proxy_score == next(r["score"] for r in jobs if r["rung"] == 2)


def test_a_search_interrupted_mid_ladder_resumes_to_the_same_log(tmp_path, monkeypatch):
    space_file = write_space(tmp_path / "small.py")
    config = SearchConfig(str(space_file), Budget(6000), strategy="evolution", trials=9, rungs=3,
                          recipe=PROXY.with_(epochs=3, batch_size=32))
    data = make_dataset(512)
    run_search(load_space(space_file), config, data, tmp_path / "whole")
    whole = _jobs(tmp_path / "whole")
    promotion = next(i for i, r in enumerate(whole) if r["rung"] == 1)

    calls = {"n": 0}
    real = job_module.train

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == promotion + 1:  # killed while training the first promotion
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(job_module, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(load_space(space_file), config, data, tmp_path / "cut")
    assert len(_jobs(tmp_path / "cut")) == promotion
    calls["n"] = -10_000
    run_search(load_space(space_file), config, data, tmp_path / "cut")
    resumed = _jobs(tmp_path / "cut")
    assert _strip(resumed) == _strip(whole)  # the same jobs, in the same order, with the same scores
    assert calls["n"] == -10_000 + len(whole) - promotion  # and only the missing ones trained


def test_time_stops_the_search_within_its_budget_plus_one_job(tmp_path):
    LIMIT = 10.0  # seconds: room for a few jobs of under a second each, even on a loaded machine
    space_file = write_space(tmp_path / "small.py")
    config = SearchConfig(str(space_file), Budget(6000), strategy="random", time=LIMIT, rungs=2,
                          recipe=PROXY.with_(epochs=3, batch_size=32))
    t0 = time.monotonic()
    winner = run_search(load_space(space_file), config, make_dataset(512), tmp_path / "run")
    wall = time.monotonic() - t0
    jobs = _jobs(tmp_path / "run")
    longest = max(r["seconds"] for r in jobs)
    assert len(jobs) >= 3 and winner.search_seconds <= LIMIT + longest
    assert wall <= LIMIT + longest + 10  # + loading NNI and the data
    assert max(r["elapsed"] for r in jobs) <= LIMIT + longest
    clock = json.loads((tmp_path / "run" / "clock.json").read_text())
    assert clock["elapsed"] == pytest.approx(winner.search_seconds, abs=0.5)

    # the same command again: the time is spent, nothing more trains, and nothing is rewritten
    # (its clock does not count the second command's start-up against the search)
    files = {n: (tmp_path / "run" / n).read_bytes() for n in ("clock.json", "winner.json", "trials.jsonl")}
    again = run_search(load_space(space_file), config, make_dataset(512), tmp_path / "run")
    assert again.to_dict() == winner.to_dict()
    assert {n: (tmp_path / "run" / n).read_bytes() for n in files} == files


def test_a_strategy_still_drawing_at_the_deadline_does_not_hold_the_search_past_it(tmp_path, monkeypatch):
    # two candidates in all: once both are tried, random search with dedup draws on for
    # _duplicate_retry draws (here about a minute) before it gives up
    from nas.search import nni_adapter
    monkeypatch.setattr(nni_adapter._Random, "_duplicate_retry", 3_000_000)
    space_file = tmp_path / "two.py"
    space_file.write_text('''
from nas.spaces import Head, Space, Stage, Stem, choice
space = Space(name="two", stem=Stem(width=choice("stem", [8, 12])),
              stages=[Stage("conv", width=8, kernel=3)], head=Head(), num_classes=4)
''')
    LIMIT = 6.0
    config = SearchConfig(str(space_file), Budget(6000), strategy="random", time=LIMIT, rungs=1,
                          min_share=0.0, recipe=PROXY.with_(epochs=1, batch_size=32))
    t0 = time.monotonic()
    winner = run_search(load_space(space_file), config, make_dataset(128), tmp_path / "run")
    wall = time.monotonic() - t0
    longest = max(r["seconds"] for r in _jobs(tmp_path / "run"))
    assert winner.trials == 2
    assert winner.search_seconds <= LIMIT + longest + 1.0  # stopped at the deadline, closed at once
    assert wall <= LIMIT + longest + 10


def test_the_time_spent_before_the_search_began_counts_against_it(tmp_path):
    space_file = write_space(tmp_path / "small.py")
    config = SearchConfig(str(space_file), Budget(6000), strategy="random", trials=1, rungs=1, recipe=RECIPE,
                          started=time.monotonic() - 100)  # as if the command had read its data for 100 s
    winner = run_search(load_space(space_file), config, make_dataset(256), tmp_path / "run")
    assert 100 <= winner.search_seconds < 200
    assert json.loads((tmp_path / "run" / "clock.json").read_text())["elapsed"] >= 100


def test_the_end_of_a_timed_search_goes_to_new_candidates_not_to_promotions_that_cannot_come():
    # the resnet-5m search: 15 candidates on rung 0 (~92 s each), 3 promoted to rung 1 (~267 s),
    # 1,410 s left. A 16th candidate would bring a rung-1 and a rung-2 job (about 1,180 s); the
    # three no longer fit together, and the search used to stop there, 23 minutes early.
    from types import SimpleNamespace
    records = [SimpleNamespace(rung=0, seconds=92.0)] * 15 + [SimpleNamespace(rung=1, seconds=267.0)] * 3
    planner = runner.Planner(SimpleNamespace(records=records), Ladder(top_epochs=4, rungs=3, eta=4))
    assert planner.job_seconds(2) + planner.job_seconds(1) + planner.job_seconds(0) > 1410
    assert planner.admits_candidate(1410)
    assert planner.admits_candidate(92) and not planner.admits_candidate(91)


def test_a_job_that_overruns_the_time_is_stopped_and_not_recorded(tmp_path):
    space_file = write_space(tmp_path / "small.py")
    config = SearchConfig(str(space_file), Budget(6000), strategy="random", time=1.5, rungs=1,
                          recipe=PROXY.with_(epochs=60, batch_size=32))  # one job is far longer than the time
    t0 = time.monotonic()
    with pytest.raises(runner.SearchFailed, match="in the time given"):
        run_search(load_space(space_file), config, make_dataset(512), tmp_path / "run")
    assert time.monotonic() - t0 < 15
    assert not (tmp_path / "run" / "trials.jsonl").exists() or _jobs(tmp_path / "run") == []


@pytest.mark.parametrize("share", [0.6, 0.0])
def test_budget_aware_sampling_never_trains_below_the_share(tmp_path, trained_sizes, share):
    trained = trained_sizes
    space_file = write_space(tmp_path / "small.py")
    space = load_space(space_file)
    sizes = sorted(estimate(space.resolve(c)).params for c in space.enumerate())
    budget = Budget(sizes[-1])
    config = SearchConfig(str(space_file), budget, strategy="random", trials=12, rungs=1, recipe=RECIPE,
                          min_share=share)
    run_search(space, config, make_dataset(), tmp_path / "run")
    assert len(trained) == 12
    if share:
        assert min(trained) >= share * budget.max_params
    else:
        assert min(trained) < 0.6 * budget.max_params  # without it, small candidates are trained too


def test_durations_parse():
    assert [parse_duration(t) for t in ("90s", "45m", "2h", "1h30m", "120")] == [90, 2700, 7200, 5400, 120]
    for bad in ("soon", "1x", "-5m", "0"):
        with pytest.raises(Exception):
            parse_duration(bad)


@pytest.mark.parametrize("flag,value,says", [("--time", "soon", "not a duration"), ("--eta", "1", "2 or more"),
                                             ("--min-share", "1", "[0, 1)"), ("--rungs", "0", "positive")])
def test_bad_ladder_and_time_flags_are_one_line_before_anything_is_written(tmp_path, flag, value, says):
    space, data = write_space(tmp_path / "small.py"), write_npz(tmp_path / "d.npz")
    r = run_nas("search", space, "--budget", "6k", "--data", data, "--out", tmp_path / "run", flag, value)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_share_no_candidate_reaches_is_refused(tmp_path):
    space, data = write_space(tmp_path / "small.py"), write_npz(tmp_path / "d.npz")
    r = run_nas("search", space, "--budget", "1M", "--data", data, "--out", tmp_path / "run")
    assert r.returncode == 2 and "--min-share" in r.stderr and not (tmp_path / "run").exists()


@pytest.mark.parametrize("strategy", ["evolution", "tpe"])
def test_the_strategy_ends_up_with_the_score_of_the_highest_rung_each_candidate_reached(tmp_path, monkeypatch,
                                                                                        strategy):
    from nas.search.nni_adapter import Proposer
    told = {}  # candidate key -> the last score the strategy was given for it
    kept = {}  # candidate key -> the score the strategy itself holds (population or TPE history)
    # (a higher rung's score replaces the lower one's, even where it is lower)
    real_report, real_rescore = Proposer.report, Proposer.rescore

    def report(self, candidate, score):
        real_report(self, candidate, score)
        told[json.dumps(candidate, sort_keys=True)] = score

    def rescore(self, candidate, score):
        real_rescore(self, candidate, score)
        key = json.dumps(candidate, sort_keys=True)
        told[key] = score
        if strategy == "evolution":
            kept[key] = [i.y for i in self.strategy._population if i.x == candidate]
        else:
            model = self.answered[candidate_key(candidate)]
            kept[key] = [-self.strategy.tuner._history[k][i].loss for k, i in self.strategy._places[model]]

    monkeypatch.setattr(Proposer, "report", report)
    monkeypatch.setattr(Proposer, "rescore", rescore)
    space_file = write_space(tmp_path / "small.py")
    config = SearchConfig(str(space_file), Budget(6000), strategy=strategy, trials=9, rungs=3, eta=3,
                          recipe=PROXY.with_(epochs=3, batch_size=32))
    run_search(load_space(space_file), config, make_dataset(512), tmp_path / "run")
    jobs = _jobs(tmp_path / "run")
    promoted = {json.dumps(r["candidate"], sort_keys=True) for r in jobs if r["rung"] > 0}
    assert promoted and promoted <= set(kept)
    last = json.dumps(jobs[-1]["candidate"], sort_keys=True)  # the search may end on a promotion it never tells
    for key in promoted - {last}:  # every promotion was told, and the strategy holds that score
        best = max((r for r in jobs if json.dumps(r["candidate"], sort_keys=True) == key and r["status"] == "ok"),
                   key=lambda r: r["rung"])
        assert told[key] == best["score"]
        assert set(kept[key]) <= {best["score"]}  # (evolution's population may have aged the candidate out)
    assert any(kept[key] for key in promoted - {last})


def test_a_network_trains_alike_whenever_a_search_draws_it(tmp_path):
    # its jobs' seed follows from the search's seed and the network, not from when it was drawn: two
    # searches with the same seed that differ in their share score the networks they share alike
    space_file = write_space(tmp_path / "small.py")
    space = load_space(space_file)
    budget = Budget(max(estimate(space.resolve(c)).params for c in space.enumerate()))
    scores = []
    for share, trials in ((0.0, 16), (0.6, 6)):
        config = SearchConfig(str(space_file), budget, strategy="random", trials=trials, rungs=1, recipe=RECIPE,
                              min_share=share, seed=3)
        run_search(space, config, make_dataset(), tmp_path / f"share-{share}")
        jobs = _jobs(tmp_path / f"share-{share}")
        scores.append({json.dumps(r["candidate"], sort_keys=True): r["score"] for r in jobs})
    shared = scores[0].keys() & scores[1].keys()
    order = [list(s) for s in scores]
    assert shared and any(order[0].index(k) != order[1].index(k) for k in shared)  # drawn at other trial numbers
    assert all(scores[0][k] == scores[1][k] for k in shared)
