"""Faster training kernels, swapped in for training only: the modules, their parameters and
their state_dict stay the same, so what is exported is plain PyTorch.

Depthwise convolutions (groups == channels). On a CPU, oneDNN's weight gradient of a depthwise
conv with a 5x5 or 7x7 kernel runs at 5-20 GFLOP/s (its forward and input gradient are 5-15x
faster): it was most of the training step of every depthwise family. The same gradient is the
block diagonal of a grouped conv's weight gradient with BLOCK channels per group, which oneDNN
computes as small dense products: BLOCK times the arithmetic, 2.4-4.2x less time in bf16, the
same in fp32, so the trainer uses it in bf16 only (benchmarks/depthwise_grad.py). Exact: each
diagonal entry is the same sum.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BLOCK = 8  # channels per dense group when computing a depthwise weight gradient
MIN_KERNEL = 5  # oneDNN's own 3x3 depthwise weight gradient is fast enough


def _block(channels: int) -> int | None:
    """Channels per group for the weight gradient, or None to leave it to the default kernel."""
    if channels % BLOCK == 0:
        return BLOCK
    if channels <= BLOCK:
        return channels
    return None


class _DepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation, block):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation, block)
        return F.conv2d(x, weight, None, stride, padding, dilation, groups=weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, block = ctx.conf
        channels = weight.shape[0]
        grad = grad.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
            memory_format=torch.channels_last) else grad.contiguous()
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(grad, x, weight, None, stride, padding, dilation, False,
                                                         [0, 0], channels, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            dense = weight.new_empty(channels, block, *weight.shape[2:])
            full = torch.ops.aten.convolution_backward(grad, x, dense, None, stride, padding, dilation, False,
                                                       [0, 0], channels // block, [False, True, False])[1]
            grad_w = full[torch.arange(channels, device=full.device), torch.arange(channels, device=full.device) % block]
            grad_w = grad_w.unsqueeze(1)
        return grad_x, grad_w, None, None, None, None


class DepthwiseConv2d(nn.Conv2d):
    """An nn.Conv2d (same parameters, same state_dict) whose weight gradient takes the fast path."""

    def forward(self, x):
        block = _block(self.out_channels)
        if not (torch.is_grad_enabled() and self.weight.requires_grad) or block is None or self.bias is not None:
            return super().forward(x)
        weight = self.weight
        if torch.is_autocast_enabled(x.device.type):
            dtype = torch.get_autocast_dtype(x.device.type)
            x, weight = x.to(dtype), weight.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            return _DepthwiseConv.apply(x, weight, self.stride, self.padding, self.dilation, block)


def is_slow_depthwise(module: nn.Module) -> bool:
    return (type(module) is nn.Conv2d and module.groups == module.in_channels == module.out_channels
            and module.groups > 1 and max(module.kernel_size) >= MIN_KERNEL and module.padding_mode == "zeros"
            and isinstance(module.padding, tuple) and _block(module.out_channels) is not None)


def accelerate(model: nn.Module, device_type: str = "cpu") -> int:
    """Swap the fast kernels into `model` in place (CPU only); return how many modules changed."""
    if device_type != "cpu":
        return 0
    changed = 0
    for module in model.modules():
        if is_slow_depthwise(module):
            module.__class__ = DepthwiseConv2d
            changed += 1
    return changed


def restore(model: nn.Module) -> None:
    """Undo `accelerate`: every module is its plain PyTorch class again."""
    for module in model.modules():
        if type(module) is DepthwiseConv2d:
            module.__class__ = nn.Conv2d
