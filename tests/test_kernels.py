"""The training-only depthwise kernels give the same outputs and gradients as nn.Conv2d, with the C
kernel (nas.native) where it builds and without it."""
import copy

import pytest
import torch
from torch import nn

from nas import native
from nas.kernels import DepthwiseConv2d, accelerate, restore


@pytest.fixture(params=["native", "no compiler"])
def kernel_path(request, monkeypatch, tmp_path):
    """Each test runs with the C kernel (skipped where this machine cannot build it) and as on a
    machine with no C compiler, built afresh into a temporary cache."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path))
    native._library.cache_clear()
    if request.param == "no compiler":
        monkeypatch.setattr(native, "_compiler", lambda: None)
        assert not native.available()
    elif not native.available():
        pytest.skip("no C compiler here: the C kernel cannot be built")
    yield request.param
    native._library.cache_clear()


@pytest.mark.parametrize("channels,kernel,stride", [(16, 7, 1), (24, 5, 2), (6, 5, 1), (40, 7, 1), (21, 7, 2), (48, 3, 2)])
@pytest.mark.parametrize("bf16", [False, True])
def test_same_output_and_gradients_as_the_plain_conv(channels, kernel, stride, bf16, kernel_path):
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
    assert accelerate(model) == 2  # 3x3 is fast already, a dense conv is not depthwise
    assert [type(m).__name__ for m in model] == ["Conv2d", "DepthwiseConv2d", "Conv2d", "DepthwiseConv2d"]
    assert list(model.state_dict()) == keys
    restore(model)
    assert all(type(m) is nn.Conv2d for m in model)
    assert accelerate(model, device_type="cuda") == 0


@pytest.mark.parametrize("channels,kernel", [(16, 7), (21, 5), (64, 7)])
@pytest.mark.parametrize("bf16", [False, True])
def test_the_merged_mixconv_gives_the_same_outputs_and_gradients(channels, kernel, bf16, kernel_path):
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


@pytest.mark.parametrize("channels,kernel,stride,size", [(16, 7, 1, 9), (24, 5, 2, 10), (21, 3, 1, 7), (40, 7, 2, 5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_c_kernel_computes_oneDNNs_weight_gradient(channels, kernel, stride, size, dtype):
    """16- and 8-channel vector blocks, a scalar tail (21 = 16 + 5), stride 2, padding at every edge."""
    if not native.available():
        pytest.skip("no C compiler here: the C kernel cannot be built")
    torch.manual_seed(0)
    x = torch.randn(5, channels, size, size).to(dtype).contiguous(memory_format=torch.channels_last)
    out = (size + 2 * (kernel // 2) - kernel) // stride + 1
    grad = torch.randn(5, channels, out, out).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.empty(channels, 1, kernel, kernel)
    expected = torch.ops.aten.convolution_backward(grad.float(), x.float(), w, None, [stride] * 2, [kernel // 2] * 2,
                                                   [1, 1], False, [0, 0], channels, [False, True, False])[1]
    assert native.depthwise_wgrad_applies(x, dtype, (kernel, kernel), (stride, stride), (kernel // 2,) * 2, (1, 1))
    got = torch.ops.nas.depthwise_wgrad(x, grad, kernel, stride, kernel // 2)
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_a_failed_build_leaves_the_c_kernel_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "FLAGS", ["--no-such-flag"])
    native._library.cache_clear()
    try:
        assert not native.available()
        assert not list(tmp_path.glob("*.so"))
    finally:
        native._library.cache_clear()


def test_an_unwritable_cache_leaves_the_c_kernel_unavailable(monkeypatch, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("NAS_CACHE_DIR", str(blocked / "cache"))
    native._library.cache_clear()
    try:
        assert not native.available()
    finally:
        native._library.cache_clear()
