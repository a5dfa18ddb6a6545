"""The one module that speaks NNI. Everything else sees candidates as plain dicts, through a
two-call interface: `Proposer.propose()` -> a candidate, `Proposer.report(candidate, score)`, and a
third, `Proposer.rescore(candidate, score)`, once a reported candidate has a higher rung's score.

NNI 3.0's strategies are driven directly (no NasExperiment: it starts a manager, writes under
~/nni-experiments and was seen to hang there in filelock): our space becomes a flat dict of
nni Categoricals wrapped as a model space, and the strategy runs in a thread of its own against
an execution engine (NNI's public ExecutionEngine interface) that hands each submitted model to
the caller's thread and waits for its score. The caller trains, logs and reports on its own
thread; the strategy's callbacks run there, inside report(), while the strategy's thread waits.

Budget pruning: random, evolution and RL resample when a candidate violates a constraint, so
over-budget candidates are rejected inside NNI's space. Grid and TPE stop on a violation, so
for them the objective itself declines over-budget candidates (reported as 0, never trained).
NNI gives up after 500 rejected draws in a row (random, evolution) or 20 (RL) and ends the
strategy; where a budget leaves a small share of the space (spaces/resnet.py under 5M params
and 150M MACs: about 0.2%) that ended a one-hour search after two candidates. A draw costs one
budget estimate (about 60 us), so ours draw up to SAMPLING_TRIES times. RL's draws are slower
(each rejected one is a policy update) and its policy can settle where little fits, so where few
candidates fit RL may still end early (the search says so); evolution is the strategy for that.
"""
from __future__ import annotations

import collections
import contextlib
import io
import logging
import threading
import warnings
from typing import Callable

# gym (which NNI's RL strategy imports through tianshou) prints a deprecation notice on import
with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
    warnings.simplefilter("ignore")
    import nni
    from nni.mutable import Categorical, MutableDict
    from nni.mutable.exception import ConstraintViolation
    from nni.nas.evaluator import FunctionalEvaluator
    from nni.nas.execution import ExecutionEngine
    from nni.nas.execution.event import FinalMetricEvent, TrainingEndEvent
    from nni.nas.space import BaseModelSpace, ModelStatus, RawFormatModelSpace
    import nni.nas.strategy as strategies
    from nni.nas.strategy.utils import RetrySamplingHelper

from ..errors import UserError
from ..spaces.space import candidate_key
from .strategies import STRATEGIES

_REJECTS_IN_SPACE = {"random", "evolution", "rl"}
SAMPLING_TRIES = 100_000  # rejected draws in a row before random or evolution gives up (a few seconds)
RL_SAMPLING_TRIES = 1_000  # RL's: each also updates its policy (reward 0), about 0.1 s a draw

