"""The speed issue's code paths on the CPU (their timings are benchmarks, not tests)."""
import json
import sys

import pytest
import torch

from nas.budget import Budget, count_params, estimate, fvcore_macs, ptflops_macs
from nas.prescreen import naswot
from nas.search import SearchConfig, run_search
from nas.spaces import Space, Stage, Stem, choice, load_space
from nas.train import PROXY
from nas.data import channel_stats

from .conftest import ROOT
from .synthetic import make_dataset, write_space


def test_airbench94_as_a_candidate_has_its_1_97m_parameters():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from airbench94 import space
    arch = space.resolve({})
    model = arch.build()
    assert estimate(arch).params == count_params(model) == 1_972_826
    assert estimate(arch).macs == fvcore_macs(model) == ptflops_macs(model)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("kernel", [3, 5])
def test_convpool_block_costs_are_exact(kernel):
    space = Space("cp", Stem(choice("s", [8, 12]), kernel=2),
                  [Stage("convpool", choice("w", [16, 24]), kernel=kernel), Stage("convpool", 32, depth=2)])
    for cand in space.enumerate():
        arch = space.resolve(cand)
        model = arch.build()
        assert estimate(arch).params == count_params(model)
        assert estimate(arch).macs == fvcore_macs(model) == ptflops_macs(model)


def test_naswot_is_deterministic_and_separates_networks():
    torch.manual_seed(0)
    images = torch.randn(32, 3, 32, 32)
    space = load_space(ROOT / "spaces" / "tiny.py")
    import random
    rng = random.Random(0)
    scores = []
    for _ in range(3):
        cand = space.sample(rng)
        a = naswot(space.build(cand), images)
        b = naswot(space.build(cand), images)
        assert a == b and a > 0
        scores.append(a)
    assert len(set(scores)) == 3


def test_prescreen_trains_only_the_top_fraction(tmp_path):
    from nas.prescreen import Prescreen
    space_file = write_space(tmp_path / "small.py")
    space = load_space(space_file)
    data = make_dataset()
    config = SearchConfig(str(space_file), Budget(6000), strategy="random", trials=3,
                          recipe=PROXY.with_(epochs=1, batch_size=64), prescreen=0.4)
    run_search(space, config, data, tmp_path / "run")
    records = [json.loads(l) for l in (tmp_path / "run" / "trials.jsonl").read_text().splitlines()]
    # rebuild the same screen: every trained candidate passed it, and it really excludes some
    from nas.data import holdout
    mean, std = channel_stats(data.train)
    screen = Prescreen(space, Budget(6000), holdout(data.train, 0.1, 0)[0], mean, std, 0.4, 0)
    assert all(r["naswot"] >= screen.threshold for r in records)
    feasible = [c for c in space.enumerate() if Budget(6000).fits(estimate(space.resolve(c)))]
    kept = sum(screen.keeps(c) for c in feasible)
    assert 0 < kept < len(feasible)
