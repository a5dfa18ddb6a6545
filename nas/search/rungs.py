"""Successive halving over the proxy's training length (asynchronous, as ASHA: Li et al., 2020).

Every candidate trains on rung 0, the cheapest. Whenever a rung holds n results, the next rung
may hold floor(n / eta) candidates: each free place goes to the best candidate among the rung's
top floor(n / eta) not promoted yet, and the next rung trains eta times as long; the last rung is
the proxy's full length. Promotion is decided from the results alone, so a resumed search decides
as the first run did, and nothing waits for a rung to fill.

(ASHA proper promotes every candidate that is in the top 1/eta when it is looked at, so each new
best on a rung is promoted at once and the upper rungs fill beyond n / eta: measured here, a
one-hour search spent most of its time on rung-2 jobs of 4-6 minutes and trained 24 candidates in
38 minutes. Capping each rung at n / eta keeps the ladder's cost what the plan for `--time`
expects.)

A promoted candidate goes on from its own weights. Each rung holds the learning rate at its peak
until the last `decay` fraction of its steps, then decays it to zero and is scored; the weights
from just before the decay are saved, and the next rung continues from there
(warmup-stable-decay), so a promotion costs the next rung's length less the part already trained.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..records import TrialRecord
from ..train import Recipe, Schedule, steps_for


@dataclass(frozen=True)
class Ladder:
    top_epochs: float  # the last rung's training length (the proxy's full length)
    rungs: int = 3
    eta: int = 4  # each rung trains eta times as long as the one below, and keeps 1/eta
    decay: float = 0.2  # the fraction of each rung's steps spent decaying the learning rate

    def epochs(self, rung: int) -> float:
        return self.top_epochs / self.eta ** (self.rungs - 1 - rung)

    def schedule(self, rung: int, recipe: Recipe, steps_per_epoch: int) -> Schedule:
        """Rung `rung`'s learning-rate schedule over its steps from the start of training. With
        one rung this is the recipe's own (warm-up, then cosine)."""
        if self.rungs == 1:
            return Schedule.of(recipe.with_(epochs=self.top_epochs), steps_per_epoch)
        total = steps_for(self.epochs(rung), steps_per_epoch)
        warm = max(1, int(recipe.warmup * steps_for(self.epochs(0), steps_per_epoch)))  # the same on every rung
        decay_from = max(min(warm, total - 1), total - max(1, round(self.decay * total)))
        return Schedule(total, warm, decay_from)

    def resume_step(self, rung: int, recipe: Recipe, steps_per_epoch: int) -> int | None:
        """Where the next rung goes on from (steps done when this rung's decay began); None on
        the last rung, which nothing continues."""
        if rung + 1 >= self.rungs:
            return None
        return self.schedule(rung, recipe, steps_per_epoch).decay_from

    def relative_cost(self, rung: int) -> float:
        """Epochs a job on `rung` trains, promoted from the rung below, over rung 0's epochs."""
        if rung == 0:
            return 1.0
        return (self.epochs(rung) - (1 - self.decay) * self.epochs(rung - 1)) / self.epochs(0)

    def to_dict(self) -> dict:
        return asdict(self)


def due_promotions(records: list[TrialRecord], ladder: Ladder,
                   running: set[tuple[int, int]] = frozenset()) -> list[tuple[TrialRecord, int]]:
    """(record, next rung) for every promotion due now, highest rung first, best first: rung k + 1
    may hold floor(n / eta) of the n results at rung k, and its free places go to the best
    candidates of rung k's top floor(n / eta) not trained on rung k + 1 yet (failed trials count
    in n and are never promoted). Jobs `running` now, as (trial, rung), hold their places."""
    by_rung: dict[int, list[TrialRecord]] = {}
    for r in records:
        by_rung.setdefault(r.rung, []).append(r)
    due = []
    for k in reversed(range(ladder.rungs - 1)):
        here = by_rung.get(k, [])
        above = {r.trial for r in by_rung.get(k + 1, [])} | {trial for trial, rung in running if rung == k + 1}
        ranked = sorted((r for r in here if r.ok), key=lambda r: -r.score)
        places = len(here) // ladder.eta - len(above)
        due += [(r, k + 1) for r in ranked[:len(here) // ladder.eta] if r.trial not in above][:max(0, places)]
    return due


def obligations(candidates: int, ladder: Ladder) -> list[int]:
    """How many jobs each rung owes once `candidates` have been trained on rung 0."""
    return [candidates // ladder.eta ** k for k in range(ladder.rungs)]
