"""Live terminal views of a search and a retrain (rich). When stdout is not a terminal they
print one plain line per event instead, for CI logs and files."""
from __future__ import annotations

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..records import TrialRecord
from .console import console, human


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console)


def _epochs(e: float) -> str:
    return f"{e:g}" if e >= 1 or e == 0 else f"1/{round(1 / e):g}" if abs(1 / e - round(1 / e)) < 1e-6 else f"{e:.2f}"


def leaderboard(records: list[TrialRecord], budget, limit: int = 10, title: str = "leaderboard") -> Table:
    """The best candidates, each at the highest rung it reached: higher rungs first (their scores
    come from longer training, so only scores on one rung compare)."""
    table = Table(title=title, title_justify="left")
    for col, justify in (("#", "right"), ("trial", "right"), ("rung", "right"), ("epochs", "right"),
                         ("params", "right"), ("MACs", "right"), ("budget", "right"), ("proxy acc", "right"),
                         ("s", "right")):
        table.add_column(col, justify=justify, no_wrap=True)
    table.add_column("architecture", overflow="fold", min_width=40)
    ok = sorted((r for r in records if r.ok), key=lambda r: (-r.rung, -r.score))[:limit]
    failed = [r for r in records if not r.ok][-3:]
    for rank, r in enumerate(ok, 1):
        table.add_row(str(rank), str(r.trial), str(r.rung), _epochs(r.epochs), f"{r.params:,}", human(r.macs),
                      _use(r, budget), f"{100 * r.score:.2f}%", f"{r.seconds:.1f}", r.summary)
    for r in failed:
        table.add_row("x", str(r.trial), str(r.rung), _epochs(r.epochs), f"{r.params:,}", human(r.macs),
                      _use(r, budget), "[red]failed[/]", f"{r.seconds:.1f}", f"[red]{r.reason}[/]")
    return table


def _use(record, budget) -> str:
    from ..budget import Cost
    return f"{100 * budget.use(Cost(record.params, record.macs)):.0f}%" if budget.describe() != "no limit" else "-"


class _View:
    """Use as a context manager, so the live display is closed however the run ends."""

    def __init__(self):
        self.live = None
        self.tty = console.is_terminal

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.stop()
            self.live = None
        return False


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, m, s = seconds // 3600, seconds % 3600 // 60, seconds % 60
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class SearchView(_View):
    """A bar for the whole search (its time, or its candidates) and one for each job training now,
    each with an ETA; the leaderboard below. Off a terminal: one line per finished job."""

    def start(self, config, space, resumed: int, clock=None, where: str | None = None) -> None:
        """`where`: where the jobs run, when not in this process (Dask workers)."""
        self.budget, self.clock, self.config = config.budget, clock, config
        ladder = config.ladder
        rungs = ", ".join(_epochs(ladder.epochs(k)) for k in range(ladder.rungs))
        amount = (f"{config.max_trials} candidates" if config.max_trials is not None else "as many candidates as fit")
        if config.time is not None:
            amount += f" in {_duration(config.time)}"
        console.print(f"[bold]search[/] {space.name} ({space.size:,} candidates) within {config.budget.describe()}: "
                      f"{config.strategy}, {amount}; rungs of {rungs} epochs, the best 1/{ladder.eta} promoted"
                      + (f"; only candidates using {100 * config.min_share:.0f}%+ of the budget" if config.min_share else "")
                      + (f"; resuming after {resumed} candidates" if resumed else ""))
        if where is not None:
            console.print(f"jobs run {where}")
        elif config.execution is not None:
            console.print(f"execution: {config.execution.describe()}")
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)
        timed = config.time is not None
        self.search = self.progress.add_task(
            "search", info="", total=config.time if timed else config.max_trials,
            completed=(clock.elapsed() if timed and clock else resumed))
        self.jobs: dict[tuple[int, int], int] = {}  # (trial, rung) -> its progress bar
        self.records, self.candidates = [], resumed
        if self.tty:
            self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False)
            self.live.start()

    def _render(self):
        return Group(self.progress, leaderboard(self.records, self.budget))

    def _search_info(self) -> str:
        info = f"{self.candidates} candidate{'s' * (self.candidates != 1)}"
        if self.config.time is not None and self.clock is not None:
            info += f", {_duration(self.clock.remaining())} left"
        return info

    def job_started(self, job: dict) -> None:
        """A job begins (several may run at once, on Dask workers)."""
        self.jobs[(job["trial"], job["rung"])] = self.progress.add_task(
            f"trial {job['trial']} rung {job['rung']}", total=None,
            info=f"{_epochs(job['epochs'])} epochs, {job['params']:,} params: {job['summary']}")
        self.job_rung = job["rung"]
        self.progress.update(self.search, info=self._search_info())

    def job_progress(self, step: int, total: int) -> None:
        """Steps of the job training in this process (the last one started)."""
        self.progress.update(next(reversed(self.jobs.values())), completed=step, total=total)
        if self.config.time is not None and self.clock is not None:
            self.progress.update(self.search, completed=self.clock.elapsed(), info=self._search_info())
        elif self.job_rung == 0:
            self.progress.update(self.search, completed=self.candidates + step / total)

    def job_finished(self, record: TrialRecord, log) -> None:
        task = self.jobs.pop((record.trial, record.rung), None)
        if task is not None:
            self.progress.remove_task(task)
        self.records, self.candidates = log.final(), len(log)
        if self.config.time is None:
            self.progress.update(self.search, completed=self.candidates)
        self.progress.update(self.search, info=self._search_info())
        if self.live:
            self.live.update(self._render())
        else:
            best = log.best()
            outcome = f"{100 * record.score:.2f}%" if record.ok else f"failed: {record.reason}"
            console.print(f"trial {record.trial} rung {record.rung} ({_epochs(record.epochs)} epochs) {outcome} "
                          f"in {record.seconds:.1f}s, {record.params:,} params, {human(record.macs)} MACs: {record.summary}"
                          + (f" | best {100 * best.score:.2f}% (trial {best.trial}, rung {best.rung})" if best else "")
                          + f" | {self._search_info()}")

    def finish(self, log, ended_early: str | None = None) -> None:
        """`ended_early`: why the strategy stopped proposing while time or trials were left."""
        for task in self.jobs.values():
            self.progress.remove_task(task)
        self.jobs.clear()
        if self.live:
            self.live.update(Group(self.progress, leaderboard(log.final(), self.budget)))
            self.live.stop()
            self.live = None
        else:
            console.print(leaderboard(log.final(), self.budget))
        if ended_early:
            console.print(f"[yellow]the search ended early:[/] {ended_early}")


