import json
import random

import pytest
import torch

from nas.budget import Budget, estimate
from nas.spaces import Architecture, Space, Stage, Stem, builtin, choice, irange
from nas.spaces.gated import GatedKConvBlock

SPACES = ["tiny", "gated", "resnet", "tiny_convmixer", "tiny_convmixer_wide"]


def feasible_samples(space, n, max_params, seed=0):
    rng, out = random.Random(seed), []
    budget = Budget(max_params)
    while len(out) < n:
        cand = space.sample(rng)
        if budget.fits(estimate(space.resolve(cand))):
            out.append(cand)
    return out


@pytest.mark.parametrize("name", SPACES)
def test_space_files_hold_at_least_ten_thousand_candidates(name):
    assert builtin(name).size >= 10**4


def test_space_files_import_as_modules():
    from spaces.tiny import space as tiny
    from spaces.gated import space as gated
    from spaces.resnet import space as resnet
    assert (tiny.name, gated.name, resnet.name) == ("tiny", "gated", "resnet")
    assert tiny.fingerprint() == builtin("tiny").fingerprint()


@pytest.mark.parametrize("name,limit", [("tiny", 50_000), ("gated", 3_000_000), ("resnet", 5_000_000),
                                        ("tiny_convmixer", 50_000)])
def test_sampled_candidates_run_forward(name, limit):
    space = builtin(name)
    for cand in feasible_samples(space, 4, limit, seed=1):
        model = space.build(cand).eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, 32, 32))
        assert out.shape == (2, 10)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", SPACES)
def test_candidate_json_module_round_trip(name):
    space = builtin(name)
    cand = feasible_samples(space, 1, 5_000_000, seed=2)[0]
    text = json.dumps(cand)
    again = json.loads(text)
    assert again == cand
    arch = space.resolve(again)
    assert Architecture.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    torch.manual_seed(0)
    a = space.build(cand).eval()
    b = Architecture.from_dict(arch.to_dict()).build().eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_unused_knobs_are_dropped_so_equal_architectures_compare_equal():
    space = Space("t", Stem(16), [Stage(choice("b", ["dwsep", "mbconv"]), 32, kernel=3,
                                        expansion=choice("e", [2, 4]))])
    assert space.resolve({"b": "dwsep", "e": 2}) == space.resolve({"b": "dwsep", "e": 4})
    assert space.resolve({"b": "mbconv", "e": 2}) != space.resolve({"b": "mbconv", "e": 4})


def test_a_choice_used_twice_ties_both_places():
    width = choice("w", [16, 32])
    space = Space("t", Stem(width), [Stage("conv", width), Stage("conv", 64)])
    arch = space.resolve({"w": 32})
    assert arch.stem_width == 32 and arch.stages[0].width == 32
    assert space.size == 2


