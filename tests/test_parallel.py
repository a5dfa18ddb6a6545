"""Trials in parallel on a local Dask cluster (CPU, loopback only): every strategy, a worker that
dies, a SIGKILLed run, the sockets it opens."""
import json
import random
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from nas.budget import Budget
from nas.data import channel_stats, holdout
from nas.execution import choose
from nas.search import STRATEGIES, SearchConfig, run_search
from nas.search.jobs import Job, Trainer
from nas.search.rungs import Ladder
from nas.search.runner import check_settings
from nas.search import workers as workers_module
from nas.search.workers import DaskWorkers, worker_settings
from nas.errors import UserError
from nas.spaces import load_space
from nas.spaces.space import candidate_key
from nas.train import PROXY

from .conftest import ROOT
from .synthetic import make_dataset, write_npz, write_space

RECIPE = PROXY.with_(epochs=1, batch_size=32)


def _jobs(out: Path) -> list[dict]:
    path = out / "trials.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


def _each_candidate_once(jobs: list[dict]) -> None:
    assert len({(r["trial"], r["rung"]) for r in jobs}) == len(jobs)  # no job twice
    first = [r for r in jobs if r["rung"] == 0]
    assert len({candidate_key(r["candidate"]) for r in first}) == len(first)  # no candidate twice
    assert all(any(f["trial"] == r["trial"] for f in first) for r in jobs)  # promotions of trained candidates


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_workers_run_every_strategy_to_its_trial_count(tmp_path, strategy):
    space_file = write_space(tmp_path / "small.py")
    config = SearchConfig(str(space_file), Budget(6000), strategy=strategy, trials=6, rungs=2, eta=2,
                          recipe=RECIPE, workers=2)
    winner = run_search(load_space(space_file), config, make_dataset(256), tmp_path / "run")
    jobs = _jobs(tmp_path / "run")
    _each_candidate_once(jobs)
    assert sum(r["rung"] == 0 for r in jobs) == 6 == winner.trials
    assert sum(r["rung"] == 1 for r in jobs) == 3  # six on rung 0, eta 2: three promoted
    assert all(r["status"] == "ok" for r in jobs)
    assert not (tmp_path / "run" / "dask").exists()  # Dask's scratch space is gone with the cluster


def test_evolution_with_its_whole_population_in_flight_does_not_crash(tmp_path):
    # population 4 (trials // 3, at least 4) and 4 workers: NNI's best_parent would call max([])
    space_file = write_space(tmp_path / "small.py")
    config = SearchConfig(str(space_file), Budget(6000), strategy="evolution", trials=8, rungs=1,
                          recipe=RECIPE, workers=4)
    run_search(load_space(space_file), config, make_dataset(128), tmp_path / "run")
    jobs = _jobs(tmp_path / "run")
    _each_candidate_once(jobs)
    assert len(jobs) == 8


def _trainer(tmp_path, cls=Trainer):
    data = make_dataset(128)
    mean, std = channel_stats(data.train)
    train_split, val_split = holdout(data.train, 0.25, seed=0)
    return cls(train_split, val_split, RECIPE, Ladder(1.0, rungs=1), mean, std, choose("cpu"), 1.0)


def _job(space, trial):
    candidate = space.sample(random.Random(trial))
    return Job(trial, 0, candidate, space.resolve(candidate), seed=trial)


@dataclass
class DiesOnce(Trainer):
    """Kills its worker process in the middle of its first job (a marker file remembers)."""

    marker: str = ""

    def run(self, job, on_step=None):
        if job.trial == 1 and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        if job.trial == 2:  # dies every time
            os._exit(1)
        return super().run(job, on_step)


def test_a_worker_that_dies_costs_at_most_its_job(tmp_path):
    space = load_space(write_space(tmp_path / "small.py"))
    trainer = _trainer(tmp_path, DiesOnce)
    trainer.marker = str(tmp_path / "died")
    workers = DaskWorkers(trainer, tmp_path / "dask", workers=2)
    try:
        for trial in (1, 2):  # as the search does: as many jobs as workers
            workers.submit(_job(space, trial))
        results = {r.job.trial: r.record for r in (workers.next_result(timeout=300) for _ in range(2))}
        workers.submit(_job(space, 3))  # on the workers that replaced the dead ones, with the data
        results[3] = workers.next_result(timeout=300).record
    finally:
        workers.close()
    assert (tmp_path / "died").exists()
    assert results[1].ok and results[3].ok  # retried once on a fresh worker, and the others went on
    assert not results[2].ok and "worker died" in results[2].reason


