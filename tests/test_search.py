import json

import pytest

from nas.budget import Budget, estimate
from nas.data import Dataset
from nas.search import STRATEGIES, SearchConfig, run_search
from nas.spaces import load_space
from nas.train import PROXY

from .synthetic import make_dataset, write_space

RECIPE = PROXY.with_(epochs=1, batch_size=64)


class LineCounter:
    """A view that checks trials.jsonl on disk as each job ends, and records the progress shown."""

    def __init__(self, path):
        self.path, self.counts, self.steps = path, [], []

    def start(self, *a, **k): pass
    def job_started(self, job): self.steps.append([])
    def job_progress(self, step, total): self.steps[-1].append((step, total))
    def finish(self, log, ended_early=None): pass

    def job_finished(self, record, log):
        self.counts.append(len(self.path.read_text().splitlines()))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_whole_search_with_each_strategy(tmp_path, strategy):
    space_file = write_space(tmp_path / "small.py")
    space = load_space(space_file)
    budget = Budget(4000)
    config = SearchConfig(str(space_file), budget, strategy=strategy, trials=3, eta=3, recipe=RECIPE,
                          data_source="synthetic")
    out = tmp_path / "run"
    view = LineCounter(out / "trials.jsonl")
    winner = run_search(space, config, make_dataset(), out, view=view)

    assert view.counts == [1, 2, 3, 4]  # one line per finished job, the moment it ends
    for steps in view.steps:  # progress inside every job, step by step to its end
        assert steps and steps[-1][0] == steps[-1][1] and [s for s, _ in steps] == list(range(1, len(steps) + 1))
    records = [json.loads(l) for l in (out / "trials.jsonl").read_text().splitlines()]
    assert len({json.dumps(r["candidate"], sort_keys=True) for r in records}) == 3
    assert sorted(r["rung"] for r in records) == [0, 0, 0, 1]  # three candidates, the best third promoted
    for r in records:
        assert r["status"] == "ok", r
        assert r["params"] <= 4000 and r["params"] == estimate(space.resolve(r["candidate"])).params
        assert 0 <= r["score"] <= 1 and r["seconds"] > 0
    saved = json.loads((out / "winner.json").read_text())
    promoted = next(r for r in records if r["rung"] == 1)
    assert saved["proxy_score"] == promoted["score"] == winner.proxy_score and saved["proxy_rung"] == 1
    assert saved["space"]["fingerprint"] == space.fingerprint() and saved["space"]["path"] == str(space_file)
    assert saved["budget"]["max_params"] == 4000 and saved["params"] <= 4000
    assert space.resolve(saved["candidate"]).to_dict() == saved["architecture"]


