"""Nothing lost, nothing hung: resume after SIGKILL, determinism, bad input, no hidden state."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nas.budget import Budget
from nas.search import SearchConfig, run_search
from nas.records import TrialRecord
from nas.search.trials import TrialLog
from nas.spaces import load_space
from nas.train import PROXY

from .conftest import ROOT
from .synthetic import make_dataset, write_npz, write_space

RECIPE = PROXY.with_(epochs=1, batch_size=64)


def _lines(path):
    return path.read_text().splitlines() if path.exists() else []


def test_search_survives_sigkill_and_resumes(tmp_path):
    space = write_space(tmp_path / "small.py")
    data = write_npz(tmp_path / "d.npz", n_train=512)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nas", "search", str(space), "--budget", "6k", "--trials", "6", "--proxy-epochs", "2",
           "--batch-size", "64", "--data", str(data), "--out", str(out), "--strategy", "evolution", "--eta", "3"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(_lines(out / "trials.jsonl")) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _lines(out / "trials.jsonl")
    assert 2 <= len(before) < 6, "the kill should land mid-search"

    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    after = _lines(out / "trials.jsonl")
    assert after[:len(before)] == before  # nothing lost or rewritten
    jobs = [json.loads(l) for l in after]
    assert sorted(r["trial"] for r in jobs if r["rung"] == 0) == [1, 2, 3, 4, 5, 6]
    assert len({(r["trial"], r["rung"]) for r in jobs}) == len(jobs)  # no job trained twice
    assert len({json.dumps(r["candidate"], sort_keys=True) for r in jobs}) == 6
    assert [r["rung"] for r in jobs].count(1) == 2  # 6 candidates, eta 3: two promoted
    assert json.loads((out / "winner.json").read_text())["trials"] == 6

    # and a finished search, run again, trains nothing more
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and _lines(out / "trials.jsonl") == after


def test_resume_replays_the_strategy_to_the_same_candidates(tmp_path):
    space_file = write_space(tmp_path / "small.py")
    space = load_space(space_file)
    data = make_dataset()
    full = SearchConfig(str(space_file), Budget(6000), strategy="tpe", trials=5, recipe=RECIPE)
    run_search(space, full, data, tmp_path / "a")
    # the same search stopped after 2 trials, then resumed to 5
    partial = SearchConfig(str(space_file), Budget(6000), strategy="tpe", trials=2, recipe=RECIPE)
    run_search(space, partial, data, tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "search.json").read_text())
    assert meta["identity"] == full.identity(space)  # the trial count is not part of a search's identity
    run_search(space, full, data, tmp_path / "b")
    strip = lambda path: [(r.candidate, r.score) for r in TrialLog(path).records]
    assert strip(tmp_path / "a" / "trials.jsonl") == strip(tmp_path / "b" / "trials.jsonl")


def test_same_seed_same_candidates_and_scores_on_the_cpu(tmp_path):
    space_file = write_space(tmp_path / "small.py")
    space = load_space(space_file)
    runs = []
    for name in ("a", "b"):
        config = SearchConfig(str(space_file), Budget(6000), strategy="evolution", trials=3, recipe=RECIPE, seed=7)
        run_search(space, config, make_dataset(), tmp_path / name)
        runs.append([(r.candidate, r.score) for r in TrialLog(tmp_path / name / "trials.jsonl").records])
    assert runs[0] == runs[1]


def test_torn_last_line_is_dropped_with_a_warning(tmp_path, capsys):
    path = tmp_path / "trials.jsonl"
    good = json.dumps({"trial": 1, "candidate": {"a": 1}, "status": "ok", "score": 0.5})
    path.write_text(good + "\n" + '{"trial": 2, "candid')
    log = TrialLog(path, repair=True)  # the search, the log's one writer, repairs it before appending
    assert len(log) == 1 and "torn last line" in capsys.readouterr().err
    assert path.read_text() == good + "\n"
    log.append(TrialRecord.from_dict({"trial": 2, "candidate": {"a": 2}, "status": "ok", "score": 0.6}))
    assert len(TrialLog(path)) == 2


def test_a_search_where_every_trial_fails_says_so(nas_cli, tmp_path):
    space = tmp_path / "bad.py"
    # a layer scale of NaN builds, but every loss is NaN: every trial diverges
    space.write_text("from nas.spaces import Space, Stem, Stage, choice\n"
                     "space = Space('bad', Stem(choice('s', [4, 8])), [Stage('mixer', 8, layer_scale=float('nan'))],"
                     " num_classes=4)\n")
    data = write_npz(tmp_path / "d.npz")
    r = nas_cli("search", space, "--budget", "50k", "--trials", "2", "--proxy-epochs", "1", "--data", data,
                "--out", tmp_path / "run", "--strategy", "random", "--min-share", "0")
    assert r.returncode != 0
    assert "all 2 trials failed: diverged" in r.stderr and "Traceback" not in r.stderr
    assert len(_lines(tmp_path / "run" / "trials.jsonl")) == 2


def test_trial_timeout_fails_the_trial_not_the_search(tmp_path):
    space_file = write_space(tmp_path / "small.py")
    config = SearchConfig(str(space_file), Budget(6000), strategy="random", trials=2,
                          recipe=RECIPE.with_(time_limit=1e-6))
    with pytest.raises(Exception, match="all 2 trials failed: timeout"):
        run_search(load_space(space_file), config, make_dataset(), tmp_path / "run")
    records = TrialLog(tmp_path / "run" / "trials.jsonl").records
    assert [r.status.value for r in records] == ["failed", "failed"] and "time limit" in records[0].reason


def test_nothing_is_written_outside_the_run_directory(nas_cli, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    space = write_space(tmp_path / "small.py")
    data = write_npz(tmp_path / "d.npz")
    env = {**os.environ, "HOME": str(home), "NAS_DATA_CACHE": str(tmp_path / "cache")}
    env.pop("MPLCONFIGDIR", None)
    for args in (["search", space, "--budget", "6k", "--trials", "1", "--proxy-epochs", "1", "--data", data,
                  "--out", tmp_path / "run", "--strategy", "rl"],
                 ["retrain", tmp_path / "run" / "winner.json", "--epochs", "1"]):
        r = subprocess.run([sys.executable, "-m", "nas", *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr
    assert list(home.iterdir()) == []
