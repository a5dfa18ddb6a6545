"""Run a search: space -> budget filter -> strategy -> proxy training on a ladder of rungs ->
trials.jsonl -> winner.json.

Each candidate the strategy proposes trains on rung 0; after every result, the candidates that
successive halving promotes (nas.search.rungs) train on the next rung, going on from their own
weights. The strategy is told the score of the highest rung its candidate reached by then, and
the better score of each later promotion before it proposes again.

With a time limit, a promotion that is due starts first whenever its job fits in the time left,
and a new candidate is admitted while its rung-0 job fits. Nothing is held back for promotions
to come: a promotion becomes due only once the candidates below it have trained, so waiting
could never make room for it, and time kept back left the end of a search idle (the resnet-5m
search stopped with 23 of its 60 minutes left). A job that would overrun the limit is not
started, and one that overruns anyway is stopped at it (and not recorded).

Resuming: trials.jsonl is the strategy's memory. On a restart with the same settings the
strategy (seeded) proposes the same candidates in the same order; those already in the log are
answered from it without training, which rebuilds the strategy's state exactly. The promotions
the interrupted run owed are made when the replay reaches the last candidate it had trained,
and the search carries on from the first candidate it has not tried. No job is trained twice.

Seeds: every job of a network trains with a seed that follows from the search's seed and the network
alone (`training_seed`), not from the order it was drawn in: a network scores the same in any search
with that seed, so two searches that differ in one setting (say --min-share) are a paired comparison
on the networks both train, not two independent draws of rung 0's noise.

Twins: choices that differ only in knobs their blocks ignore (the expansion of a depthwise-separable
stage, say) build the same network. A proposal whose network was trained already is answered with
that network's score instead of being trained again (regularized evolution drew 3 such twins in its
first 32 candidates of spaces/tiny_mixer.py).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .. import __version__
from ..budget import Budget, estimate
from ..data import Dataset, channel_stats, check_compatible, holdout, subset
from ..errors import UserError
from ..execution import Execution, choose, default_batch_size
from ..files import save_torch, write_json
from ..records import TrialRecord, Winner
from ..spaces import Space
from ..spaces.space import candidate_key
from ..prescreen import Prescreen
from ..train import PROXY, Recipe
from .clock import Clock
from .jobs import DeadlineReached, Job, Trainer
from .rungs import Ladder, due_promotions
from .trials import TrialLog
from .workers import open_workers


STALE_PER_TRIAL, STALE_MIN = 50, 1000  # a search stops after this many useless proposals in a row
DEFAULT_TRIALS = 30  # candidates, where neither --trials nor --time says


def training_seed(seed: int, network: str) -> int:
    """The seed of every job of one network (initial weights, data order): a function of the search's
    seed and the network alone, so a network scores the same whenever a search draws it, and two searches
    with the same seed score the networks they share alike (a paired comparison of two settings)."""
    digest = hashlib.sha256(f"{seed}:{network}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def population_size(trials: int | None) -> int:
    """Regularized evolution's population (and RL's batch): a third of the trials, 4 to 20."""
    return 20 if trials is None else max(4, min(20, trials // 3))


@dataclass
class SearchConfig:
    space_path: str
    budget: Budget
    strategy: str = "evolution"
    trials: int | None = None  # candidates trained on rung 0; None: as many as `time` allows, else DEFAULT_TRIALS
    time: float | None = None  # seconds for the whole search, resumes included
    recipe: Recipe = field(default_factory=lambda: PROXY)  # its epochs: the last rung's
    rungs: int = 3  # successive halving: rung k trains recipe.epochs / eta**(rungs-1-k) epochs (1/4, 1, 4)
    eta: int = 4  # and promotes its best 1/eta to the next rung
    min_share: float = 0.5  # train only candidates using at least this share of the budget (0: any)
    seed: int = 0
    val_fraction: float = 0.1  # of the training split, held out to score the proxy
    data_fraction: float = 1.0  # of what is left, used to train the proxy
    data_source: str = "cifar10"
    device: str | None = None
    execution: Execution | None = None  # None: chosen for `device` (see nas.execution)
    prescreen: float | None = None  # keep only candidates in this top fraction by NASWOT score
    workers: int = 1  # jobs at once, each in a Dask worker process of a local cluster where more than 1
    scheduler: str | None = None  # or on the Dask cluster whose scheduler is here (tcp://HOST:PORT)
    command: str = ""  # the command line that started it, for the report
    started: float | None = None  # time.monotonic() when the command began: its start-up counts against `time`

    @property
    def ladder(self) -> Ladder:
        return Ladder(self.recipe.epochs, self.rungs, self.eta)

    @property
    def max_trials(self) -> int | None:
        return self.trials if self.trials is not None or self.time is not None else DEFAULT_TRIALS

    def identity(self, space: Space) -> dict:
        """What must match for a run directory to be resumed rather than refused (the trial
        count and the time are not: a search may be resumed to go on for longer)."""
        return {
            "space": {"path": self.space_path, "name": space.name, "fingerprint": space.fingerprint()},
            "budget": self.budget.to_dict(), "strategy": self.strategy, "seed": self.seed,
            "recipe": self.recipe.to_dict(), "ladder": self.ladder.to_dict(), "min_share": self.min_share,
            "val_fraction": self.val_fraction, "data_fraction": self.data_fraction, "data": self.data_source,
            "prescreen": self.prescreen,
        }


class SearchFailed(UserError):
    """Every trial failed."""


class Planner:
    """Expected seconds of each rung's jobs, from the jobs done so far: a rung's own mean where it
    has results, else rung 0's scaled by the ladder's relative cost."""

    def __init__(self, log: TrialLog, ladder: Ladder):
        self.log, self.ladder = log, ladder

    def job_seconds(self, rung: int) -> float | None:
        here = [r.seconds for r in self.log.records if r.rung == rung]
        if here:
            return sum(here) / len(here)
        first = [r.seconds for r in self.log.records if r.rung == 0]
        return sum(first) / len(first) * self.ladder.relative_cost(rung) if first else None

    def admits_candidate(self, remaining: float) -> bool:
        """Does a new candidate's rung-0 job fit in `remaining` seconds? (See the module's docstring
        for why no time is held back for the promotions it may bring.)"""
        first = self.job_seconds(0)
        return first is None or first <= remaining


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


def check_settings(config: SearchConfig) -> None:
    """The search's own settings, checked before anything is read or written."""
    if config.rungs < 1 or config.eta < 2:
        raise UserError(f"successive halving needs at least 1 rung and eta of at least 2 "
                        f"(got {config.rungs} rungs, eta {config.eta})")
    if not 0 <= config.min_share < 1:
        raise UserError(f"the budget share must lie in [0, 1), not {config.min_share:g}")
    if config.time is not None and config.time <= 0:
        raise UserError(f"the time must be positive, not {config.time:g}")
    if config.workers < 1:
        raise UserError(f"--workers must be at least 1, not {config.workers}")
    if config.scheduler is not None:
        if config.workers > 1:
            raise UserError("--workers starts a local cluster and --scheduler joins a running one: give one of them")
        if not re.fullmatch(r"(tcp|tls)://[^\s:/]+:\d{1,5}", config.scheduler):
            raise UserError(f"--scheduler wants a Dask scheduler's address, tcp://HOST:PORT, not {config.scheduler!r}")


