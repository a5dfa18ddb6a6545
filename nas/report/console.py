"""Rich terminal output. Plain text, no colour, when stdout is not a terminal."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..budget import Budget, Cost
from ..survey import Survey

import sys

# off a terminal (a log file, CI): plain lines never wrap mid-word, and tables get room for the
# architecture column instead of rich's default 80 columns
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def human(n: float) -> str:
    """12_345_678 -> '12.3M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}"


def _budget_use(cost: Cost, budget: Budget) -> str:
    return f"{100 * budget.use(cost):.1f}%" if (budget.max_params or budget.max_macs) else "-"


def print_share_that_fits(s: Survey) -> None:
    """One line before a search: how much of the space the budget leaves to train."""
    how = "counted exactly" if s.exact else f"estimated from {s.examined:,} uniform samples"
    console.print(f"[bold]fit the budget[/] {100 * s.fraction:.2f}% of the space ({how})"
                  + (f"; {100 * s.eligible:.1f}% of those use {100 * s.min_share:.0f}%+ of it" if s.min_share else ""))


def print_survey(space, budget: Budget, s: Survey) -> None:
    console.print(f"[bold]space[/] {space.name}: {len(space.choices)} choices, {s.size:,} candidates"
                  + (f" - {space.description}" if space.description else ""))
    console.print(f"[bold]budget[/] {budget.describe()}")
    if s.exact:
        console.print(f"[bold]fit the budget[/] {s.feasible:,} of {s.size:,} ({100 * s.fraction:.2f}%), "
                      "counted exactly")
    else:
        console.print(f"[bold]fit the budget[/] about {s.feasible:,} +/- {s.margin:,} of {s.size:,} "
                      f"({100 * s.fraction:.2f}%), estimated from {s.examined:,} uniform samples (95% margin)")
    if s.smallest is None:
        return
    if s.min_share:
        console.print(f"[bold]use {100 * s.min_share:.0f}%+ of it[/] {100 * s.eligible:.1f}% of those "
                      f"(the search trains only these; --min-share changes it)")
    table = Table(title="feasible candidates" + ("" if s.exact else f" (among {s.examined:,} sampled)"))
    for col in ("", "params", "MACs", "budget use", "architecture"):
        table.add_column(col, overflow="fold")
    rows = [("smallest", s.smallest), ("largest", s.largest)] + [(f"sample {i + 1}", x) for i, x in enumerate(s.examples)]
    for label, x in rows:
        table.add_row(label, f"{x.cost.params:,}", human(x.cost.macs), _budget_use(x.cost, budget),
                      space.resolve(x.candidate).summary())
    console.print(table)
