"""What runs inside a Dask worker: the search's Trainer, held by a worker plugin, and the task
that runs one job with it. Imported on the workers, where NNI never is."""
from __future__ import annotations

from distributed import WorkerPlugin, get_worker

from .jobs import DeadlineReached, Job, JobResult, Trainer


class TrainerPlugin(WorkerPlugin):
    """Holds a search's Trainer (and so its training data) on every worker, the ones that join
    later included: the scheduler keeps the plugin and hands it to each worker as it starts."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer


def run_on_worker(plugin: str, job: Job) -> JobResult:
    """Run `job` with the Trainer of plugin `plugin`; the search's deadline ends it with no record."""
    try:
        return get_worker().plugins[plugin].trainer.run(job)
    except DeadlineReached:
        return JobResult(job, None)