def _unchanged_winner(out: Path, log: TrialLog) -> Winner | None:
    """winner.json as an earlier run wrote it, if the log has not changed since."""
    best = log.best()
    if best is None or not (out / "winner.json").exists():
        return None
    earlier = Winner.load(out / "winner.json", check_space=False)
    same = earlier.trials == len(log) and earlier.candidate == best.candidate and earlier.proxy_score == best.score
    return earlier if same else None


def run_search(space: Space, config: SearchConfig, data: Dataset, out: str | Path, view=None) -> Winner:
    """Search and return the winner record (also written to out/winner.json)."""
    from .nni_adapter import Proposer

    check_settings(config)
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
    clock = Clock(out / "clock.json", config.time, started=config.started)
    budget, ladder = config.budget, config.ladder
    trainer = Trainer(train_split, val_split, config.recipe, ladder, mean, std, execution, config.data_fraction)
    snapshots = out / "snapshots"  # where each rung leaves the weights the next one goes on from
    planner = Planner(log, ladder)
    stale = 0  # proposals in a row that were already tried or over budget
    running: dict[tuple[int, int], Job] = {}  # (trial, rung) -> the job training now
    unanswered: dict[str, dict] = {}  # candidates trained on rung 0 whose proposal is not answered yet
    told: dict[int, int] = {}  # trial -> the rung whose score the strategy was last told (-1: failed)
    ended_early: str | None = None  # why proposing stopped before the time or trial count ran out
    jobs_started = 0  # by this run (a run of a search that has ended starts none)

    def snapshot(trial: int, rung: int) -> Path:
        return snapshots / f"trial-{trial}-rung-{rung}.pt"

    def candidates_started() -> int:
        return len(log) + sum(1 for trial, rung in running if rung == 0)

    def admits_another() -> bool:
        """Is there trial count, and time for its rung-0 job, for one more candidate?"""
        if config.max_trials is not None and candidates_started() >= config.max_trials:
            return False
        return config.time is None or planner.admits_candidate(clock.remaining())

    screen = Prescreen(space, budget, train_split, mean, std, config.prescreen, config.seed) if config.prescreen else None

    fits: dict[str, bool] = {}  # candidate key -> within the budget (strategies draw the same ones again)

    def network(candidate: dict) -> str:
        return json.dumps(space.resolve(candidate).to_dict(), sort_keys=True)

    first_of: dict[str, dict] = {}  # network -> the first candidate trained as it (or training now)
    for r in log.records:
        first_of.setdefault(network(r.candidate), r.candidate)
    latest = 0  # the trial last proposed: started, or answered from the log on a replay

    def feasible(candidate: dict) -> bool:
        key = candidate_key(candidate)
        if key not in fits:
            cost = estimate(space.resolve(candidate))
            fits[key] = budget.fits(cost) and budget.use(cost) >= config.min_share
        return fits[key] and (screen is None or screen.keeps(candidate))

    def highest(trial: int, cutoff: int | None) -> TrialRecord | None:
        """The trial's highest-rung result among the first `cutoff` records of the log."""
        seen = [r for r in log.records[:cutoff] if r.trial == trial and r.ok]
        return max(seen, key=lambda r: r.rung) if seen else None

    def answer(candidate: dict) -> None:
        """Tell the strategy the score of the highest rung the candidate has reached, and give it the
        better scores of the candidates it was told of before that have since been promoted. Up to
        now, that is; for a replayed candidate, up to when the next one was first trained."""
        nonlocal latest
        trial = log.rungs(candidate)[0].trial
        latest = max(latest, trial)
        cutoff = next((i for i, r in enumerate(log.records) if r.rung == 0 and r.trial > trial), None)
        best = highest(trial, cutoff)
        proposer.report(candidate, best.score if best else 0.0)
        told[trial] = best.rung if best else -1
        tell_promotions(cutoff)

    def answer_twin(candidate: dict, twin: dict) -> None:
        """Tell the strategy the score of the same network trained as `twin`: its highest rung up to
        now, or, on a replay, up to when the candidate after the one last proposed was first trained
        (which is what the first run told it)."""
        cutoff = next((i for i, r in enumerate(log.records) if r.rung == 0 and r.trial > latest), None)
        best = highest(log.rungs(twin)[0].trial, cutoff)
        proposer.report(candidate, best.score if best else 0.0)

    def tell_promotions(cutoff: int | None) -> None:
        for trial, rung in told.items():
            best = highest(trial, cutoff)
            if best is not None and best.rung > rung:
                proposer.rescore(best.candidate, best.score)
                told[trial] = best.rung

    def start_job(trial: int, rung: int, candidate: dict) -> None:
        nonlocal jobs_started
        jobs_started += 1
        arch = space.resolve(candidate)
        below = snapshot(trial, rung - 1)
        start = torch.load(below, map_location="cpu", weights_only=False) if rung > 0 and below.exists() else None
        job = Job(trial, rung, candidate, arch, seed=training_seed(config.seed, network(candidate)),
                  start=start, seconds_left=clock.remaining() if config.time is not None else None)
        running[job.key] = job
        workers.submit(job)
        if view is not None:
            cost = estimate(arch)
            view.job_started({"trial": trial, "rung": rung, "candidate": candidate, "summary": arch.summary(),
                              "params": cost.params, "macs": cost.macs, "epochs": ladder.epochs(rung)})

    def propose_next() -> bool:
        """Ask the strategy for a candidate and start it on rung 0, answering at once the ones
        not to train (tried already, as itself or as a twin, or outside the budget); False once
        nothing more will come."""
        nonlocal stale, ended_early, latest
        stale_limit = STALE_PER_TRIAL * (config.max_trials or len(log) + 1) + STALE_MIN
        while stale < stale_limit:
            if not admits_another():  # thousands of useless proposals can take seconds: the clock runs on
                return False
            try:
                candidate = proposer.propose(timeout=clock.remaining() if config.time is not None else None)
            except TimeoutError:  # the strategy was still drawing at the deadline
                raise DeadlineReached() from None
            if candidate is None:
                ended_early = (f"{config.strategy} found no untried candidate within the budget "
                               f"({sum(fits.values()):,} of the {len(fits):,} it drew fit)")
                return False
            shape = network(candidate)
            twin = first_of.get(shape)
            if log.rungs(candidate):  # replay on resume, or a strategy repeating itself
                stale += 1
                answer(candidate)
            elif twin is not None and log.rungs(twin):  # the same network, trained already
                stale += 1
                answer_twin(candidate, twin)
            elif twin is not None or not feasible(candidate):  # the same network training now, or over budget
                stale += 1
                proposer.report(candidate, 0.0)
            else:
                stale = 0
                trial = max([r.trial for r in log.records] + [t for t, _ in running], default=0) + 1
                first_of[shape] = candidate
                latest = trial
                start_job(trial, 0, candidate)
                return True
        ended_early = (f"{config.strategy}'s last {stale:,} proposals were all tried already (or their twins) "
                       f"or outside the budget")
        return False

    proposing = True

    def fill() -> None:
        """Give every free worker a job: a promotion that is due (highest rung first), else,
        once every candidate trained so far has been answered, a new candidate."""
        nonlocal proposing
        while len(running) < workers.slots:
            due = [(r, k) for r, k in due_promotions(log.records, ladder, set(running))
                   if (planner.job_seconds(k) or 0.0) <= clock.remaining()]
            if due:
                record, rung = due[0]
                start_job(record.trial, rung, record.candidate)
                continue
            for key, candidate in list(unanswered.items()):
                answer(candidate)
                del unanswered[key]
            tell_promotions(None)
            if not (proposing and admits_another() and propose_next()):
                proposing = False
                return

    def on_step(step: int, total: int) -> None:
        clock.tick()
        if clock.remaining() <= 0:
            raise DeadlineReached()
        if view is not None:
            view.job_progress(step, total)

    def finish_job(result) -> None:
        job = running.pop(result.job.key)
        if result.record is None:  # a worker stopped it at the deadline
            raise DeadlineReached()
        record = replace(result.record, elapsed=round(clock.elapsed(), 3),
                         naswot=screen.score(job.candidate) if screen else None)
        if result.snapshot is not None and job.rung + 1 < ladder.rungs:
            save_torch(snapshot(job.trial, job.rung), result.snapshot)
        log.append(record)
        clock.save()
        if job.rung > 0:
            snapshot(job.trial, job.rung - 1).unlink(missing_ok=True)  # nothing goes on from it any more
        else:
            unanswered[candidate_key(job.candidate)] = job.candidate
        if view is not None:
            view.job_finished(record, log)

    workers = open_workers(trainer, out, config.workers, config.scheduler)
    proposer = None
    try:
        if view is not None:
            view.start(config, space, resumed=len(log), clock=clock, where=workers.describe)
        proposer = Proposer(config.strategy, {n: c.values for n, c in space.choices.items()}, feasible,
                            seed=config.seed, population=population_size(config.max_trials), slots=workers.slots)
        fill()
        while running:
            timeout = clock.remaining() if config.time is not None else None
            finish_job(workers.next_result(timeout=timeout, on_step=on_step))
            fill()
    except DeadlineReached:
        pass  # the jobs in flight are dropped; everything finished is in the log
    finally:
        workers.close()
        if proposer is not None:
            proposer.close()
    best = log.best()
    if view is not None:
        view.finish(log, ended_early)
    earlier = _unchanged_winner(out, log) if jobs_started == 0 else None
    if earlier is not None:
        return earlier  # the same command after the search ended: its files stay as they were
    clock.save()
    if best is None:
        reasons = sorted({r.reason for r in log.records if r.reason})
        if len(log):
            raise SearchFailed(f"all {len(log)} trials failed" + (f": {'; '.join(reasons[:3])}" if reasons else ""))
        raise SearchFailed("no candidate within the budget was trained"
                           + (" in the time given" if config.time is not None else ""))
    winner = Winner(space=identity["space"], budget=budget, candidate=best.candidate,
                    architecture=space.resolve(best.candidate), params=best.params, macs=best.macs,
                    proxy_score=best.score, proxy_rung=best.rung, proxy_epochs=best.epochs,
                    strategy=config.strategy, trials=len(log), seed=config.seed,
                    search_seconds=round(clock.elapsed(), 1), data=config.data_source,
                    normalize={"mean": mean, "std": std}, proxy_recipe=config.recipe.to_dict(),
                    ladder=ladder.to_dict())
    winner.save(out / "winner.json")
    return winner
