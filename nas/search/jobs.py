"""One training job of a search: a candidate on one rung of the ladder, and what it hands back.

A job is everything a worker needs besides the data (which it receives once, in the `Trainer`):
it can run in the search's own process or in a Dask worker on another machine, and it writes
nothing: the weights the next rung goes on from come back in the result, and the search's
process alone saves them and appends to trials.jsonl. Nothing here imports NNI or Dask.
"""
from __future__ import annotations

import copy
import gc
import time
from dataclasses import dataclass

import torch

from ..budget import estimate
from ..data import Split
from ..execution import Execution
from ..records import TrialRecord, TrialStatus
from ..spaces.space import Architecture
from ..train import Diverged, Recipe, train
from .rungs import Ladder


class DeadlineReached(Exception):
    """The search's time ran out in the middle of a job."""


@dataclass(frozen=True)
class Job:
    trial: int  # the candidate's number in the search
    rung: int
    candidate: dict
    arch: Architecture
    seed: int  # decides the initial weights and the data order
    start: dict | None = None  # the rung below's snapshot ({"step", "model", "optimizer"}); None: from scratch
    seconds_left: float | None = None  # a job still running this long after it started is stopped

    @property
    def key(self) -> tuple[int, int]:
        return self.trial, self.rung


@dataclass(frozen=True)
class JobResult:
    job: Job
    record: TrialRecord | None  # None: stopped at the search's deadline (not to be logged)
    snapshot: dict | None = None  # the weights where this rung's decay began, for the next rung


def describe_failure(e: BaseException) -> str:
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return "out of GPU memory"
    if isinstance(e, Diverged):
        return f"diverged: {e}"
    if isinstance(e, TimeoutError):
        return f"timeout: {e}"
    return f"{type(e).__name__}: {e}"


@dataclass
class Trainer:
    """Trains one search's candidates on the rungs of its ladder: what every job shares, held
    once (a Dask worker receives it once, not with every job)."""

    train_split: Split
    val_split: Split
    recipe: Recipe
    ladder: Ladder
    mean: list
    std: list
    execution: Execution
    data_fraction: float

    @property
    def steps_per_epoch(self) -> int:
        n, batch = len(self.train_split), self.recipe.batch_size
        return n // batch if n >= batch else 1

    def run(self, job: Job, on_step=None) -> JobResult:
        """Train `job` (from job.start where given, else from scratch) and score it on the
        validation split. Its failure (an exception, out of memory, divergence) is recorded,
        never raised; DeadlineReached (from on_step, or past job.seconds_left) is raised."""
        cost = estimate(job.arch)
        ladder, recipe, spe, rung = self.ladder, self.recipe, self.steps_per_epoch, job.rung
        t0 = time.perf_counter()
        snapshot = {}

        def step_hook(step: int, total: int) -> None:
            if job.seconds_left is not None and time.perf_counter() - t0 > job.seconds_left:
                raise DeadlineReached()
            if on_step is not None:
                on_step(step, total)

        def on_snapshot(step, model, optimizer):
            snapshot.update(step=step, model=copy.deepcopy(model.state_dict()),
                            optimizer=copy.deepcopy(optimizer.state_dict()))

        try:
            with torch.random.fork_rng(devices=[]):  # training must not move the strategy's RNG
                torch.manual_seed(job.seed)  # before build: the seed decides the initial weights
                model = job.arch.build()
                start, optimizer_state = 0, None
                if job.start is not None:
                    model.load_state_dict(job.start["model"])
                    start, optimizer_state = job.start["step"], job.start["optimizer"]
                history = train(model, self.train_split, self.val_split, recipe.with_(epochs=ladder.epochs(rung)),
                                self.mean, self.std, execution=self.execution, seed=job.seed, on_step=step_hook,
                                schedule=ladder.schedule(rung, recipe, spe), start_step=start,
                                optimizer_state=optimizer_state, snapshot_at=ladder.resume_step(rung, recipe, spe),
                                on_snapshot=on_snapshot).history
            status, score, reason = TrialStatus.OK, history[-1].test_acc, None
        except (KeyboardInterrupt, DeadlineReached):
            raise
        except Exception as e:  # the candidate's failure, not the search's
            status, score, reason = TrialStatus.FAILED, None, describe_failure(e)
        model = None
        if status == TrialStatus.FAILED:
            # free what the failed trial held (its traceback is gone now) before the next one;
            # a full collection costs ~0.3 s, so only after a failure
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        record = TrialRecord(trial=job.trial, rung=rung, candidate=job.candidate, summary=job.arch.summary(),
                             params=cost.params, macs=cost.macs, epochs=round(ladder.epochs(rung), 4),
                             data_fraction=self.data_fraction, status=status, score=score, reason=reason,
                             seconds=round(time.perf_counter() - t0, 3), elapsed=0.0)
        return JobResult(job, record, snapshot if status == TrialStatus.OK and snapshot else None)

    def failed(self, job: Job, reason: str) -> JobResult:
        """The result of a job that could not run to its end (its worker died, and again on retry)."""
        cost = estimate(job.arch)
        return JobResult(job, TrialRecord(
            trial=job.trial, rung=job.rung, candidate=job.candidate, summary=job.arch.summary(), params=cost.params,
            macs=cost.macs, epochs=round(self.ladder.epochs(job.rung), 4), data_fraction=self.data_fraction,
            status=TrialStatus.FAILED, score=None, reason=reason, seconds=0.0, elapsed=0.0))
