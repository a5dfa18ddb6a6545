"""The training-only depthwise kernel gives the same outputs and gradients as nn.Conv2d."""
import copy

import pytest
import torch
from torch import nn

from nas.kernels import DepthwiseConv2d, accelerate, restore


@pytest.mark.parametrize("channels,kernel,stride", [(16, 7, 1), (24, 5, 2), (6, 5, 1), (40, 7, 1)])
@pytest.mark.parametrize("bf16", [False, True])
def test_same_output_and_gradients_as_the_plain_conv(channels, kernel, stride, bf16):
    torch.manual_seed(0)
    plain = nn.Conv2d(channels, channels, kernel, stride, padding=kernel // 2, groups=channels, bias=False)
    fast = copy.deepcopy(plain)
    assert accelerate(fast) == 1 and type(fast) is DepthwiseConv2d
    x = torch.randn(4, channels, 12, 12).contiguous(memory_format=torch.channels_last)
    outs, grads = [], []
    for conv in (plain, fast):
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = conv(xi)
        y.float().square().sum().backward()
        outs.append(y.float())
        grads.append((xi.grad, conv.weight.grad))
    tol = 1e-2 if bf16 else 1e-5
    assert torch.allclose(outs[0], outs[1], rtol=tol, atol=tol)
    for a, b in zip(*grads):
        assert b.dtype == a.dtype and torch.allclose(a, b, rtol=tol, atol=tol * a.abs().max().item())


def test_only_large_depthwise_convs_are_swapped_and_restore_undoes_it():
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 8, 5, padding=2, groups=8, bias=False),
                          nn.Conv2d(8, 16, 5, padding=2), nn.Conv2d(21, 21, 7, padding=3, groups=21, bias=False))
    keys = list(model.state_dict())
    assert accelerate(model) == 1  # 3x3 is fast already, a dense conv is not depthwise, 21 has no block
    assert [type(m).__name__ for m in model] == ["Conv2d", "DepthwiseConv2d", "Conv2d", "Conv2d"]
    assert list(model.state_dict()) == keys
    restore(model)
    assert all(type(m) is nn.Conv2d for m in model)
    assert accelerate(model, device_type="cuda") == 0


@pytest.mark.parametrize("channels,kernel", [(16, 7), (21, 5), (64, 7)])
@pytest.mark.parametrize("bf16", [False, True])
def test_the_merged_mixconv_gives_the_same_outputs_and_gradients(channels, kernel, bf16):
    from nas.spaces.mixer import MixerBlock
    torch.manual_seed(0)
    plain = MixerBlock(channels, channels, kernel=kernel, expansion=1)
    for conv in plain.mix:  # every kernel entry non-zero, so a misplaced one shows
        nn.init.normal_(conv.weight)
    fast = copy.deepcopy(plain)
    keys = list(plain.state_dict())
    assert accelerate(fast) >= 1 and type(fast).__name__ == "FastMixerBlock"
    assert list(fast.state_dict()) == keys
    x = torch.randn(4, channels, 10, 10).contiguous(memory_format=torch.channels_last)
    outs, grads = [], []
    for block in (plain, fast):
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = block(xi)
        y.float().square().sum().backward()
        outs.append(y.float())
        grads.append([xi.grad] + [conv.weight.grad for conv in block.mix])
    tol = 2e-2 if bf16 else 1e-5
    assert torch.allclose(outs[0], outs[1], rtol=tol, atol=tol * outs[0].abs().max().item())
    for a, b in zip(*grads):
        assert b.shape == a.shape and torch.allclose(a, b, rtol=tol, atol=tol * a.abs().max().item())
    restore(fast)
    assert type(fast) is MixerBlock