@pytest.mark.parametrize("make,message", [
    (lambda: Space("t", Stem(16), []), "at least one stage"),
    (lambda: Space("t", Stem(16), [Stage("nope", 16)]), "unknown block"),
    (lambda: Space("t", Stem(16), [Stage("conv", 16, expansion=2)]), "takes 'expansion'"),
    (lambda: Space("t", Stem(choice("a", [1])), [Stage("conv", choice("a", [2]))]), "two different choices"),
    (lambda: Space("t", Stem(16), [Stage("conv", 16, downsample="sideways")]), "downsample"),
])
def test_malformed_spaces_are_rejected_with_a_reason(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_edges_name_the_numeric_choices_a_candidate_takes_at_an_end_of_their_range():
    space = Space("t", Stem(choice("stem", [16, 24, 32])),
                  [Stage(choice("b", ["conv", "dwsep", "mbconv"]), choice("w", [32, 64]), depth=irange("d", 1, 4),
                         kernel=choice("k", [3, 5, 7]))])
    # two-valued (w) and non-numeric (b) choices are never edges; depth 1 and stem 32 are
    edges = space.edges({"stem": 32, "b": "conv", "w": 64, "d": 1, "k": 5})
    assert edges == [("stem", 32, "highest"), ("d", 1, "lowest")]
    assert space.edges({"stem": 24, "b": "mbconv", "w": 32, "d": 3, "k": 7}) == [("k", 7, "highest")]
    assert space.edges({"stem": 24, "b": "dwsep", "w": 32, "d": 2, "k": 5}) == []


def test_validate_names_the_bad_value():
    space = Space("t", Stem(16), [Stage("conv", irange("w", 8, 16, 8))])
    space.validate({"w": 16})
    with pytest.raises(ValueError, match="w=12"):
        space.validate({"w": 12})
    with pytest.raises(ValueError, match="missing"):
        space.validate({})


@pytest.mark.parametrize("gate", ["softmax", "sigmoid", "tanh"])
@pytest.mark.parametrize("gate_hidden", [0, 8])
def test_gated_block_matches_its_formula(gate, gate_hidden):
    torch.manual_seed(0)
    k, cin, cout = 3, 6, 5
    block = GatedKConvBlock(cin, cout, stride=1, kernel=3, k=k, gate=gate, gate_hidden=gate_hidden).eval()
    with torch.no_grad():  # give BN non-trivial statistics
        block.bn.running_mean.uniform_(-1, 1)
        block.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(4, cin, 8, 8)
    g = {"softmax": lambda z: torch.softmax(z, 1), "sigmoid": torch.sigmoid, "tanh": torch.tanh}[gate]
    with torch.no_grad():
        a = g(block.attention(x.mean(dim=(2, 3))))  # a = g(W . SpatialAvgPool(X)), per sample
        weights = block.convs.weight.view(k, cout, cin, 3, 3)
        o = sum(a[:, i].view(-1, 1, 1, 1) * torch.nn.functional.conv2d(x, weights[i], padding=1) for i in range(k))
        bn = block.bn
        expected = torch.relu((o - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
                              * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))
        assert torch.allclose(block(x), expected, atol=1e-5)
        # the gate really is per sample: different inputs get different weights
        assert not torch.allclose(a[0], a[1])


def test_gated_block_residual_adds_the_shortcut():
    torch.manual_seed(0)
    plain = GatedKConvBlock(8, 8, residual=False).eval()
    res = GatedKConvBlock(8, 8, residual=True).eval()
    res.load_state_dict(plain.state_dict())
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        a = plain.gate(x)
        y = plain.convs(x).view(2, 3, 8, 6, 6)
        pre = plain.bn(torch.einsum("nk,nkchw->nchw", a, y))
        assert torch.allclose(res(x), torch.relu(pre + x), atol=1e-6)


def test_the_block_registry_is_consistent():
    """Each family registered once, with a cost function taking exactly its block's knobs and
    defaults, and a colour of its own; every family a built-in space uses is there."""
    import inspect
    import random
    import re

    from nas.spaces.network import BLOCKS
    from nas.spaces.registry import FAMILIES
    assert set(FAMILIES) == set(BLOCKS) >= {"conv", "residual", "dwsep", "mbconv", "mixer", "gated", "convpool",
                                            "convmixer"}
    for name, family in FAMILIES.items():
        cost_params = inspect.signature(family.cost).parameters
        assert list(cost_params)[:4] == ["cin", "cout", "stride", "size"], name
        cost_knobs = {k: p.default for k, p in list(cost_params.items())[4:]}
        assert cost_knobs == family.knobs(), name
        assert re.fullmatch(r"#[0-9a-f]{6}", family.colour), name
    colours = [f.colour for f in FAMILIES.values()]
    assert len(set(colours)) == len(colours)
    for space_name in SPACES:
        space = builtin(space_name)
        for stage in space.resolve(space.sample(random.Random(0))).stages:
            assert stage.block in FAMILIES


def test_resolve_writes_every_knob_with_its_default():
    space = Space("t", Stem(8), [Stage("mixer", 16, kernel=7)], act="relu")
    knobs = space.resolve({}).stages[0].knobs
    assert knobs == {"kernel": 7, "expansion": 2, "act": "relu", "layer_scale": 0.1}


def test_the_gated_blocks_channels_last_mix_is_the_same_sum_as_its_einsum():
    import torch

    from nas.spaces.gated import GatedKConvBlock

    torch.manual_seed(0)
    for k in (2, 3):
        block = GatedKConvBlock(6, 5, k=k, gate="softmax", gate_hidden=4, residual=True).eval()
        x = torch.randn(3, 6, 7, 7)
        y = block.convs(x)
        a = block.gate(x)
        fast = block.mix(a, y.contiguous(memory_format=torch.channels_last))
        assert fast.is_contiguous(memory_format=torch.channels_last)  # the layout is kept
        assert torch.allclose(fast, block.mix(a, y), atol=1e-6)
        assert torch.allclose(block(x.contiguous(memory_format=torch.channels_last)), block(x), atol=1e-5)


def test_convmixer_block_matches_its_formula_and_freezes_as_code():
    """pointwise(x + depthwise(x)) after a projection when the shape changes; the frozen model.py
    builds the same network, and the estimate counts it exactly."""
    from nas.budget import count_params
    from nas.export import model_source
    from nas.spaces.convmixer import ConvMixerBlock

    torch.manual_seed(0)
    for cin, cout, stride in ((8, 8, 1), (6, 8, 2)):
        block = ConvMixerBlock(cin, cout, stride=stride, kernel=5, act="relu").eval()
        x = torch.randn(2, cin, 8, 8)
        with torch.no_grad():
            z = block.project(x)
            expected = block.pointwise(z + block.depthwise(z))
            assert torch.allclose(block(x), expected)
            assert block(x).shape == (2, cout, 8 // stride, 8 // stride)
    assert isinstance(ConvMixerBlock(8, 8).project, torch.nn.Identity)

    space = Space("t", Stem(8), [Stage("convmixer", 8, depth=2, kernel=5),
                                 Stage("convmixer", 16, depth=2, downsample="stride", kernel=3)], num_classes=4)
    arch = space.resolve({})
    model = arch.build().eval()
    assert estimate(arch).params == count_params(model)
    namespace = {}
    exec(compile(model_source(arch, [0.5] * 3, [0.25] * 3), "model.py", "exec"), namespace)
    frozen = namespace["Net"]().eval()
    frozen.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(frozen(x), model(x), atol=1e-5)