for _name in ("nni", "tianshou"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class _Sample(dict):
    """A frozen candidate. (NNI keeps weak references to frozen models; a plain dict can't be one.)"""


class _ChoiceSpace(BaseModelSpace):
    def __init__(self, choices: dict[str, tuple], feasible: Callable[[dict], bool] | None):
        self._dict = MutableDict({name: Categorical(list(values), label=name) for name, values in choices.items()})
        self._feasible = feasible

    def leaf_mutables(self, is_leaf):
        yield from self._dict.leaf_mutables(is_leaf)

    def check_contains(self, sample):
        error = self._dict.check_contains(sample)
        if error is None and self._feasible is not None and not self._feasible(self._pick(sample)):
            return ConstraintViolation("over budget")
        return error

    def _pick(self, sample) -> dict:
        return {name: sample[name] for name in self._dict}

    def freeze(self, sample):
        return _Sample(self._pick(sample))


class _ModelSpace(RawFormatModelSpace):
    def freeze(self, sample):
        # NNI's grid reuses one memo dict for every grid point: keep our own copy.
        return super().freeze(dict(sample))


class _SequentialTPE(strategies.TPE):
    """NNI's TPE strategy with its polling loop made sequential.

    NNI's loop sleeps one second after every proposal, waiting for asynchronous workers. Our
    engine's submit_models returns only once a slot is free, so the sleep only adds a second per
    candidate (and per over-budget candidate it declines). Same tuner, same calls, no sleep.
    It also lets a model's score be replaced (rescore) once it has trained on to a higher rung."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._places: dict = {}  # model -> [(parameter key, index of its record in the tuner's history)]

    def _run(self) -> None:
        space = {label: m.as_legacy_dict() for label, m in self.model_space.simplify().items()}
        with self._thread_lock:
            self.tuner.update_search_space(space)
        while self.engine.budget_available():
            with self._thread_lock:
                try:
                    param = self.tuner.generate_parameters(self._model_count)
                except nni.NoMoreTrialError:
                    break
                model = self.model_space.freeze(param)
                self._model_to_id[model] = self._model_count
                self._model_count += 1
            self.engine.submit_models(model)

    def on_metric(self, event: FinalMetricEvent) -> None:
        # NNI's on_metric, remembering where in the tuner's history each model's score went
        with self._thread_lock:
            model_id = self._model_to_id[event.model]
            if event.model.sample is None:
                return
            history = self.tuner._history
            self._places[event.model] = [(key, len(history[key])) for key in self.tuner._params[model_id]]
            self.tuner.receive_trial_result(model_id, event.model.sample, event.metric)

    def rescore(self, model, score: float) -> None:
        """Replace the model's score in the tuner's history (TPE splits that history into good and bad)."""
        with self._thread_lock:
            for key, i in self._places.get(model, ()):
                self.tuner._history[key][i] = self.tuner._history[key][i]._replace(loss=-score)


class _StoppableRetry(RetrySamplingHelper):
    """NNI's draw-until-it-fits loop, ended as soon as the search is over: SAMPLING_TRIES draws
    take seconds, and neither the deadline nor close() should wait for them."""

    def __init__(self, retries: int, stopped: Callable[[], bool]):
        super().__init__(retries)
        self.stopped = stopped

    def retry(self, func, *args, **kwargs):
        for _ in range(self.retries):
            if self.stopped():
                return None
            try:
                return func(*args, **kwargs)
            except self.exception_types:
                pass
        return None


class _Random(strategies.Random):
    _duplicate_retry = SAMPLING_TRIES


class _PolicyBasedRL(strategies.PolicyBasedRL):
    _invalid_patience = RL_SAMPLING_TRIES


class _Evolution(strategies.RegularizedEvolution):
    """NNI's regularized evolution, safe with many trials in flight: once the first population is
    proposed it mutates the best of a sample of the population, and NNI's best_parent() calls
    max([]) while no result has come back yet. Until one has, it proposes a random candidate.
    It draws up to SAMPLING_TRIES times for a candidate within the budget."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._retry_helper = RetrySamplingHelper(SAMPLING_TRIES)

    def new_individual(self):
        if not self._population:
            return self.random()
        return super().new_individual()

    def rescore(self, model, score: float) -> None:
        """Replace the model's score in the population (parents are the best of a sample of it)."""
        for individual in self._population:
            if individual.x == model.sample:
                individual.y = score


def _make_strategy(name: str, seed: int, population: int):
    if name == "random":
        return _Random(dedup=True, seed=seed)
    if name == "grid":
        return strategies.GridSearch(shuffle=True, seed=seed)
    if name == "evolution":
        return _Evolution(population_size=population, sample_size=max(2, population // 4), seed=seed, dedup=True)
    if name == "tpe":
        return _SequentialTPE(optimize_mode="maximize", seed=seed)
    if name == "rl":
        import torch
        torch.manual_seed(seed)
        return _PolicyBasedRL(samples_per_update=max(2, population // 2), reward_for_invalid=0.0)
    raise ValueError(f"unknown strategy {name!r}; one of {', '.join(STRATEGIES)}")


class StrategyError(UserError):
    """An NNI strategy that stopped with an error of its own."""


class _HandOver(ExecutionEngine):
    """NNI's engine contract, met by handing models to the caller: submit_models() queues them
    and returns once fewer than `slots` are waiting for a score; wait_models() waits for scores."""

    def __init__(self, slots: int):
        super().__init__()
        self.slots = slots
        self.cv = threading.Condition()
        self.queued: collections.deque = collections.deque()  # submitted, not yet proposed
        self.history: list = []
        self.open_models = 0  # submitted, not yet scored
        self.closed = False

    def submit_models(self, *models) -> None:
        with self.cv:
            for model in models:
                if self.closed:
                    return
                model.status = ModelStatus.Training
                self.history.append(model)
                self.queued.append(model)
                self.open_models += 1
            self.cv.notify_all()
            self.cv.wait_for(lambda: self.closed or self.open_models < self.slots)

    def list_models(self, status=None):
        return [m for m in self.history if status is None or m.status == status]

    def idle_worker_available(self) -> bool:
        with self.cv:
            return not self.closed and self.open_models < self.slots

    def budget_available(self) -> bool:
        return not self.closed

    def wait_models(self, *models) -> None:
        with self.cv:
            self.cv.wait_for(lambda: self.closed or all(m.status.completed() for m in (models or self.history)))

    def shutdown(self) -> None:
        with self.cv:
            self.closed = True
            self.cv.notify_all()


class Proposer:
    """NNI strategy `name` as ask/tell. propose() returns the next candidate (a dict), or None once
    the strategy has nothing more to propose; report(candidate, score) answers it. Strategies that
    reject in the space only propose candidates `feasible` accepts; the rest (grid, TPE) may
    propose any, and the caller declines those (reports 0, trains nothing).

    Up to `slots` proposals may be open (proposed, not yet reported) at once, for trials run in
    parallel: the strategy proposes ahead while fewer are open. propose() waits for the strategy,
    so call it only while fewer than `slots` of its proposals are open."""

    def __init__(self, name: str, choices: dict[str, tuple], feasible: Callable[[dict], bool], seed: int = 0,
                 population: int = 20, slots: int = 1):
        self.name = name
        self.strategy = _make_strategy(name, seed, population)
        self.engine = _HandOver(slots)
        if isinstance(getattr(self.strategy, "_retry_helper", None), RetrySamplingHelper):
            helper = self.strategy._retry_helper
            self.strategy._retry_helper = _StoppableRetry(helper.retries, lambda: self.engine.closed)
        # proposed, not yet reported: candidate key -> its NNI models (a strategy may propose one twice)
        self.pending: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.answered: dict[str, object] = {}  # candidate key -> its NNI model, once reported
        self.done, self.error = False, None
        space = _ChoiceSpace(choices, feasible if name in _REJECTS_IN_SPACE else None)
        model_space = _ModelSpace.from_model(space, FunctionalEvaluator(lambda sample: None))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.strategy.initialize(model_space, self.engine)
        self.thread = threading.Thread(target=self._run, name=f"nni-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.strategy.run()
        except BaseException as e:  # reported to the caller by propose()
            self.error = e
        with self.engine.cv:
            self.done = True  # nothing more will be proposed
            self.engine.cv.notify_all()
        # NNI's contract: after the strategy returns, wait for the models still in flight (the
        # caller answers them; close() ends the wait)
        self.engine.wait_models()

    def propose(self, timeout: float | None = None) -> dict | None:
        """The next candidate, or None once the strategy has nothing more; TimeoutError if it
        has none ready within `timeout` seconds (a strategy drawing candidates that don't fit)."""
        engine = self.engine
        with engine.cv:
            if not engine.cv.wait_for(lambda: engine.queued or self.done, timeout=timeout):
                raise TimeoutError(f"{self.name} proposed nothing in {timeout:.1f} s")
            if engine.queued:
                model = engine.queued.popleft()
                candidate = dict(model.executable_model())
                self.pending[candidate_key(candidate)].append(model)
                return candidate
        if self.error is not None and not engine.closed:
            raise StrategyError(f"NNI strategy {self.name!r} stopped: {type(self.error).__name__}: {self.error}") \
                from self.error
        return None

    def report(self, candidate: dict, score: float) -> None:
        key = candidate_key(candidate)
        model = self.pending[key].popleft()
        if not self.pending[key]:
            del self.pending[key]
        self.answered[key] = model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.engine.dispatch_model_event(FinalMetricEvent(model, float(score)))
            self.engine.dispatch_model_event(TrainingEndEvent(model, ModelStatus.Trained))
        with self.engine.cv:
            self.engine.open_models -= 1
            self.engine.cv.notify_all()

    def rescore(self, candidate: dict, score: float) -> None:
        """A better-informed score for a candidate already reported (it trained on to a higher rung).
        The strategies that keep scores take it: evolution's population, TPE's history. Random and
        grid keep none; RL has already made its policy step with the first score (on-policy)."""
        model = self.answered.get(candidate_key(candidate))
        rescore = getattr(self.strategy, "rescore", None)
        if model is not None and rescore is not None:
            rescore(model, float(score))

    def close(self) -> None:
        """Stop the strategy (its thread ends at its next call into the engine)."""
        self.engine.shutdown()
        self.thread.join(timeout=5)
