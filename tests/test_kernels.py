"""The training-only kernels give the same outputs and gradients as the plain modules (the depthwise
convs as nn.Conv2d, the fused BatchNorm + activation as ConvBN's BatchNorm2d and activation), with
the C kernels (nas.native) where they build and without them."""
import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from nas import native
from nas.kernels import DepthwiseConv2d, FastConvBN, accelerate, restore
from nas.spaces.convpool import ConvPoolBlock
from nas.spaces.gated import GatedKConvBlock
from nas.spaces.layers import ConvBN


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory):
    """Where this session's C kernels are built: afresh, by the first test that needs them (a build takes
    several seconds; the others load it, as a user's later runs do)."""
    return tmp_path_factory.mktemp("native-build")


@pytest.fixture(params=["native", "no compiler"])
def kernel_path(request, monkeypatch, build_cache):
    """Each test runs with the C kernel (skipped where this machine cannot build it) and as on a
    machine with no C compiler."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(build_cache))
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


@pytest.mark.parametrize("act,channels,kernel,expansion", [("gelu", 24, 3, 2), ("relu", 21, 7, 1.5),
                                                           ("silu", 40, 5, 3.3), ("hardswish", 24, 5, 2)])
@pytest.mark.parametrize("bf16", [False, True])
def test_the_mixers_kernels_train_and_evaluate_as_the_plain_block(act, channels, kernel, expansion, bf16,
                                                                  kernel_path):
    """The FastMixerBlock's gated activation and LayerNorm by the C kernels: hidden widths with a vector
    tail (36, 132), one kernel size or several, an activation the kernel lacks (hardswish: the plain chunk
    and multiply); every gradient, and the output in evaluation without gradients. In fp32 they match the
    plain block; in bf16 (whose roundings fall differently in each, a few per cent on the gradients that
    are sums with cancellation) they are as close to the plain block in fp32 as the plain block in bf16 is."""
    from nas.spaces.mixer import MixerBlock
    torch.manual_seed(0)
    plain = MixerBlock(channels, channels, kernel=kernel, expansion=expansion, act=act)
    fast = copy.deepcopy(plain)
    accelerate(fast)
    assert (type(fast).__name__ == "FastMixerBlock") == (kernel_path == "native" or kernel > 3)
    x = torch.randn(4, channels, 6, 6).contiguous(memory_format=torch.channels_last)

    def run(block, autocast):
        block.zero_grad()
        block.train()
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            y = block(xi)
        (y.float() * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            evaluated = block.eval()(x).float()
        return [y.float(), evaluated, xi.grad] + [p.grad.clone() for p in block.parameters()]

    reference = run(plain, False)
    if not bf16:
        for a, b in zip(reference, run(fast, False)):
            assert b.dtype == a.dtype and torch.allclose(a, b, rtol=1e-5, atol=1e-5 * a.abs().max().item())
        return
    for r, a, b in zip(reference, run(plain, True), run(fast, True)):
        scale = r.abs().max().item()
        plain_error, fast_error = (a - r).abs().max().item(), (b - r).abs().max().item()
        assert b.dtype == a.dtype and fast_error <= 2 * plain_error + 2e-3 * scale


def test_the_gated_kernel_writes_both_halves_of_the_gradient_in_place_of_chunk_and_cat():
    """The op itself, fp32: a hidden width of 1 row per thread's share and a scalar tail (19 channels)."""
    if not native.available():
        pytest.skip("no C compiler here: the C kernel cannot be built")
    torch.manual_seed(0)
    h = torch.randn(3, 38, 5, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn(3, 19, 5, 7)
    a, b = h.chunk(2, dim=1)
    y = torch.nn.functional.silu(a) * b
    y.backward(grad)
    code = native.ACTIVATIONS["silu"]
    got = torch.ops.nas.gated_act(h.detach(), code)
    assert got.is_contiguous(memory_format=torch.channels_last) and torch.allclose(got, y, atol=1e-6)
    dh = torch.ops.nas.gated_act_backward(h.detach(), grad, code)
    assert dh.shape == h.shape and torch.allclose(dh, h.grad, atol=1e-6)


@pytest.mark.parametrize("channels,rows", [(19, 3 * 7 * 5), (48, 2 * 9 * 9), (130, 64 * 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_layer_norm_kernel_matches_layer_norm_2d(channels, rows, dtype, monkeypatch):
    """Output and the gradients of input, weight and bias against LayerNorm2d in fp32 on the same rounded
    input: a scalar tail (19), rows enough for several threads and several fp32 blocks of the sums (192),
    inputs far from zero mean (the kernel's shifted sums). fp32 too, though the mixer uses it in bf16 only."""
    if not native.available():
        pytest.skip("no C compiler here: the C kernel cannot be built")
    from nas import kernels
    from nas.kernels import layer_norm2d
    monkeypatch.setattr(kernels, "LAYER_NORM_DTYPES", (torch.float32, torch.bfloat16))
    calls = []
    monkeypatch.setattr(kernels._LayerNorm2d, "apply", lambda *a, _apply=kernels._LayerNorm2d.apply: calls.append(1) or _apply(*a))
    from nas.spaces.layers import LayerNorm2d
    torch.manual_seed(0)
    norm = LayerNorm2d(channels)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = (torch.randn(rows // 3, channels, 3, 1) * 3 + 20).to(dtype).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(x.shape).to(dtype).contiguous(memory_format=torch.channels_last)
    results = []
    for fused in (False, True):
        norm.zero_grad()
        xi = (x.detach() if fused else x.detach().float()).requires_grad_()
        y = layer_norm2d(xi, norm) if fused else norm(xi)
        y.backward(grad if fused else grad.float())
        assert y.dtype == dtype if fused else True
        results.append([y.float(), xi.grad.float(), norm.weight.grad.clone(), norm.bias.grad.clone()])
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-5
    assert calls == [1]  # the fused pass ran the kernel
    for a, b in zip(*results):
        assert torch.allclose(a, b, rtol=tol, atol=tol * a.abs().max().item())


def test_the_layer_norm_kernel_runs_in_bf16_and_leaves_fp32_to_pytorch(monkeypatch):
    """fp32 made the mixer's step no faster (docs/benchmarks.md (8)): there LayerNorm2d stays PyTorch's."""
    if not native.available():
        pytest.skip("no C compiler here: the C kernel cannot be built")
    from nas import kernels
    from nas.spaces.layers import LayerNorm2d
    calls = []
    monkeypatch.setattr(kernels._LayerNorm2d, "apply", lambda *a, _apply=kernels._LayerNorm2d.apply: calls.append(1) or _apply(*a))
    norm = LayerNorm2d(8)
    x = torch.randn(2, 8, 4, 4).contiguous(memory_format=torch.channels_last)
    kernels.layer_norm2d(x, norm)
    assert calls == []
    kernels.layer_norm2d(x.bfloat16(), norm)
    assert calls == [1]


@pytest.mark.parametrize("channels,kernel,stride,size", [(16, 7, 1, 9), (24, 5, 2, 10), (21, 3, 1, 7), (40, 7, 2, 5),
                                                         (24, 7, 1, 17), (40, 5, 1, 14), (21, 3, 1, 16),
                                                         (24, 7, 2, 32), (16, 3, 2, 19)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_c_kernel_computes_oneDNNs_weight_gradient(channels, kernel, stride, size, dtype):
    """16- and 8-channel vector blocks, a scalar tail (21 = 16 + 5), stride 2, padding at every edge; rows
    wide enough for the blocks of output columns (stride 1 and 2) and for columns left over after them."""
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


def test_the_c_kernels_run_on_pytorchs_own_openmp_team():
    """Where PyTorch runs on GNU OpenMP, the kernels are built with it and reuse its libgomp: one runtime
    in the process, so no second pool of threads competes with PyTorch's for the cores."""
    if not native.available():
        pytest.skip("no C compiler here: the C kernels cannot be built")
    libraries = {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if "/libgomp" in line}
    if not libraries:
        pytest.skip("PyTorch does not run on GNU OpenMP here")
    assert native.runtime() == "openmp"
    assert len({Path(name).name for name in libraries}) == 1, libraries


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_c_kernels_give_the_same_answer_on_any_number_of_threads(threads):
    if not native.available():
        pytest.skip("no C compiler here: the C kernels cannot be built")
    torch.manual_seed(0)
    x = torch.randn(6, 24, 9, 9).contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(x).contiguous(memory_format=torch.channels_last)
    w, b = torch.rand(24) + 0.5, torch.randn(24)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        expected = (torch.ops.nas.depthwise_wgrad(x, grad, 5, 1, 2), *torch.ops.nas.bn_act_forward(x, w, b, 1e-5, 2))
        torch.set_num_threads(threads)
        got = (torch.ops.nas.depthwise_wgrad(x, grad, 5, 1, 2), *torch.ops.nas.bn_act_forward(x, w, b, 1e-5, 2))
    finally:
        torch.set_num_threads(before)
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, rtol=1e-5, atol=1e-5)


def test_a_failed_build_leaves_the_c_kernel_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "FLAG_SETS", (["--no-such-flag"],))
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


@pytest.mark.parametrize("act", [None, "relu", "gelu", "silu"])
@pytest.mark.parametrize("channels,size", [(5, 7), (24, 6), (33, 3), (257, 2)])
@pytest.mark.parametrize("bf16", [False, True])
def test_fused_batch_norm_act_trains_as_the_plain_modules(act, channels, size, bf16, kernel_path):
    """Output, every gradient and the running statistics after two training steps; channel counts
    whose span (lcm with 16) is a few rows (5, 24, 33), and one too wide for it (257: span = a row)."""
    torch.manual_seed(0)
    plain = ConvBN(3, channels, 3, act=act)
    with torch.no_grad():
        plain[1].weight.uniform_(0.5, 1.5)
        plain[1].bias.uniform_(-0.5, 0.5)
    fast = copy.deepcopy(plain)
    accelerate(fast)
    assert (type(fast) is FastConvBN) == (kernel_path == "native")
    outs, grads = [], []
    for module in (plain, fast):
        module.train()
        for step in range(2):
            x = (torch.randn(6, 3, size, size, generator=torch.Generator().manual_seed(step)) * 2 + 1)
            x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
            module.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = module(x)
            (y.float() * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outs.append(y.float())
        grads.append([x.grad] + [p.grad for p in module.parameters()] + [b.float() for b in module.buffers()])
    tol = 3e-2 if bf16 else 1e-5
    assert torch.allclose(outs[0], outs[1], rtol=tol, atol=tol)
    for a, b in zip(*grads):
        assert b.dtype == a.dtype and torch.allclose(a, b, rtol=tol, atol=tol * max(1.0, a.abs().max().item()))


def test_fused_batch_norm_act_evaluates_with_the_running_statistics(kernel_path):
    torch.manual_seed(0)
    plain = ConvBN(3, 16, 3, act="gelu")
    plain.train()
    plain(torch.randn(8, 3, 8, 8))  # running statistics away from their initial values
    fast = copy.deepcopy(plain)
    accelerate(fast)
    x = torch.randn(4, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    plain.eval(), fast.eval()
    assert torch.equal(plain(x), fast(x))
    with torch.no_grad():
        plain.train(), fast.train()
        assert torch.allclose(plain(x), fast(x), atol=1e-6)  # no gradient: PyTorch's path


@pytest.mark.parametrize("act", [None, "relu", "gelu", "silu"])
@pytest.mark.parametrize("channels", [5, 24, 257])
@pytest.mark.parametrize("bf16", [False, True])
def test_fused_batch_norm_act_evaluates_without_gradients_as_the_plain_modules(act, channels, bf16, kernel_path):
    """Evaluation (no gradients, running statistics) by the C kernel's one pass, against PyTorch's."""
    torch.manual_seed(0)
    plain = ConvBN(3, channels, 3, act=act)
    with torch.no_grad():
        plain[1].weight.uniform_(0.5, 1.5)
        plain[1].bias.uniform_(-0.5, 0.5)
        plain[1].running_mean.uniform_(-1, 1)
        plain[1].running_var.uniform_(0.5, 2)
    fast = copy.deepcopy(plain)
    accelerate(fast)
    plain.eval(), fast.eval()
    x = (torch.randn(6, 3, 7, 7) * 2 + 1).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        expected, got = plain(x), fast(x)
    assert got.dtype == expected.dtype and got.is_contiguous(memory_format=torch.channels_last)
    tol = 3e-2 if bf16 else 1e-5
    assert torch.allclose(got.float(), expected.float(), rtol=tol, atol=tol)
    assert torch.equal(fast[1].running_mean, plain[1].running_mean)  # evaluation changes no statistics


def test_only_convbns_with_a_fusable_activation_are_swapped():
    if not native.available():
        pytest.skip("no C compiler here: the C kernel cannot be built")
    model = nn.Sequential(ConvBN(3, 8, act="gelu"), ConvBN(8, 8), ConvBN(8, 8, act="hardswish"),
                          nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), nn.ReLU()))
    model[0][2].approximate = "tanh"  # not the exact GELU the kernel computes
    keys = list(model.state_dict())
    assert accelerate(model) == 1
    assert [type(m).__name__ for m in model] == ["ConvBN", "FastConvBN", "ConvBN", "Sequential"]
    assert list(model.state_dict()) == keys
    restore(model)
    assert all(type(m) is ConvBN for m in model[:3])


@pytest.mark.parametrize("make", [lambda: ConvPoolBlock(3, 16, act="gelu"),
                                  lambda: GatedKConvBlock(3, 16, k=2, act="relu"),
                                  lambda: GatedKConvBlock(16, 16, k=3, residual=True, act="silu")],
                         ids=["convpool", "gated", "gated-residual"])
def test_blocks_with_their_own_batch_norm_train_as_before(make, kernel_path):
    torch.manual_seed(0)
    plain = make()
    fast = copy.deepcopy(plain)
    swapped = accelerate(fast)
    assert (swapped > 0) == (kernel_path == "native")
    x = torch.randn(4, plain.conv1.in_channels if hasattr(plain, "conv1") else plain.convs.in_channels, 8, 8)
    x = x.contiguous(memory_format=torch.channels_last)
    results = []
    for module in (plain, fast):
        xi = x.clone().requires_grad_()
        y = module(xi)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        results.append([y, xi.grad] + [p.grad for p in module.parameters()] + list(module.buffers()))
    for a, b in zip(*results):
        assert torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-5)
    restore(fast)
    assert type(fast) is type(plain)
