import pytest

from nas.budget import (Budget, BudgetError, count_params, estimate, fvcore_macs, parse_budget, parse_count,
                        ptflops_macs)
from nas.spaces import builtin

from .test_spaces import feasible_samples

# (space, parameter limit for the sample, candidates checked): 100 per space, kept to sizes
# that build quickly; params are checked on every one, MACs against both counters.
CASES = [("tiny", 200_000), ("gated", 3_000_000), ("resnet", 5_000_000), ("tiny_convmixer", 60_000)]


@pytest.mark.parametrize("name,limit", CASES)
def test_estimates_are_exact_on_100_candidates(name, limit):
    space = builtin(name)
    for cand in feasible_samples(space, 100, limit, seed=3):
        arch = space.resolve(cand)
        cost = estimate(arch)
        model = arch.build()
        assert cost.params == count_params(model), arch.summary()
        fv, pt = fvcore_macs(model), ptflops_macs(model)
        assert abs(cost.macs - fv) <= 0.01 * fv, (arch.summary(), cost.macs, fv)
        assert abs(cost.macs - pt) <= 0.01 * pt, (arch.summary(), cost.macs, pt)


def test_estimator_sweeps_quickly_enough_to_prune_before_training():
    # counting must cost far less than training: the estimator never builds a module (a build
    # would allocate parameters), checked on 50 feasible candidates of the 5M space.
    import torch
    space = builtin("resnet")
    before = torch.nn.Module.__init__
    calls = []
    torch.nn.Module.__init__ = lambda self, *a, **k: (calls.append(1), before(self, *a, **k))[1]
    try:
        for cand in feasible_samples(space, 50, 10**9, seed=4):
            estimate(space.resolve(cand))
    finally:
        torch.nn.Module.__init__ = before
    assert calls == []


@pytest.mark.parametrize("text,value", [("50000", 50_000), ("50k", 50_000), ("50K", 50_000), ("5M", 5_000_000),
                                        ("1.5M", 1_500_000), ("50_000", 50_000), ("2G", 2 * 10**9)])
def test_parse_count(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text", ["", "5Q", "-5", "0", "abc", "1.5", "5 M M"])
def test_parse_count_rejects(text):
    with pytest.raises(BudgetError):
        parse_count(text)


def test_budget_files(tmp_path):
    assert parse_budget("budgets/tiny-50k.toml") == Budget(50_000, None, "tiny-50k")
    assert parse_budget("budgets/resnet-5m.toml").max_params == 5_000_000
    assert parse_budget("budgets/mobile-50k-20m.toml").max_macs == 20_000_000
    assert parse_budget("50k", "20M") == Budget(50_000, 20_000_000, "50k params")
    assert parse_budget(None, "20M").max_params is None
    bad = tmp_path / "bad.toml"
    bad.write_text("params = [1")
    with pytest.raises(BudgetError, match="not valid TOML"):
        parse_budget(str(bad))
    bad.write_text("flops = 1")
    with pytest.raises(BudgetError, match="unknown keys"):
        parse_budget(str(bad))
    with pytest.raises(BudgetError, match="not found"):
        parse_budget(str(tmp_path / "missing.toml"))


def test_budget_fits_and_use():
    from nas.budget import Cost
    b = Budget(100, 1000)
    assert b.fits(Cost(100, 1000)) and not b.fits(Cost(101, 10)) and not b.fits(Cost(1, 1001))
    assert b.use(Cost(50, 900)) == 0.9


@pytest.mark.parametrize("name,macs", [("gated_airbench", 260_000_000), ("resnet_airbench", 200_000_000)])
def test_the_airbench_shaped_spaces_are_counted_exactly_and_stay_in_their_family(name, macs):
    """Five feasible candidates each: every stage is the family the assignment asks for, and the
    estimate agrees with the built network and with fvcore."""
    import random
    space, rng, budget, checked = builtin(name), random.Random(4), Budget(5_000_000, macs), 0
    family = "gated" if name.startswith("gated") else "residual"
    while checked < 5:
        arch = space.resolve(space.sample(rng))
        cost = estimate(arch)
        if not budget.fits(cost):
            continue
        assert {stage.block for stage in arch.stages} == {family}
        model = arch.build()
        assert cost.params == count_params(model), arch.summary()
        fv = fvcore_macs(model)
        assert abs(cost.macs - fv) <= 0.01 * fv, (arch.summary(), cost.macs, fv)
        checked += 1
