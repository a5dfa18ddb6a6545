"""Defects found in review, each pinned by a test."""
import json

import numpy as np
import pytest
import torch

from nas.budget import Budget
from nas.data import DataError, load
from nas.prescreen import Prescreen
from nas.search import SearchConfig, run_search
from nas.search.trials import TrialLog, TrialLogError
from nas.spaces import load_space
from nas.train import PROXY

from .conftest import run_nas
from .synthetic import make_dataset, write_npz, write_space

RECIPE = PROXY.with_(epochs=1, batch_size=64)


def test_val_fraction_one_is_refused_before_anything_is_written(tmp_path):
    space, data = write_space(tmp_path / "small.py"), write_npz(tmp_path / "d.npz")
    r = run_nas("search", space, "--budget", "6k", "--trials", "1", "--data", data, "--out", tmp_path / "run",
                "--val-fraction", "1")
    assert r.returncode == 2 and "val-fraction" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_a_validation_split_that_leaves_nothing_to_train_writes_nothing(tmp_path):
    space_file = write_space(tmp_path / "small.py")
    config = SearchConfig(str(space_file), Budget(6000), strategy="random", trials=1, recipe=RECIPE,
                          val_fraction=0.999)
    with pytest.raises(DataError, match="leaves none to train on"):
        run_search(load_space(space_file), config, make_dataset(64, 16), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_seed_decides_the_proxy_initial_weights(tmp_path, monkeypatch):
    import nas.search.jobs as jobs
    first_weights = []
    real = jobs.train

    def spy(model, *a, **k):
        first_weights.append(next(model.parameters()).detach().clone())
        return real(model, *a, **k)

    monkeypatch.setattr(jobs, "train", spy)
    space_file = tmp_path / "one.py"  # a single candidate, so every run trains the same network
    space_file.write_text("from nas.spaces import Space, Stage, Stem\n"
                          "space = Space('one', Stem(8), [Stage('conv', 8)], num_classes=4)\n")
    space = load_space(space_file)
    for seed in (0, 0, 1):
        config = SearchConfig(str(space_file), Budget(6000), strategy="random", trials=1, recipe=RECIPE, seed=seed,
                              min_share=0)
        torch.manual_seed(1234 + seed * 7)  # whatever state the process is in must not matter
        run_search(space, config, make_dataset(), tmp_path / f"run{seed}{len(first_weights)}")
    a, b, c = first_weights
    assert torch.equal(a, b) and a.shape == c.shape and not torch.equal(a, c)


def test_reading_a_torn_log_writes_nothing(tmp_path):
    path = tmp_path / "trials.jsonl"
    good = json.dumps({"trial": 1, "candidate": {"a": 1}, "status": "ok", "score": 0.5})
    path.write_text(good + "\n" + '{"trial": 2, "candid')
    before = path.read_bytes()
    assert len(TrialLog(path)) == 1
    assert path.read_bytes() == before  # a reader (the report) leaves the search's file alone


def test_a_broken_line_in_the_middle_is_one_clear_error(tmp_path):
    space_file = write_space(tmp_path / "small.py")
    config = SearchConfig(str(space_file), Budget(6000), strategy="random", trials=1, recipe=RECIPE)
    run_search(load_space(space_file), config, make_dataset(64, 16), tmp_path / "run")
    path = tmp_path / "run" / "trials.jsonl"
    good = path.read_text()
    path.write_text(good + "not json\n" + good)
    with pytest.raises(TrialLogError, match="line 2"):
        TrialLog(path)
    r = run_nas("report", tmp_path / "run")
    assert r.returncode == 2 and "line 2" in r.stderr and "Traceback" not in r.stderr


def test_an_npz_with_empty_splits_is_refused(tmp_path):
    path = tmp_path / "empty.npz"
    empty = np.zeros((0, 32, 32, 3), np.uint8)
    np.savez(path, x_train=empty, y_train=np.zeros(0, np.int64), x_test=empty, y_test=np.zeros(0, np.int64))
    with pytest.raises(DataError, match="empty"):
        load(str(path))


def test_prescreen_keeping_everything_drops_nothing(tmp_path):
    space = load_space(write_space(tmp_path / "small.py"))
    data = make_dataset(64, 16)
    screen = Prescreen(space, Budget(6000), data.train, [0.5] * 3, [0.25] * 3, 1.0, 0)
    assert all(screen.keeps(c) for c in list(space.enumerate())[:20])


def test_exported_evaluate_reads_the_cache_from_the_environment(tmp_path):
    import os
    import subprocess
    import sys
    from nas.export import EVALUATE
    (tmp_path / "evaluate.py").write_text(EVALUATE.format(data="cifar10"))
    (tmp_path / "model.py").write_text("MEAN = STD = None\nclass Net: pass\n")
    out = subprocess.run([sys.executable, "-c", "import evaluate; print(evaluate.CACHE)"], cwd=tmp_path, text=True,
                         capture_output=True, env={**os.environ, "NAS_DATA_CACHE": str(tmp_path / "cache")})
    assert out.stdout.strip() == str(tmp_path / "cache"), out.stderr
