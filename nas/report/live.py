"""Live terminal views of a search and a retrain (rich). When stdout is not a terminal they
print one plain line per event instead, for CI logs and files."""
from __future__ import annotations

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .console import console, human


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console)


def leaderboard(records: list[dict], budget, limit: int = 10, title: str = "leaderboard") -> Table:
    table = Table(title=title, title_justify="left")
    for col, justify in (("#", "right"), ("trial", "right"), ("params", "right"), ("MACs", "right"),
                         ("budget", "right"), ("proxy acc", "right"), ("s", "right"), ("architecture", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    ok = sorted((r for r in records if r["status"] == "ok"), key=lambda r: -r["score"])[:limit]
    failed = [r for r in records if r["status"] != "ok"][-3:]
    for rank, r in enumerate(ok, 1):
        table.add_row(str(rank), str(r["trial"]), f"{r['params']:,}", human(r["macs"]), _use(r, budget),
                      f"{100 * r['score']:.2f}%", f"{r['seconds']:.1f}", r["summary"])
    for r in failed:
        table.add_row("x", str(r["trial"]), f"{r['params']:,}", human(r["macs"]), _use(r, budget),
                      "[red]failed[/]", f"{r['seconds']:.1f}", f"[red]{r['reason']}[/]")
    return table


def _use(record, budget) -> str:
    from ..budget import Cost
    return f"{100 * budget.use(Cost(record['params'], record['macs'])):.0f}%" if budget.describe() != "no limit" else "-"


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


class SearchView(_View):

    def start(self, config, space, resumed: int) -> None:
        self.budget, self.total = config.budget, config.trials
        console.print(f"[bold]search[/] {space.name} ({space.size:,} candidates) within {config.budget.describe()}: "
                      f"{config.strategy}, {config.trials} trials, proxy {config.recipe.epochs} epochs"
                      + (f"; resuming after {resumed} finished trials" if resumed else ""))
        if config.execution is not None:
            console.print(f"execution: {config.execution.describe()}")
        self.progress = _progress()
        self.task = self.progress.add_task("trials", total=config.trials, completed=resumed)
        self.current = ""
        self.records = []
        if self.tty:
            self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False)
            self.live.start()

    def _render(self):
        return Group(self.progress, leaderboard(self.records, self.budget), self.current)

    def trial_started(self, record: dict) -> None:
        self.current = f"training trial {record['trial']}: {record['summary']} ({record['params']:,} params)"
        if self.live:
            self.live.update(self._render())

    def trial_finished(self, record: dict, log) -> None:
        self.records = log.records
        self.progress.update(self.task, completed=len(log.records))
        self.current = ""
        if self.live:
            self.live.update(self._render())
        else:
            best = log.best()
            outcome = f"{100 * record['score']:.2f}%" if record["status"] == "ok" else f"failed: {record['reason']}"
            console.print(f"trial {record['trial']}/{self.total} {outcome} in {record['seconds']:.1f}s, "
                          f"{record['params']:,} params, {human(record['macs'])} MACs: {record['summary']}"
                          + (f" | best {100 * best['score']:.2f}% (trial {best['trial']})" if best else ""))

    def finish(self, log) -> None:
        if self.live:
            self.live.update(Group(self.progress, leaderboard(log.records, self.budget)))
            self.live.stop()
            self.live = None
        else:
            console.print(leaderboard(log.records, self.budget))


class RetrainView(_View):

    def start(self, winner, cost, recipe, resumed: int, execution=None) -> None:
        console.print(f"[bold]retrain[/] {winner['_arch'].summary()}: {cost.params:,} params, {human(cost.macs)} MACs, "
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

    def finish(self, result: dict) -> None:
        if self.live:
            self.live.stop()
            self.live = None
        tta = result["final_test_acc_tta"]
        console.print(Panel.fit(
            f"{result['summary']}\n"
            f"params {result['params']:,}   MACs {human(result['macs'])}\n"
            f"test accuracy: final {100 * result['final_test_acc']:.2f}%, best {100 * result['best_test_acc']:.2f}%"
            + (f", final with flip-TTA {100 * tta:.2f}%" if tta is not None else "") + "\n"
            f"{result['epochs']} epochs in {result['seconds']:.0f}s on {result.get('execution_summary', result['device'])} "
            f"({result['data']})",
            title="retrained"))