def test_a_retry_pinned_to_a_worker_that_has_gone_runs_on_one_that_is_there(tmp_path, monkeypatch):
    # the worker seen idle when a retry is placed may be dying: Dask would leave the job pending for ever
    monkeypatch.setattr(workers_module, "ORPHAN_SECONDS", 1)
    space = load_space(write_space(tmp_path / "small.py"))
    workers = DaskWorkers(_trainer(tmp_path), tmp_path / "dask", workers=1)
    try:
        workers.submit(_job(space, 1), worker="tcp://127.0.0.1:9")  # no worker there
        result = workers.next_result(timeout=120)
    finally:
        workers.close()
    assert result.job.trial == 1 and result.record.ok


def test_workers_listen_on_loopback_only_and_never_import_nni(tmp_path):
    space = load_space(write_space(tmp_path / "small.py"))
    workers = DaskWorkers(_trainer(tmp_path), tmp_path / "dask", workers=2)
    try:
        workers.submit(_job(space, 1))
        assert workers.next_result(timeout=300).record.ok
        me = psutil.Process()
        listening = [c.laddr for p in [me, *me.children(recursive=True)]
                     for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
        imported = workers.client.run(lambda: sorted(m for m in sys.modules if m == "nni" or m.startswith("nni.")))
        assert len(imported) == 2 and all(not names for names in imported.values())
        threads = workers.client.run(lambda: __import__("torch").get_num_threads())
        assert set(threads.values()) == {worker_settings(2, choose("cpu"))[2].threads}
    finally:
        workers.close()
    assert not (tmp_path / "dask").exists()


def test_a_sigkilled_parallel_run_resumes_with_nothing_trained_twice(tmp_path):
    space = write_space(tmp_path / "small.py")
    data = write_npz(tmp_path / "d.npz", n_train=512)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nas", "search", str(space), "--budget", "6000", "--trials", "8",
           "--proxy-epochs", "1", "--rungs", "2", "--eta", "2", "--batch-size", "32", "--data", str(data),
           "--out", str(out), "--strategy", "random", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(_jobs(out)) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = (out / "trials.jsonl").read_text().splitlines()
    assert 3 <= len(before) < 12, "the kill should land mid-search"
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive  # the workers end with the run

    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    after = (out / "trials.jsonl").read_text().splitlines()
    assert after[:len(before)] == before  # nothing lost or rewritten
    jobs = [json.loads(l) for l in after]
    _each_candidate_once(jobs)
    assert sum(r["rung"] == 0 for r in jobs) == 8


@pytest.mark.parametrize("flags, says", [
    ({"workers": 0}, "at least 1"),
    ({"workers": 2, "scheduler": "tcp://127.0.0.1:8786"}, "give one of them"),
    ({"scheduler": "localhost"}, "tcp://HOST:PORT"),
])
def test_worker_settings_are_checked(flags, says):
    config = SearchConfig("spaces/tiny.py", Budget(50000), **flags)
    with pytest.raises(UserError, match=says):
        check_settings(config)


def test_an_unreachable_scheduler_is_one_line(tmp_path, nas_cli):
    space = write_space(tmp_path / "small.py")
    data = write_npz(tmp_path / "d.npz", n_train=128)
    r = nas_cli("search", space, "--budget", "6000", "--trials", "2", "--data", data, "--out", tmp_path / "run",
                "--scheduler", "tcp://127.0.0.1:9", timeout=120)
    assert r.returncode == 2 and "no Dask scheduler answered" in r.stderr and "Traceback" not in r.stderr


def test_a_search_runs_on_a_cluster_that_is_already_running(tmp_path):
    """`dask scheduler` and `dask worker` started by hand (as the README shows), then --scheduler."""
    info = tmp_path / "scheduler.json"
    quiet = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "error", "OMP_NUM_THREADS": "1"}
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
                                 env=quiet, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.time() + 60
        while not info.exists() and time.time() < deadline:
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2",
                                   "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                                   "--local-directory", str(tmp_path / "worker")],
                                  env=quiet, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from distributed import Client
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        space_file = write_space(tmp_path / "small.py")
        config = SearchConfig(str(space_file), Budget(6000), strategy="random", trials=4, rungs=2, eta=2,
                              recipe=RECIPE, scheduler=address)
        winner = run_search(load_space(space_file), config, make_dataset(256), tmp_path / "run")
        jobs = _jobs(tmp_path / "run")
        _each_candidate_once(jobs)
        assert sum(r["rung"] == 0 for r in jobs) == 4 == winner.trials and all(r["status"] == "ok" for r in jobs)
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=60)
