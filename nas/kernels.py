"""Faster training kernels, swapped in for training only: the modules, their parameters and
their state_dict stay the same, so what is exported is plain PyTorch.

Depthwise convolutions (groups == channels). On a CPU, oneDNN's weight gradient of a depthwise
conv with a 5x5 or 7x7 kernel runs at 5-20 GFLOP/s (its forward and input gradient are 5-15x
faster): it was most of the training step of every depthwise family. Two faster paths, the first
that applies is taken (benchmarks/depthwise_grad.py measures all three):
- nas.native's C kernel (channels_last, fp32 or bf16, 3x3/5x5/7x7): where a C compiler built it.
- the block diagonal of a grouped conv's weight gradient with BLOCK channels per group, which
  oneDNN computes as small dense products: BLOCK times the arithmetic, 2.4-4.2x less time in bf16,
  the same in fp32, so it is used in bf16 only. Exact: each diagonal entry is the same sum.
The input gradient of a strided depthwise conv is computed in fp32 when training in bf16: oneDNN's
bf16 one is 5-100x slower than its fp32 one (a 7x7 stride-2 conv of 72 channels at 32x32, batch 256:
790 ms against 76 ms with the casts).

The token-mixer's MixConv (depthwise groups of 3x3, 5x5, 7x7 kernels on a split of the channels,
then a cat) runs as one depthwise conv whose kernel is each group's kernel zero-padded to the
largest, centred: the same sums, no split or cat of the activations, and a channel count the
block trick takes (the groups alone have 5, 10, 21 channels). More multiply-adds by zero in the
forward pass, less time in the step (a 50k mixer network: 1.3x in bf16, about the same in fp32).
Its gated feed-forward's act(a) * b, a and b the halves of the first 1x1 conv's channels, is one C
kernel each way (nas/csrc/gated_act.c): PyTorch's chunk, activation, multiply and, backward, the cat
of the halves' gradients were about a quarter of the mixer's training step. Its LayerNorm2d (a permute,
F.layer_norm, a permute back, in fp32 under bf16 autocast: a cast before it and after it) is one C kernel
each way too (nas/csrc/layer_norm.c), reading and writing the input's dtype.

BatchNorm and the activation after it (ConvBN's BN + ReLU/GELU/SiLU, or BN alone; the same pair in
the conv-pool and gated K-conv blocks) train as one C kernel (nas/csrc/bn_act.c): PyTorch's CPU BatchNorm backward on channels_last tensors of a few dozen
channels costs 3-4 ns an element, and the activation's forward and backward are two more passes;
in evaluation without gradients the kernel's second pass alone runs, BatchNorm's running statistics
folded into a scale and shift (evaluation was 16% of tiny-50k's retrain epoch, half of it BatchNorm and
GELU as two passes); with torch.compile (which fuses them itself) the plain modules run.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import native
from .spaces.convpool import ConvPoolBlock
from .spaces.gated import GatedKConvBlock
from .spaces.layers import ConvBN, LayerNorm2d
from .spaces.mixer import MixerBlock

REVISION = 6  # part of the key of every timed decision (nas.execution.DecisionCache): bump when a kernel changes
BLOCK = 8  # channels per dense group when computing a depthwise weight gradient
MIN_KERNEL = 5  # oneDNN's own 3x3 depthwise weight gradient is as fast as the faster paths


def _block(channels: int) -> int | None:
    """Channels per group for the weight gradient, or None to leave it to the default kernel."""
    if channels % BLOCK == 0:
        return BLOCK
    if channels <= BLOCK:
        return channels
    return None


class _DepthwiseConv(torch.autograd.Function):
    """A depthwise conv whose backward takes the paths `depthwise` chose: the weight gradient by
    "native", "blocks" (then `block` channels per group) or "onednn"; the input gradient in fp32
    where `input_fp32`."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation, wgrad, block, input_fp32):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation, wgrad, block, input_fp32)
        return F.conv2d(x, weight, None, stride, padding, dilation, groups=weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, wgrad, block, input_fp32 = ctx.conf
        channels = weight.shape[0]
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        grad = grad.contiguous(memory_format=layout)
        backward = torch.ops.aten.convolution_backward
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            if input_fp32:
                shape = torch.empty(x.shape, memory_format=layout)  # only its shape is read
                grad_x = backward(grad.float(), shape, weight.float(), None, stride, padding, dilation, False, [0, 0],
                                  channels, [True, False, False])[0].to(x.dtype)
            else:
                grad_x = backward(grad, x, weight, None, stride, padding, dilation, False, [0, 0], channels,
                                  [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            if wgrad == "native":
                grad_w = torch.ops.nas.depthwise_wgrad(x, grad, weight.shape[2], stride[0], padding[0]).to(weight.dtype)
            else:
                block = block if wgrad == "blocks" else 1
                dense = weight.new_empty(channels, block, *weight.shape[2:])
                full = backward(grad, x, dense, None, stride, padding, dilation, False, [0, 0], channels // block,
                                [False, True, False])[1]
                grad_w = full[torch.arange(channels, device=full.device),
                              torch.arange(channels, device=full.device) % block].unsqueeze(1)
        return grad_x, grad_w, None, None, None, None, None, None


class DepthwiseConv2d(nn.Conv2d):
    """An nn.Conv2d (same parameters, same state_dict) whose weight gradient takes the fast path."""

    def forward(self, x):
        if self.bias is not None:
            return super().forward(x)
        return depthwise(x, self.weight, self.stride, self.padding, self.dilation)


class _GatedAct(torch.autograd.Function):
    """act(a) * b for the channel halves a, b of h, by nas.native's kernel both ways; saves h alone."""

    @staticmethod
    def forward(ctx, h, act):
        ctx.save_for_backward(h)
        ctx.act = act
        return torch.ops.nas.gated_act(h, act)

    @staticmethod
    def backward(ctx, grad):
        (h,) = ctx.saved_tensors
        return torch.ops.nas.gated_act_backward(h, grad, ctx.act), None


def gated_act(h, act: nn.Module):
    """act(a) * b, a and b the first and second half of h's channels: by the C kernel where it applies
    (not inside torch.compile, which fuses these itself), else chunk and multiply."""
    name = activation_name(act)
    if name is not None and not torch.compiler.is_compiling() and native.gated_act_applies(h, name):
        if torch.is_autocast_enabled(h.device.type):  # h is the conv's output, already in autocast's dtype
            with torch.autocast(h.device.type, enabled=False):
                return _GatedAct.apply(h, native.ACTIVATIONS[name])
        return _GatedAct.apply(h, native.ACTIVATIONS[name])
    a, b = h.chunk(2, dim=1)
    return act(a) * b


class _LayerNorm2d(torch.autograd.Function):
    """LayerNorm over the channels of a channels_last tensor by nas.native's kernel both ways."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        y, mean, rstd = torch.ops.nas.layer_norm_forward(x, weight, bias, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, rstd = ctx.saved_tensors
        grad_x, grad_w, grad_b = torch.ops.nas.layer_norm_backward(x, grad, weight, mean, rstd)
        return grad_x, grad_w, grad_b, None


# The dtypes the LayerNorm kernel is used for. In bf16 it saves autocast's casts to fp32 and back (as an op
# 1.6-3.2x PyTorch's); in fp32 it was 1.2-2.6x as an op but made the mixer's fp32 training step no faster
# (docs/benchmarks.md, section (8)), so fp32 stays with PyTorch's.
LAYER_NORM_DTYPES = (torch.bfloat16,)


def layer_norm2d(x, norm: LayerNorm2d):
    """norm(x), by the C kernel where it applies (not inside torch.compile; x in LAYER_NORM_DTYPES); in x's
    dtype (under bf16 autocast F.layer_norm's output is fp32, which the 1x1 conv after it casts back)."""
    if (not torch.compiler.is_compiling() and x.dtype in LAYER_NORM_DTYPES
            and native.layer_norm_applies(x, norm.weight)):
        with torch.autocast(x.device.type, enabled=False):  # the kernel reads and writes x's dtype
            return _LayerNorm2d.apply(x, norm.weight, norm.bias, norm.eps)
    return norm(x)


class FastMixerBlock(MixerBlock):
    """A MixerBlock (same parameters, same state_dict) whose MixConv, where it has several kernel sizes,
    is one depthwise conv, and whose LayerNorm and gated activation are C kernels."""

    def mixconv(self, x):
        if not is_mixconv(self):
            return super().mixconv(x)
        size = max(conv.kernel_size[0] for conv in self.mix)
        weight = torch.cat([F.pad(conv.weight, [(size - conv.kernel_size[0]) // 2] * 4) for conv in self.mix])
        return depthwise(x, weight, (1, 1), (size // 2, size // 2), (1, 1))

    def forward(self, x):
        x = self.project(x)
        return x + self.gamma * self.fc2(gated_act(self.fc1(layer_norm2d(self.mixconv(x), self.norm)), self.act))


class _BatchNormAct(torch.autograd.Function):
    """Training-mode BatchNorm + activation by nas.native's kernel; also returns the batch's mean and
    biased variance (not differentiable) for the running statistics."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps, act):
        y, mean, var = torch.ops.nas.bn_act_forward(x, weight, bias, eps, act)
        ctx.save_for_backward(x, weight, bias, mean, var)
        ctx.conf = (eps, act)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, grad, _mean, _var):
        x, weight, bias, mean, var = ctx.saved_tensors
        grad_x, grad_w, grad_b = torch.ops.nas.bn_act_backward(x, grad, weight, bias, mean, var, *ctx.conf)
        return grad_x, grad_w, grad_b, None, None


def activation_name(module: nn.Module | None) -> str | None:
    """The C kernel's name for an activation module ("none" for None), or None if it has none."""
    if module is None:
        return "none"
    if type(module) is nn.GELU:
        return "gelu" if module.approximate == "none" else None
    return {nn.ReLU: "relu", nn.SiLU: "silu"}.get(type(module))


def batch_norm_act(x, bn: nn.BatchNorm2d, act: str):
    """bn (training mode, batch statistics) then `act` by the C kernel, updating bn's running
    statistics as nn.BatchNorm2d does; the caller checked native.bn_act_applies."""
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return batch_norm_act(x, bn, act)
    y, mean, var = _BatchNormAct.apply(x, bn.weight, bn.bias, bn.eps, native.ACTIVATIONS[act])
    if bn.track_running_stats and bn.running_mean is not None:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            count = x.numel() // x.shape[1]
            bn.running_mean.lerp_(mean, momentum)
            bn.running_var.lerp_(var * (count / max(1, count - 1)), momentum)
    return y


def eval_bn_act(x, bn: nn.BatchNorm2d, act: str):
    """bn in evaluation mode (its running statistics) then `act`, as one pass of the C kernel; the caller
    checked native.bn_act_applies and that bn has running statistics."""
    with torch.no_grad():
        scale = bn.weight.float() * torch.rsqrt(bn.running_var.float() + bn.eps)
        shift = bn.bias.float() - bn.running_mean.float() * scale
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return torch.ops.nas.affine_act(x, scale, shift, native.ACTIVATIONS[act])
    return torch.ops.nas.affine_act(x, scale, shift, native.ACTIVATIONS[act])


def bn_act(x, bn: nn.BatchNorm2d, act: nn.Module | None):
    """act(bn(x)) (act None: bn(x)), by the C kernel where it applies: training with gradients, or
    evaluation without them (running statistics), not inside torch.compile (which fuses these itself),
    a tensor and activation the kernel takes."""
    name = activation_name(act)
    if (bn.affine and not torch.compiler.is_compiling() and name is not None
            and native.bn_act_applies(x, bn.weight, name)):
        if bn.training and torch.is_grad_enabled():
            return batch_norm_act(x, bn, name)
        if not bn.training and not torch.is_grad_enabled() and bn.running_mean is not None:
            return eval_bn_act(x, bn, name)
    x = bn(x)
    return act(x) if act is not None else x


class FastConvBN(ConvBN):
    """A ConvBN (same modules, same state_dict) whose BatchNorm and activation train as one C kernel."""

    def forward(self, x):
        return bn_act(self[0](x), self[1], self[2] if len(self) > 2 else None)


class FastConvPoolBlock(ConvPoolBlock):
    """A ConvPoolBlock (same modules) whose first BatchNorm and activation train as one C kernel
    (its conv2 is a ConvBN, swapped on its own)."""

    def forward(self, x):
        return self.conv2(bn_act(self.pool(self.conv1(x)), self.bn1, self.act1))


class FastGatedKConvBlock(GatedKConvBlock):
    """A GatedKConvBlock (same modules) whose BatchNorm, and its activation where no skip is added
    between them, train as one C kernel."""

    def forward(self, x):
        y = self.mix(self.gate(x), self.convs(x))
        if self.skip is None:
            return bn_act(y, self.bn, self.act)
        return self.act(bn_act(y, self.bn, None) + self.skip(x))


FUSED = {ConvBN: FastConvBN, ConvPoolBlock: FastConvPoolBlock, GatedKConvBlock: FastGatedKConvBlock}


def is_fusable(module: nn.Module) -> bool:
    """A module of FUSED's whose BatchNorm (affine, 2d) and activation the C kernel can train."""
    if type(module) is ConvBN:
        bn, act = (module[1], module[2] if len(module) > 2 else None) if len(module) in (2, 3) else (None, None)
    elif type(module) is ConvPoolBlock:
        bn, act = module.bn1, module.act1
    elif type(module) is GatedKConvBlock:
        bn, act = module.bn, module.act
    else:
        return False
    return type(bn) is nn.BatchNorm2d and bn.affine and activation_name(act) is not None


def depthwise(x, weight, stride, padding, dilation):
    """F.conv2d(x, weight, groups=channels), with the fastest gradient paths that apply."""
    stride, padding, dilation = (tuple(v) if isinstance(v, (tuple, list)) else (v, v) for v in (stride, padding, dilation))
    if torch.is_grad_enabled() and weight.requires_grad:
        autocast = torch.is_autocast_enabled(x.device.type)
        dtype = torch.get_autocast_dtype(x.device.type) if autocast else x.dtype
        block = _block(weight.shape[0]) if dtype == torch.bfloat16 else None
        wgrad = "onednn"  # its 3x3 weight gradient is as fast as the others'
        if max(weight.shape[2:]) >= MIN_KERNEL:
            if native.depthwise_wgrad_applies(x, dtype, weight.shape[2:], stride, padding, dilation):
                wgrad = "native"
            elif block is not None:
                wgrad = "blocks"
        input_fp32 = dtype == torch.bfloat16 and stride != (1, 1)
        if wgrad != "onednn" or input_fp32:
            if autocast:
                x, weight = x.to(dtype), weight.to(dtype)
            with torch.autocast(x.device.type, enabled=False):
                return _DepthwiseConv.apply(x, weight, stride, padding, dilation, wgrad, block, input_fp32)
    return F.conv2d(x, weight, None, stride, padding, dilation, groups=weight.shape[0])


def is_mixconv(module: nn.Module) -> bool:
    """A MixerBlock with more than one kernel size (one size is one conv already)."""
    return isinstance(module, MixerBlock) and len(module.mix) > 1 and all(
        conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.padding == (conv.kernel_size[0] // 2,) * 2
        and conv.kernel_size[0] == conv.kernel_size[1] and conv.bias is None for conv in module.mix)


def is_slow_depthwise(module: nn.Module) -> bool:
    """A depthwise conv whose gradient oneDNN computes slowly: a 5x5 or larger kernel (the weight
    gradient) or a stride (the input gradient in bf16)."""
    return (type(module) is nn.Conv2d and module.groups == module.in_channels == module.out_channels
            and module.groups > 1 and (max(module.kernel_size) >= MIN_KERNEL or max(module.stride) > 1)
            and module.padding_mode == "zeros" and isinstance(module.padding, tuple))


def accelerate(model: nn.Module, device_type: str = "cpu") -> int:
    """Swap the fast kernels into `model` in place (CPU only); return how many modules changed."""
    if device_type != "cpu":
        return 0
    changed = 0
    for module in model.modules():
        if is_slow_depthwise(module):
            module.__class__ = DepthwiseConv2d
            changed += 1
        elif type(module) is MixerBlock and (is_mixconv(module) or native.available()):
            module.__class__ = FastMixerBlock
            changed += 1
        elif is_fusable(module) and native.available():
            module.__class__ = FUSED[type(module)]
            changed += 1
    return changed


def restore(model: nn.Module) -> None:
    """Undo `accelerate`: every module is its plain PyTorch class again."""
    for module in model.modules():
        if type(module) is DepthwiseConv2d:
            module.__class__ = nn.Conv2d
        elif type(module) is FastMixerBlock:
            module.__class__ = MixerBlock
        elif type(module) in FUSED.values():
            module.__class__ = type(module).__mro__[1]  # the plain class it was made from
