"""How much of a space a budget leaves: counted exactly when the space is small enough to
enumerate, else estimated from a uniform sample with a 95% margin."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from .budget import Budget, Cost, estimate
from .spaces import Candidate, Space

ENUMERATE_LIMIT = 200_000
SAMPLES = 20_000


@dataclass
class Scored:
    candidate: Candidate
    cost: Cost


@dataclass
class Survey:
    size: int
    examined: int  # candidates costed
    exact: bool
    feasible: int  # exact count, or the estimate
    margin: int  # 95% margin of the estimate (0 when exact)
    smallest: Scored | None
    largest: Scored | None
    examples: list = field(default_factory=list)  # a few random feasible candidates
    min_share: float = 0.0
    eligible: float = 0.0  # of the feasible, the fraction using at least min_share of the budget

    @property
    def fraction(self) -> float:
        return self.feasible / self.size if self.size else 0.0


def survey(space: Space, budget: Budget, seed: int = 0, examples: int = 5,
           enumerate_limit: int = ENUMERATE_LIMIT, samples: int = SAMPLES, min_share: float = 0.0) -> Survey:
    rng = random.Random(seed)
    exact = space.size <= enumerate_limit
    candidates = space.enumerate() if exact else (space.sample(rng) for _ in range(samples))
    examined, feasible = 0, []
    for cand in candidates:
        examined += 1
        cost = estimate(space.resolve(cand))
        if budget.fits(cost):
            feasible.append(Scored(cand, cost))
    if exact:
        count, margin = len(feasible), 0
    else:
        p = len(feasible) / examined
        count = round(p * space.size)
        margin = round(1.96 * math.sqrt(p * (1 - p) / examined) * space.size)
    by_params = sorted(feasible, key=lambda s: (s.cost.params, s.cost.macs))
    return Survey(
        size=space.size, examined=examined, exact=exact, feasible=count, margin=margin,
        smallest=by_params[0] if by_params else None, largest=by_params[-1] if by_params else None,
        examples=rng.sample(feasible, min(examples, len(feasible))), min_share=min_share,
        eligible=sum(budget.use(f.cost) >= min_share for f in feasible) / len(feasible) if feasible else 0.0,
    )
