"""The whitened stem (airbench's frozen 2x2 whitening layer) as a space option: its filters whiten,
the estimator counts it exactly, training fits it once and never trains it, frozen code keeps it."""
import pytest
import torch

from nas.budget import count_params, estimate, fvcore_macs, ptflops_macs
from nas.data import channel_stats
from nas.execution import choose
from nas.export import model_source
from nas.spaces import Space, Stage, Stem, choice
from nas.spaces.layers import Whitening
from nas.spaces.space import Architecture
from nas.train import FULL, train

from .synthetic import make_dataset


def correlated_images(n=128, seed=0):
    """Images whose neighbouring pixels and channels are strongly correlated, as photos are."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.avg_pool2d(torch.randn(n, 1, 34, 34, generator=g), 3, 1)
    return base * torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1) + 0.1 * torch.randn(n, 3, 32, 32, generator=g)


def test_the_fitted_filters_whiten_the_patches_and_come_with_their_negatives():
    images = correlated_images()
    layer = Whitening(3, eps=1e-9)
    layer.fit(images)
    with torch.no_grad():
        out = layer(images) - layer.bias.view(1, -1, 1, 1)
    assert out.shape == (128, 24, 31, 31)  # 2 x 3 channels x 2x2 patch; no padding
    first, second = out[:, :12], out[:, 12:]
    assert torch.allclose(second, -first, atol=1e-5)
    flat = first.permute(0, 2, 3, 1).reshape(-1, 12).double()
    cov = flat.T @ flat / len(flat)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.double), atol=2e-3)  # the patches whitened
    assert [name for name, _ in layer.named_parameters()] == ["bias"]  # the filters are not trained


def white_arch(block, **knobs):
    return Architecture(stem_width=16, stem_kernel=3, stem_whiten=True, stages=[
        dict(block=block, width=24, depth=1, downsample="none", knobs=knobs),
        dict(block=block, width=32, depth=2, downsample="stride", knobs=knobs),
        dict(block=block, width=48, depth=1, downsample="maxpool", knobs=knobs)])


@pytest.mark.parametrize("block,knobs", [("residual", dict(kernel=3, skip_kernel=1)),
                                         ("gated", dict(kernel=3, k=2, gate="softmax", gate_hidden=16, residual=True)),
                                         ("conv", dict(kernel=3))])
def test_the_estimator_counts_a_white_stem_exactly(block, knobs):
    arch = white_arch(block, **knobs)
    cost, model = estimate(arch), arch.build()
    assert cost.params == count_params(model)
    for counted in (fvcore_macs(model), ptflops_macs(model)):
        assert abs(cost.macs - counted) <= 0.01 * counted, (cost.macs, counted)
    assert arch.summary().startswith("white stem 16")


def test_a_space_can_search_the_white_stem_and_old_records_load_without_it():
    space = Space("s", Stem(16, whiten=choice("white", [False, True])), [Stage("conv", 8, kernel=3)])
    assert space.resolve({"white": True}).stem_whiten and not space.resolve({"white": False}).stem_whiten
    plain = Space("s", Stem(16), [Stage("conv", 8, kernel=3)])
    old = plain.resolve({}).to_dict()
    del old["stem_whiten"]  # a record written before the option existed
    assert Architecture.from_dict(old).stem_whiten is False
    assert plain.fingerprint() == Space("s", Stem(16, whiten=False), [Stage("conv", 8, kernel=3)]).fingerprint()


def test_training_fits_the_filters_once_before_it_starts_and_never_changes_them():
    data = make_dataset(256, 64)
    mean, std = channel_stats(data.train)
    arch = white_arch("residual", kernel=3, skip_kernel=1)
    torch.manual_seed(0)
    model = arch.build()
    recipe, execution = FULL.with_(epochs=2, batch_size=64), choose("cpu", precision="fp32", compile="off")
    epoch_one = {}
    train(model, data.train, data.test, recipe.with_(epochs=1), mean, std, execution=execution,
          on_checkpoint=lambda epoch, m, opt: epoch_one.update(opt=opt.state_dict()))
    white = model.stem[0]
    fitted = white.weight.clone()
    assert fitted.abs().sum() > 0
    expected = Whitening(3)
    expected.fit((torch.from_numpy(data.train.x).permute(0, 3, 1, 2).float()
                  - torch.tensor(mean).view(1, 3, 1, 1) * 255) / (torch.tensor(std).view(1, 3, 1, 1) * 255))
    assert torch.allclose(fitted, expected.weight, atol=1e-4)
    # a resumed run (epoch 2 of 2) goes on with the filters it has: it neither refits nor trains them
    train(model, data.train, data.test, recipe, mean, std, execution=execution, start_epoch=1,
          optimizer_state=epoch_one["opt"])
    assert torch.equal(white.weight, fitted)


def test_frozen_code_keeps_the_white_stem_and_its_filters():
    arch = white_arch("residual", kernel=3, skip_kernel=1)
    torch.manual_seed(0)
    model = arch.build().eval()
    model.stem[0].fit(correlated_images(16))
    namespace = {}
    exec(compile(model_source(arch, [0.5] * 3, [0.25] * 3), "model.py", "exec"), namespace)
    frozen = namespace["Net"]().eval()
    frozen.load_state_dict(model.state_dict())  # the filters travel in model.pkl, as a buffer
    x = correlated_images(4, seed=1)
    with torch.no_grad():
        assert torch.allclose(frozen(x), model(x), atol=1e-5)
