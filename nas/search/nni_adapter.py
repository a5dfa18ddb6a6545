"""The one module that speaks NNI. Everything else sees candidates as plain dicts.

NNI 3.0's strategies are driven directly (no NasExperiment: it starts a manager, writes under
~/nni-experiments and was seen to hang there in filelock): our space becomes a flat dict of
nni Categoricals wrapped as a model space, our objective becomes a FunctionalEvaluator, and a
sequential engine runs it in this process until the caller says stop.

Budget pruning: random, evolution and RL resample when a candidate violates a constraint, so
over-budget candidates are rejected inside NNI's space. Grid and TPE stop on a violation, so
for them the objective itself declines over-budget candidates (reported as 0, never trained).
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Callable

# gym (which NNI's RL strategy imports through tianshou) prints a deprecation notice on import
with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
    warnings.simplefilter("ignore")
    import nni
    from nni.mutable import Categorical, MutableDict
    from nni.mutable.exception import ConstraintViolation
    from nni.nas.evaluator import FunctionalEvaluator
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.space import BaseModelSpace, RawFormatModelSpace
    import nni.nas.strategy as strategies

from ..errors import UserError
from .strategies import STRATEGIES

_REJECTS_IN_SPACE = {"random", "evolution", "rl"}

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


class _Engine(SequentialExecutionEngine):
    def __init__(self, keep_going: Callable[[], bool]):
        super().__init__(continue_on_failure=True)
        self._keep_going = keep_going

    def budget_available(self) -> bool:
        return self._keep_going()


class _SequentialTPE(strategies.TPE):
    """NNI's TPE strategy with its polling loop made sequential.

    NNI's loop sleeps one second after every proposal, waiting for asynchronous workers. Our
    engine trains each submitted model before it returns, so the sleep only adds a second per
    candidate (and per over-budget candidate it declines). Same tuner, same calls, no sleep."""

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


def _make_strategy(name: str, seed: int, population: int):
    if name == "random":
        return strategies.Random(dedup=True, seed=seed)
    if name == "grid":
        return strategies.GridSearch(shuffle=True, seed=seed)
    if name == "evolution":
        return strategies.RegularizedEvolution(population_size=population, sample_size=max(2, population // 4),
                                               seed=seed, dedup=True)
    if name == "tpe":
        return _SequentialTPE(optimize_mode="maximize", seed=seed)
    if name == "rl":
        import torch
        torch.manual_seed(seed)
        return strategies.PolicyBasedRL(samples_per_update=max(2, population // 2), reward_for_invalid=0.0)
    raise ValueError(f"unknown strategy {name!r}; one of {', '.join(STRATEGIES)}")


class StrategyError(UserError):
    """An NNI strategy that stopped with an error of its own."""


def run_strategy(name: str, choices: dict[str, tuple], objective: Callable[[dict], float],
                 feasible: Callable[[dict], bool], keep_going: Callable[[], bool], seed: int = 0,
                 population: int = 20) -> None:
    """Let NNI strategy `name` propose candidates (dicts) until keep_going() is False or it runs out.

    objective(candidate) -> score to maximise; it is only called with feasible candidates for
    strategies that reject in the space, and must decline the rest itself (return 0). An error in
    the objective stops the search and is raised here (NNI's engine would log it and go on)."""
    strategy = _make_strategy(name, seed, population)
    errors: list[BaseException] = []

    def evaluate(sample):
        try:
            score = objective(dict(sample))
        except BaseException as e:
            errors.append(e)
            raise
        nni.report_final_result(float(score))

    space = _ChoiceSpace(choices, feasible if name in _REJECTS_IN_SPACE else None)
    model_space = _ModelSpace.from_model(space, FunctionalEvaluator(evaluate))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strategy.initialize(model_space, _Engine(lambda: not errors and keep_going()))
        try:
            strategy.run()
        except Exception as e:
            if not errors:
                raise StrategyError(f"NNI strategy {name!r} stopped: {type(e).__name__}: {e}") from e
    if errors:
        raise errors[0]