def test_only_candidates_within_budget_are_trained(tmp_path, trained_sizes):
    trained = trained_sizes
    space_file = write_space(tmp_path / "small.py")
    space = load_space(space_file)
    # about half the space fits: grid walks through the rest too and must skip them untrained
    sizes = sorted(estimate(space.resolve(c)).params for c in space.enumerate())
    limit = sizes[len(sizes) // 2]
    config = SearchConfig(str(space_file), Budget(limit), strategy="grid", trials=4, recipe=RECIPE, rungs=1)
    run_search(space, config, make_dataset(), tmp_path / "run")
    assert len(trained) == 4 and max(trained) <= limit


class _NoTouching:
    """A test split that fails loudly if anything reads it."""

    def __getattr__(self, name):
        raise AssertionError(f"the search read the test split ({name})")

    def __len__(self):
        raise AssertionError("the search read the test split")


def test_the_proxy_never_reads_the_test_split(tmp_path):
    space_file = write_space(tmp_path / "small.py")
    data = make_dataset()
    blind = Dataset(data.train, _NoTouching(), data.classes, "synthetic")
    config = SearchConfig(str(space_file), Budget(4000), strategy="random", trials=2, recipe=RECIPE)
    run_search(load_space(space_file), config, blind, tmp_path / "run")
    records = [json.loads(l) for l in (tmp_path / "run" / "trials.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok"], records


def test_failing_trials_are_recorded_and_the_search_goes_on(tmp_path, monkeypatch):
    import nas.search.jobs as jobs
    from nas.train import Diverged
    calls = {"n": 0}
    real_train = jobs.train

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise Diverged("loss is nan in epoch 1")
        return real_train(*a, **k)

    monkeypatch.setattr(jobs, "train", flaky)
    space_file = write_space(tmp_path / "small.py")
    config = SearchConfig(str(space_file), Budget(4000), strategy="random", trials=3, eta=3, recipe=RECIPE)
    winner = run_search(load_space(space_file), config, make_dataset(), tmp_path / "run")
    records = [json.loads(l) for l in (tmp_path / "run" / "trials.jsonl").read_text().splitlines()]
    assert records[0]["status"] == "failed" and "diverged" in records[0]["reason"]
    assert [r["status"] for r in records[1:]] == ["ok", "ok", "ok"] and winner.proxy_score is not None
    assert records[-1]["rung"] == 1 and records[-1]["trial"] != 1  # a failed candidate is never promoted


def test_an_error_outside_a_trial_stops_the_search_instead_of_looping(tmp_path, monkeypatch):
    # e.g. the disk fills up: the trial log cannot be written. NNI's engine would log and go on.
    from nas.search import trials
    calls = {"n": 0}

    def full_disk(self, record):
        calls["n"] += 1
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trials.TrialLog, "append", full_disk)
    space_file = write_space(tmp_path / "small.py")
    config = SearchConfig(str(space_file), Budget(6000), strategy="evolution", trials=3, recipe=RECIPE)
    with pytest.raises(OSError, match="No space left"):
        run_search(load_space(space_file), config, make_dataset(), tmp_path / "run")
    assert calls["n"] == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_strategy_is_asked_and_told_through_two_calls(strategy):
    from nas.search.nni_adapter import Proposer
    choices = {"a": (1, 2, 3), "b": ("x", "y")}
    proposer = Proposer(strategy, choices, feasible=lambda c: c["a"] != 3, seed=0, population=4)
    seen = []
    try:
        for _ in range(6):
            candidate = proposer.propose()
            if candidate is None:  # grid and random run out of the 4 feasible candidates
                break
            assert set(candidate) == {"a", "b"}
            seen.append(candidate)
            proposer.report(candidate, float(candidate["a"] == 2) if candidate["a"] != 3 else 0.0)
    finally:
        proposer.close()
    assert not proposer.thread.is_alive()  # closing ends the strategy's thread
    assert len(seen) >= 4
    if strategy in ("random", "evolution", "rl"):  # they reject infeasible candidates in the space
        assert all(c["a"] != 3 for c in seen)


@pytest.mark.parametrize("strategy", ["random", "evolution"])
def test_strategies_that_reject_in_the_space_go_on_where_few_candidates_fit(strategy):
    """A budget may leave a small share of a space (spaces/resnet.py under 150M MACs: 0.2%). NNI
    gives up after 500 rejected draws in a row; here 45 of 65,536 candidates fit (0.07%)."""
    from nas.search.nni_adapter import Proposer
    choices = {f"k{i}": (0, 1, 2, 3) for i in range(8)}
    least = 22
    proposer = Proposer(strategy, choices, feasible=lambda c: sum(c.values()) >= least, seed=0, population=4)
    seen = []
    try:
        for _ in range(5):
            candidate = proposer.propose()
            assert candidate is not None, f"{strategy} stopped after {len(seen)} candidates"
            assert sum(candidate.values()) >= least
            seen.append(candidate)
            proposer.report(candidate, 0.5)
    finally:
        proposer.close()


def test_a_search_that_runs_out_of_candidates_says_so(tmp_path):
    space_file = write_space(tmp_path / "small.py")
    space = load_space(space_file)
    limit = sorted(estimate(space.resolve(c)).params for c in space.enumerate())[1]  # the two smallest fit
    config = SearchConfig(str(space_file), Budget(limit), strategy="grid", trials=4, recipe=RECIPE, rungs=1,
                          min_share=0)
    ended = []

    class View(LineCounter):
        def finish(self, log, ended_early=None):
            ended.append(ended_early)

    run_search(space, config, make_dataset(), tmp_path / "run", view=View(tmp_path / "run" / "trials.jsonl"))
    assert len((tmp_path / "run" / "trials.jsonl").read_text().splitlines()) == 2
    assert ended == [f"grid found no untried candidate within the budget (2 of the {space.size} it drew fit)"]


TWIN_SPACE = '''
from nas.spaces import Head, Space, Stage, Stem, choice
space = Space(
    name="twins",
    stem=Stem(width=8),
    stages=[Stage(choice("b", ["dwsep", "mbconv"]), width=8, kernel=3, expansion=choice("e", [1, 2, 3]))],
    head=Head(hidden=0),
    num_classes=4,
)
'''


def test_choices_that_build_the_same_network_train_it_once(tmp_path):
    space_file = tmp_path / "twins.py"
    space_file.write_text(TWIN_SPACE)
    space = load_space(space_file)
    # dwsep ignores the expansion: its three choices build one network, mbconv's three networks
    assert space.size == 6 and len({space.resolve(c).summary() for c in space.enumerate()}) == 4
    config = SearchConfig(str(space_file), Budget(100_000), strategy="grid", trials=6, recipe=RECIPE, rungs=1,
                          min_share=0)
    ended = []

    class View(LineCounter):
        def finish(self, log, ended_early=None):
            ended.append(ended_early)

    log = tmp_path / "run" / "trials.jsonl"
    run_search(space, config, make_dataset(), tmp_path / "run", view=View(log))
    records = [json.loads(l) for l in log.read_text().splitlines()]
    assert sorted(r["summary"] for r in records) == sorted({space.resolve(c).summary() for c in space.enumerate()})
    assert ended == [f"grid found no untried candidate within the budget (4 of the 4 it drew fit)"]
    run_search(space, config, make_dataset(), tmp_path / "run")  # a resume replays the twins: nothing trains
    assert log.read_text().splitlines() == [json.dumps(r) for r in records]
