"""Run a search: space -> budget filter -> strategy -> proxy training -> trials.jsonl -> winner.json.

Resuming: trials.jsonl is the strategy's memory. On a restart with the same settings the
strategy (seeded) proposes the same candidates in the same order; those already in the log are
answered from it without training, which rebuilds the strategy's state exactly, and the search
carries on from the first candidate it has not tried.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .. import __version__
from ..budget import Budget, estimate
from ..data import Dataset, channel_stats, check_compatible, holdout, subset
from ..errors import UserError
from ..execution import Execution, choose, default_batch_size
from ..files import write_json
from ..records import WINNER_FORMAT, TrialRecord, TrialStatus
from ..spaces import Space
from ..prescreen import Prescreen
from ..train import PROXY, Diverged, Recipe, train
from .trials import TrialLog



STALE_PER_TRIAL, STALE_MIN = 50, 1000  # a search stops after this many useless proposals in a row


def population_size(trials: int) -> int:
    """Regularized evolution's population (and RL's batch): a third of the trials, 4 to 20."""
    return max(4, min(20, trials // 3))


@dataclass
class SearchConfig:
    space_path: str
    budget: Budget
    strategy: str = "evolution"
    trials: int = 30
    recipe: Recipe = field(default_factory=lambda: PROXY)
    seed: int = 0
    val_fraction: float = 0.1  # of the training split, held out to score the proxy
    data_fraction: float = 1.0  # of what is left, used to train the proxy
    data_source: str = "cifar10"
    device: str | None = None
    execution: Execution | None = None  # None: chosen for `device` (see nas.execution)
    prescreen: float | None = None  # keep only candidates in this top fraction by NASWOT score
    command: str = ""  # the command line that started it, for the report


    def identity(self, space: Space) -> dict:
        """What must match for a run directory to be resumed rather than refused."""
        return {
            "space": {"path": self.space_path, "name": space.name, "fingerprint": space.fingerprint()},
            "budget": self.budget.to_dict(), "strategy": self.strategy, "seed": self.seed,
            "recipe": self.recipe.to_dict(), "val_fraction": self.val_fraction,
            "data_fraction": self.data_fraction, "data": self.data_source, "prescreen": self.prescreen,
        }


class SearchFailed(UserError):
    """Every trial failed."""


def _describe_failure(e: BaseException) -> str:
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return "out of GPU memory"
    if isinstance(e, Diverged):
        return f"diverged: {e}"
    if isinstance(e, TimeoutError):
        return f"timeout: {e}"
    return f"{type(e).__name__}: {e}"


def run_trial(number: int, candidate: dict, arch, train_split, val_split, recipe: Recipe, mean, std,
              execution: Execution, seed: int, naswot: float | None = None) -> TrialRecord:
    """Train one candidate by the proxy recipe and score it on the validation split. Its failure
    (an exception, out of memory, divergence, a timeout) is recorded, never raised."""
    cost = estimate(arch)
    t0 = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=[]):  # training must not move the strategy's RNG
            torch.manual_seed(seed)  # before build: the seed decides the initial weights
            model = arch.build()
            history = train(model, train_split, val_split, recipe, mean, std, execution=execution, seed=seed).history
        status, score, reason = TrialStatus.OK, history[-1].test_acc, None
    except KeyboardInterrupt:
        raise
    except Exception as e:  # the candidate's failure, not the search's
        status, score, reason = TrialStatus.FAILED, None, _describe_failure(e)
    model = None
    if status == TrialStatus.FAILED:
        # free what the failed trial held (its traceback is gone now) before the next one;
        # a full collection costs ~0.3 s, so only after a failure
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return TrialRecord(number, candidate, arch.summary(), cost.params, cost.macs, status, score, reason,
                       round(time.perf_counter() - t0, 3), naswot)


def prepare_out(out: Path, identity: dict, command: str = "") -> bool:
    """Create or check the run directory; True when it resumes an earlier run."""
    import json

    meta = out / "search.json"
    if meta.exists():
        try:
            previous = json.loads(meta.read_text())
        except json.JSONDecodeError:
            raise UserError(f"{meta} is not JSON; use another --out") from None
        if previous.get("identity") != identity:
            changed = sorted(k for k in identity if previous.get("identity", {}).get(k) != identity[k])
            raise UserError(f"{out} holds a different search (differs in {', '.join(changed)}); use another --out")
        return True
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(meta, {"nas_version": __version__, "identity": identity, "command": command})
    except OSError as e:
        raise UserError(f"cannot write to {out}: {e.strerror}") from None
    return False


def run_search(space: Space, config: SearchConfig, data: Dataset, out: str | Path, view=None) -> dict:
    """Search and return the winner record (also written to out/winner.json)."""
    from .nni_adapter import run_strategy

    check_compatible(data, space.input_size, space.in_channels, space.num_classes)
    execution = config.execution or choose(config.device)
    # the batch size is part of what a resumed search must match: fix it before the identity
    config = replace(config, execution=execution, recipe=config.recipe.with_(
        batch_size=config.recipe.batch_size or default_batch_size(execution.device)))
    # every setting is checked (the splits included) before anything is written
    mean, std = channel_stats(data.train)
    train_split, val_split = holdout(data.train, config.val_fraction, seed=config.seed)
    train_split = subset(train_split, config.data_fraction, seed=config.seed)
    out = Path(out)
    identity = config.identity(space)
    prepare_out(out, identity, config.command)
    log = TrialLog(out / "trials.jsonl", repair=True)
    budget, recipe = config.budget, config.recipe
    stale = 0  # proposals in a row that were already tried or over budget
    if view is not None:
        view.start(config, space, resumed=len(log))

    def finished() -> int:
        return len(log)

    def keep_going() -> bool:
        # stop at the trial count, or when the strategy keeps proposing what it already tried
        return finished() < config.trials and stale < STALE_PER_TRIAL * config.trials + STALE_MIN

    screen = Prescreen(space, budget, train_split, mean, std, config.prescreen, config.seed) if config.prescreen else None

    def feasible(candidate: dict) -> bool:
        if not budget.fits(estimate(space.resolve(candidate))):
            return False
        return screen is None or screen.keeps(candidate)

    def objective(candidate: dict) -> float:
        nonlocal stale
        previous = log.get(candidate)
        if previous is not None:  # replay on resume, or a strategy repeating itself
            stale += 1
            return previous["score"] if previous["status"] == TrialStatus.OK else 0.0
        if not feasible(candidate):
            stale += 1
            return 0.0
        stale = 0
        arch = space.resolve(candidate)
        cost = estimate(arch)
        number = finished() + 1
        if view is not None:
            view.trial_started({"trial": number, "candidate": candidate, "summary": arch.summary(),
                                "params": cost.params, "macs": cost.macs})
        record = run_trial(number, candidate, arch, train_split, val_split, recipe, mean, std, execution,
                           seed=config.seed + number, naswot=screen.score(candidate) if screen else None)
        log.append(record.to_dict())
        if view is not None:
            view.trial_finished(record.to_dict(), log)
        return record.score if record.status == TrialStatus.OK else 0.0

    if keep_going():
        run_strategy(config.strategy, {n: c.values for n, c in space.choices.items()}, objective, feasible,
                     keep_going, seed=config.seed, population=population_size(config.trials))
    best = log.best()
    if view is not None:
        view.finish(log)
    if best is None:
        reasons = sorted({r["reason"] for r in log.records if r.get("reason")})
        raise SearchFailed(f"all {len(log)} trials failed" + (f": {'; '.join(reasons[:3])}" if reasons else "")
                           if len(log) else "the strategy proposed no candidate within the budget")
    arch = space.resolve(best["candidate"])
    winner = {
        "format": WINNER_FORMAT, "nas_version": __version__,
        "space": identity["space"], "budget": budget.to_dict(),
        "candidate": best["candidate"], "architecture": arch.to_dict(), "summary": arch.summary(),
        "params": best["params"], "macs": best["macs"], "proxy_score": best["score"],
        "strategy": config.strategy, "trials": len(log), "seed": config.seed,
        "data": config.data_source, "normalize": {"mean": mean, "std": std},
        "proxy_recipe": recipe.to_dict(),
    }
    write_json(out / "winner.json", winner)
    return winner