class RetrainView(_View):

    def start(self, winner, cost, recipe, resumed: int, execution=None) -> None:  # a Winner
        console.print(f"[bold]retrain[/] {winner.summary}: {cost.params:,} params, {human(cost.macs)} MACs, "
                      f"{recipe.epochs} epochs at batch {recipe.batch_size}"
                      + (f"; resuming after epoch {resumed}" if resumed else ""))
        if execution is not None:
            console.print(f"execution: {execution.describe()}")
        self.table = Table(title_justify="left")
        for col in ("epoch", "train loss", "train acc", "test loss", "test acc", "tta acc", "lr", "s"):
            self.table.add_column(col, justify="right")
        self.progress = _progress()
        self.task = self.progress.add_task("epochs", total=recipe.epochs, completed=resumed)
        if self.tty:
            self.live = Live(Group(self.progress, self.table), console=console, refresh_per_second=4)
            self.live.start()

    def note(self, line: str) -> None:
        console.print(line)

    def epoch(self, s) -> None:
        pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"
        row = (str(s.epoch), f"{s.train_loss:.4f}", pct(s.train_acc), "-" if s.test_loss is None else f"{s.test_loss:.4f}",
               pct(s.test_acc), pct(s.test_acc_tta), f"{s.lr:.4f}", f"{s.seconds:.1f}")
        self.progress.update(self.task, completed=s.epoch)
        if self.live:
            self.table.add_row(*row)
            self.live.update(Group(self.progress, self.table))
        else:
            console.print(f"epoch {s.epoch}/{self.progress.tasks[0].total} | "
                          + " | ".join(f"{c.header} {v}" for c, v in zip(self.table.columns[1:], row[1:])))

    def finish(self, result) -> None:
        if self.live:
            self.live.stop()
            self.live = None
        tta = result.final_test_acc_tta
        console.print(Panel.fit(
            f"{result.summary}\n"
            f"params {result.params:,}   MACs {human(result.macs)}\n"
            f"test accuracy: final {100 * result.final_test_acc:.2f}%, best {100 * result.best_test_acc:.2f}%"
            + (f", final with {result.tta_name} {100 * tta:.2f}%" if tta is not None else "") + "\n"
            f"{result.epochs} epochs in {result.seconds:.0f}s on {result.execution_summary} ({result.data})",
            title="retrained"))
