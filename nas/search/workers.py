"""Where a search's jobs run: in the search's own process, one at a time (the default), or on
Dask workers, several at once (`--workers N` starts a local cluster, `--scheduler ADDRESS` joins
one that is running). The only module that imports Dask.

Either way the search's process hands out jobs (`submit`) and takes results back one at a time
(`next_result`), on its own thread: it alone appends to trials.jsonl and talks to the strategy.

A local cluster is safe by default: the scheduler, the nannies and the workers listen on
127.0.0.1 only (the scheduler's HTTP server included; its dashboard is off), and Dask's scratch
files go under the search's own directory. The training data is scattered to every worker once,
with the `Trainer`; each job then carries only its candidate (and the weights it goes on from).
A worker that dies mid-job (killed, out of memory) costs only that job: it is run once more, on a
worker with nothing else to do (never queued behind a job that might kill that worker too), and a
second death records it as failed.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from ..errors import UserError
from ..execution import Execution, usable_cores
from .jobs import DeadlineReached, Job, JobResult, Trainer, describe_failure

WORKER_RETRIES = 1  # a job whose worker dies is run once more, then recorded as failed
CONNECT_SECONDS = 10  # waiting for an existing scheduler to answer
ORPHAN_SECONDS = 10  # a retry still pending this long after its worker went never started: place it again


class InProcess:
    """One job at a time, in this process: the default, with no Dask started."""

    slots = 1
    describe = None  # (the run header names the execution instead)

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.queue: collections.deque[Job] = collections.deque()

    def submit(self, job: Job) -> None:
        self.queue.append(job)

    def next_result(self, timeout: float | None = None, on_step=None) -> JobResult:
        """Run the next job here; on_step(step, total) is called after every training step (it
        may raise DeadlineReached to stop the job)."""
        return self.trainer.run(self.queue.popleft(), on_step=on_step)

    def close(self) -> None:
        self.queue.clear()


def worker_settings(workers: int, execution: Execution) -> tuple[dict, list[dict], Execution]:
    """What each local worker process is started with (the environment set before it starts,
    then its own), and the execution every one of them runs. On a CPU the cores are split
    between the workers (threads must not exceed cores: two processes with as many threads as
    the machine has cores each ran 10x slower); on GPUs, one GPU per worker (round robin where
    there are fewer GPUs than workers)."""
    before = {"DASK_LOGGING__DISTRIBUTED": "error"}  # a worker's own log lines would break the live view
    if execution.device.startswith("cuda"):
        import torch
        gpus = torch.cuda.device_count()
        return before, [{"CUDA_VISIBLE_DEVICES": str(i % gpus)} for i in range(workers)], execution.with_(device="cuda")
    threads = max(1, usable_cores() // workers)
    # OpenMP reads these when the worker first imports torch: they must be set before it starts
    before.update({name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    return before, [{} for _ in range(workers)], execution.with_(threads=threads)


class DaskWorkers:
    """Jobs on Dask workers: a local cluster of `workers` processes, or the cluster whose
    scheduler is at `scheduler` (its workers' threads are theirs: start them with
    OMP_NUM_THREADS set to the cores each may use)."""

    def __init__(self, trainer: Trainer, scratch: Path, workers: int | None = None, scheduler: str | None = None):
        import dask
        from distributed import Client

        from .on_worker import TrainerPlugin, run_on_worker

        self.scratch, self.local = scratch, trainer  # `local` records the failures Dask reports
        self.cluster, self.environ = None, {}
        # Dask gives up on a job at its worker's first death; the retry is ours (next_result)
        config = {"temporary-directory": str(scratch), "distributed.scheduler.allowed-failures": 0,
                  "distributed.scheduler.worker-saturation": 1.0,  # a job waits on the scheduler, not a busy worker
                  "distributed.worker.daemon": True, "logging.distributed": "error"}
        for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker"):
            logging.getLogger(name).setLevel(logging.ERROR)
        with dask.config.set(config):
            if scheduler is not None:
                try:
                    self.client = Client(scheduler, timeout=CONNECT_SECONDS)
                except (OSError, TimeoutError) as e:
                    raise UserError(f"no Dask scheduler answered at {scheduler}: {e}") from None
                if not self.client.scheduler_info().get("workers"):
                    self.client.close()
                    raise UserError(f"the Dask cluster at {scheduler} has no workers")
                # the workers' machines are not this one: each keeps its own thread count
                trainer = replace(trainer, execution=trainer.execution.with_(threads=0))
                self.describe = f"on the Dask cluster at {scheduler}"
            else:
                before, envs, execution = worker_settings(workers, trainer.execution)
                trainer = replace(trainer, execution=execution)
                # (Dask sets these in this process's environment too: put them back in close())
                self.environ = {name: os.environ.get(name) for name in before}
                with dask.config.set({"distributed.nanny.pre-spawn-environ": before}):
                    self.cluster = _local_cluster(envs, scratch)
                self.client = Client(self.cluster)
                self.describe = f"on {workers} local Dask workers ({execution.describe()} each)"
        self.slots = sum(self.client.nthreads().values())
        # the data goes to each worker once, with the trainer: as a worker plugin, which the
        # scheduler also hands to a worker that starts later (a replacement for one that died)
        self.plugin = f"nas-trainer-{os.urandom(4).hex()}"
        self.client.register_plugin(TrainerPlugin(trainer), name=self.plugin)
        self.task = run_on_worker
        self.futures: dict = {}  # future -> job
        self.retries: list[Job] = []  # jobs whose worker died, waiting for an idle worker
        self.pinned: dict = {}  # future of a retry -> the worker it must run on
        self.orphaned: dict = {}  # future of a retry -> when its worker was first seen gone
        self.deaths: collections.Counter = collections.Counter()  # job key -> workers it saw die

    def submit(self, job: Job, worker: str | None = None) -> None:
        """Hand a job to the scheduler; a retry names the one `worker` it must run on."""
        future = self.client.submit(self.task, self.plugin, job, pure=False, workers=worker,
                                    key=f"trial-{job.trial}-rung-{job.rung}-{os.urandom(4).hex()}")
        self.futures[future] = job
        if worker is not None:
            self.pinned[future] = worker

    def _place_retries(self) -> None:
        """Run each job whose worker died on a worker that has nothing to do now, and only there.
        A retry whose worker has gone before running it (the worker seen idle may have been dying)
        is taken back and placed again: Dask would leave it pending for ever. (One that did run
        and killed its worker is reported as such within ORPHAN_SECONDS.)"""
        if not self.retries and not self.pinned:
            return
        threads = self.client.nthreads()
        processing = self.client.processing()
        busy = {worker: len(keys) for worker, keys in processing.items()}
        for future, worker in list(self.pinned.items()):
            if future.done():
                del self.pinned[future]
                self.orphaned.pop(future, None)
            elif worker not in threads:
                gone = self.orphaned.setdefault(future, time.monotonic())
                if time.monotonic() - gone > ORPHAN_SECONDS:
                    del self.pinned[future], self.orphaned[future]
                    future.cancel()
                    self.retries.insert(0, self.futures.pop(future))
            elif future.key not in processing.get(worker, ()):  # on its way to the scheduler
                busy[worker] = busy.get(worker, 0) + 1
        for worker in threads:
            while self.retries and busy.get(worker, 0) < threads[worker]:
                self.submit(self.retries.pop(0), worker)
                busy[worker] = busy.get(worker, 0) + 1

    def next_result(self, timeout: float | None = None, on_step=None) -> JobResult:
        """The next job to end (in whatever order they end). DeadlineReached when none has ended
        within `timeout` seconds."""
        from distributed import wait
        from distributed.scheduler import KilledWorker

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._place_retries()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise DeadlineReached()
            if self.retries or self.pinned:  # look again at the workers at least every second
                left = 1.0 if left is None else min(left, 1.0)
            try:
                done = wait(list(self.futures), timeout=left, return_when="FIRST_COMPLETED").done if self.futures else ()
            except TimeoutError:
                continue
            if not done:
                time.sleep(min(1.0, left or 1.0))
                continue
            future = next(f for f in self.futures if f in done)
            job = self.futures.pop(future)
            try:
                return future.result()
            except KilledWorker:
                self.deaths[job.key] += 1
                if self.deaths[job.key] <= WORKER_RETRIES:
                    self.retries.append(job)
                    continue
                return self.local.failed(job, "its worker died (killed, or out of memory), and again when it was retried")
            except Exception as e:  # the job's own failures are recorded on the worker; this is Dask's
                return self.local.failed(job, describe_failure(e))

    def close(self) -> None:
        for future in self.futures:
            future.cancel()
        self.futures.clear()
        self.retries.clear()
        self.pinned.clear()
        self.orphaned.clear()
        if self.cluster is None:  # a cluster of the user's: take the data back off its workers
            with contextlib.suppress(Exception):
                self.client.unregister_worker_plugin(self.plugin)
        with contextlib.suppress(Exception):
            self.client.close(timeout=10)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=10)
        shutil.rmtree(self.scratch, ignore_errors=True)
        for name, value in self.environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _local_cluster(envs: list[dict], scratch: Path):
    """A scheduler and one single-threaded worker process per env, every socket on 127.0.0.1."""
    from distributed import Nanny, Scheduler, SpecCluster

    loopback = "127.0.0.1"
    scheduler = {"cls": Scheduler, "options": {"host": loopback, "dashboard": False,
                                               "dashboard_address": f"{loopback}:0"}}
    workers = {i: {"cls": Nanny, "options": {"host": loopback, "nthreads": 1, "dashboard": False,
                                             "dashboard_address": f"{loopback}:0", "env": env,
                                             "local_directory": str(scratch / f"worker-{i}")}}
               for i, env in enumerate(envs)}
    return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.ERROR, name="nas")


def open_workers(trainer: Trainer, out: Path, workers: int | None, scheduler: str | None):
    """The workers a search's jobs run on: in this process unless `workers` > 1 or `scheduler`."""
    if scheduler is None and (workers or 1) <= 1:
        return InProcess(trainer)
    return DaskWorkers(trainer, out / "dask", workers=workers, scheduler=scheduler)
