"""nas's C kernels (nas/csrc/: the depthwise weight gradient, BatchNorm fused with its activation, the
token-mixer's gated activation and LayerNorm), built with the machine's C compiler on first use and loaded with ctypes.

They are optional. Where there is no C compiler, the build fails, or NAS_NATIVE=0 is set,
`available()` is False and the trainer takes the next-fastest path (nas/kernels.py); nothing else
changes. A build is cached under $NAS_CACHE_DIR (default ~/.cache/nas) by a hash of the source, the
compiler, its flags and the CPU's feature flags (with $NAS_DATA_CACHE set, there) (it is built for this CPU: -march=native), so a
second process, or a home directory shared with another machine, never loads a stale build.

Each kernel is also a PyTorch custom op (torch.ops.nas.*), so torch.compile treats it as one opaque
operator instead of stopping at a ctypes call.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import torch

SOURCES = [Path(__file__).with_name("csrc") / name for name in ("depthwise_wgrad.c", "bn_act.c", "gated_act.c",
                                                                  "layer_norm.c")]
HEADERS = [Path(__file__).with_name("csrc") / "common.h"]  # included by the sources: part of the build's hash
# -fopenmp-simd: `omp simd` vector sums. -fno-trapping-math: without it GCC may not turn the activations'
# comparisons (exp's clamp, GELU's sign) into vector selects, and on a CPU without AVX-512's masks the whole
# loop stays scalar (GELU 3x slower than PyTorch's on AVX2); the values computed are the same.
FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-pthread", "-fopenmp-simd", "-fno-trapping-math"]
# tried in turn: 512-bit vectors where the compiler knows the flag (x86: the activations' exp and erf are
# arithmetic-bound), then the plain flags, then without -march=native
FLAG_SETS = (FLAGS + ["-mprefer-vector-width=512"], FLAGS, [f for f in FLAGS if f != "-march=native"])
# Where PyTorch runs on GNU OpenMP, the kernels are built with -fopenmp too: the loader then reuses the
# libgomp PyTorch loaded (same soname) and the kernels' threads are PyTorch's own team. With pthreads of
# their own they share the cores with that team's threads, which spin for a while after each of
# PyTorch's parallel regions (a training step measured 1.5x slower that way). _library() adds the flag.
OPENMP = "-fopenmp"
KERNELS = (3, 5, 7)  # kernel widths the depthwise C code has vector paths for
ACTIVATIONS = {"none": 0, "relu": 1, "gelu": 2, "silu": 3}  # the codes of nas/csrc/bn_act.c


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _torch_libgomp() -> bool:
    """Whether this process has GNU OpenMP loaded (PyTorch's, on Linux)."""
    try:
        return "/libgomp" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def _build(compiler: str, out: Path, flag_sets) -> bool:
    out.parent.mkdir(parents=True, exist_ok=True)
    for flags in flag_sets:
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            built = Path(tmp) / out.name
            try:
                done = subprocess.run([compiler, *flags, *map(str, SOURCES), "-o", str(built)], capture_output=True,
                                      timeout=120)
            except (OSError, subprocess.SubprocessError):
                return False
            if done.returncode == 0:
                os.replace(built, out)  # atomic: a process loading it never sees half a file
                return True
    return False


@cache
def _library() -> ctypes.CDLL | None:
    if os.environ.get("NAS_NATIVE", "1") == "0" or not all(path.exists() for path in SOURCES + HEADERS):
        return None
    compiler = _compiler()
    if compiler is None:
        return None
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        cache_dir = Path(os.environ.get("NAS_CACHE_DIR") or os.environ.get("NAS_DATA_CACHE")
                         or Path.home() / ".cache" / "nas")  # beside the data cache and timed decisions
    except (OSError, subprocess.SubprocessError):
        return None
    builds = [FLAG_SETS] if not _torch_libgomp() or os.environ.get("NAS_NATIVE_OPENMP", "1") == "0" \
        else [tuple([*flags, OPENMP] for flags in FLAG_SETS), FLAG_SETS]
    for flag_sets in builds:  # the OpenMP build first where it applies; if it cannot be built or loaded, pthreads
        key = hashlib.sha256("\n".join([*(path.read_text() for path in SOURCES + HEADERS), compiler, version,
                                        repr(flag_sets), _cpu_flags()]).encode()).hexdigest()[:16]
        path = cache_dir / f"native-{key}.so"
        try:
            if not path.exists() and not _build(compiler, path, flag_sets):
                continue
            lib = ctypes.CDLL(str(path))
            break
        except (OSError, subprocess.SubprocessError):  # no cache directory, a broken compiler, an unloadable build
            continue
    else:
        return None
    lib.nas_runtime = "openmp" if flag_sets is not FLAG_SETS else "pthreads"
    lib.depthwise_wgrad.restype = ctypes.c_int
    lib.depthwise_wgrad.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int] * 12
    ptr, i32, i64, f64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_double
    lib.bn_act_forward.restype = lib.bn_act_backward.restype = ctypes.c_int
    lib.bn_act_forward.argtypes = [ptr, ptr, i32, i64, i32, ptr, ptr, f64, i32, ptr, ptr, i32]
    lib.bn_act_backward.argtypes = [ptr, ptr, ptr, i32, i64, i32, ptr, ptr, ptr, ptr, f64, i32, ptr, ptr, i32]
    lib.affine_act_forward.restype = ctypes.c_int
    lib.affine_act_forward.argtypes = [ptr, ptr, i32, i64, i32, ptr, ptr, i32, i32]
    lib.gated_act_forward.restype = lib.gated_act_backward.restype = ctypes.c_int
    lib.layer_norm_forward.restype = lib.layer_norm_backward.restype = ctypes.c_int
    lib.layer_norm_forward.argtypes = [ptr, ptr, i32, i64, i32, ptr, ptr, f64, ptr, ptr, i32]
    lib.layer_norm_backward.argtypes = [ptr, ptr, ptr, i32, i64, i32, ptr, ptr, ptr, ptr, ptr, i32]
    lib.gated_act_forward.argtypes = [ptr, ptr, i32, i64, i32, i32, i32]
    lib.gated_act_backward.argtypes = [ptr, ptr, ptr, i32, i64, i32, i32, i32]
    return lib


def available() -> bool:
    """Whether the C kernels are built and loaded on this machine (`compile` tells torch.compile it is a
    constant)."""
    return _library() is not None


def compile(model: torch.nn.Module) -> torch.nn.Module:
    """torch.compile(model), with `available` taken as a constant rather than traced into the build. Marked
    here and not where `available` is defined: the mark imports torch._dynamo, 1.6 s that every `nas`
    command, even one rejecting its input, paid at import."""
    torch.compiler.assume_constant_result(available)  # sets a flag on the function itself
    return torch.compile(model)


def runtime() -> str | None:
    """How the C kernels run their threads: "openmp" (PyTorch's own team), "pthreads", or None if not built."""
    lib = _library()
    return lib.nas_runtime if lib is not None else None


def depthwise_wgrad_applies(x: torch.Tensor, dtype: torch.dtype, kernel, stride, padding, dilation) -> bool:
    """Whether the C kernel takes the weight gradient of a depthwise conv of `x` computed in `dtype`
    (the output's gradient is made channels_last like x); else the caller uses another path."""
    return (x.device.type == "cpu" and dtype in (torch.float32, torch.bfloat16) and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and kernel[0] == kernel[1] and kernel[1] in KERNELS and stride[0] == stride[1]
            and padding[0] == padding[1] and tuple(dilation) == (1, 1) and available())


@torch.library.custom_op("nas::depthwise_wgrad", mutates_args=())
def depthwise_wgrad(x: torch.Tensor, grad: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """The weight gradient (channels, 1, kernel, kernel), fp32, of a depthwise conv of `x` (N, C, H, W,
    channels_last) whose output's gradient is `grad`. Only where depthwise_wgrad_applies()."""
    n, c, h, w = x.shape
    ho, wo = grad.shape[2:]
    out = torch.empty(kernel, kernel, c, dtype=torch.float32)
    code = _library().depthwise_wgrad(x.data_ptr(), grad.data_ptr(), out.data_ptr(), int(x.dtype == torch.bfloat16),
                                      n, h, w, c, ho, wo, kernel, kernel, stride, padding, torch.get_num_threads())
    if code != 0:
        raise MemoryError("nas.native.depthwise_wgrad: out of memory for its accumulators")
    return out.permute(2, 0, 1).unsqueeze(1).contiguous()


@depthwise_wgrad.register_fake
def _(x, grad, kernel, stride, padding):
    return x.new_empty(x.shape[1], 1, kernel, kernel, dtype=torch.float32)


def bn_act_applies(x: torch.Tensor, weight: torch.Tensor | None, act: str) -> bool:
    """Whether the C kernel trains BatchNorm + `act` on `x` (channels_last, fp32 or bf16, on the CPU)
    with an fp32 `weight`; else the caller uses PyTorch's."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16) and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last) and x.numel() > 0
            and weight is not None and weight.dtype == torch.float32 and act in ACTIVATIONS and available())


@torch.library.custom_op("nas::bn_act_forward", mutates_args=())
def bn_act_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
                   act: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training-mode BatchNorm of `x` (N, C, H, W, channels_last) with the batch's statistics, then the
    activation of code `act` (ACTIVATIONS): (y like x, the batch's mean, its biased variance), fp32 stats."""
    n, c, h, w = x.shape
    y = torch.empty_like(x, memory_format=torch.channels_last)
    mean, var = torch.empty(c), torch.empty(c)
    code = _library().bn_act_forward(x.data_ptr(), y.data_ptr(), int(x.dtype == torch.bfloat16), n * h * w, c,
                                     weight.contiguous().data_ptr(), bias.contiguous().data_ptr(), eps, act,
                                     mean.data_ptr(), var.data_ptr(), torch.get_num_threads())
    if code != 0:
        raise MemoryError("nas.native.bn_act_forward: out of memory")
    return y, mean, var


@bn_act_forward.register_fake
def _(x, weight, bias, eps, act):
    c = x.shape[1]
    return torch.empty_like(x, memory_format=torch.channels_last), x.new_empty(c, dtype=torch.float32), \
        x.new_empty(c, dtype=torch.float32)


@torch.library.custom_op("nas::bn_act_backward", mutates_args=())
def bn_act_backward(x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                    mean: torch.Tensor, var: torch.Tensor, eps: float,
                    act: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients (x's, weight's, bias's) of bn_act_forward, given its output's gradient `grad`."""
    n, c, h, w = x.shape
    grad = grad.to(x.dtype).contiguous(memory_format=torch.channels_last)
    grad_x = torch.empty_like(x, memory_format=torch.channels_last)
    grad_w, grad_b = torch.empty(c), torch.empty(c)
    code = _library().bn_act_backward(x.data_ptr(), grad.data_ptr(), grad_x.data_ptr(), int(x.dtype == torch.bfloat16),
                                      n * h * w, c, weight.contiguous().data_ptr(), bias.contiguous().data_ptr(),
                                      mean.data_ptr(), var.data_ptr(), eps, act, grad_w.data_ptr(), grad_b.data_ptr(),
                                      torch.get_num_threads())
    if code != 0:
        raise MemoryError("nas.native.bn_act_backward: out of memory")
    return grad_x, grad_w, grad_b


@bn_act_backward.register_fake
def _(x, grad, weight, bias, mean, var, eps, act):
    c = x.shape[1]
    return torch.empty_like(x, memory_format=torch.channels_last), x.new_empty(c, dtype=torch.float32), \
        x.new_empty(c, dtype=torch.float32)


@torch.library.custom_op("nas::affine_act", mutates_args=())
def affine_act(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, act: int) -> torch.Tensor:
    """act(x * scale + shift) per channel of `x` (N, C, H, W, channels_last; scale and shift fp32): an
    evaluation-mode BatchNorm folded into scale and shift, then the activation of code `act`."""
    n, c, h, w = x.shape
    y = torch.empty_like(x, memory_format=torch.channels_last)
    code = _library().affine_act_forward(x.data_ptr(), y.data_ptr(), int(x.dtype == torch.bfloat16), n * h * w, c,
                                         scale.contiguous().data_ptr(), shift.contiguous().data_ptr(), act,
                                         torch.get_num_threads())
    if code != 0:
        raise MemoryError("nas.native.affine_act: out of memory")
    return y


@affine_act.register_fake
def _(x, scale, shift, act):
    return torch.empty_like(x, memory_format=torch.channels_last)


def gated_act_applies(h: torch.Tensor, act: str) -> bool:
    """Whether the C kernel computes act(a) * b for the channel halves a, b of `h` (channels_last, fp32
    or bf16, on the CPU, an even channel count); else the caller chunks and multiplies."""
    return (h.device.type == "cpu" and h.dtype in (torch.float32, torch.bfloat16) and h.dim() == 4
            and h.shape[1] % 2 == 0 and h.is_contiguous(memory_format=torch.channels_last) and h.numel() > 0
            and act in ACTIVATIONS and available())


@torch.library.custom_op("nas::gated_act", mutates_args=())
def gated_act(h: torch.Tensor, act: int) -> torch.Tensor:
    """act(a) * b, a and b the first and second half of the channels of `h` (N, 2C, H, W, channels_last),
    act the activation of code `act` (ACTIVATIONS): (N, C, H, W), channels_last, h's dtype."""
    n, c2, height, width = h.shape
    y = torch.empty(n, c2 // 2, height, width, dtype=h.dtype, device=h.device, memory_format=torch.channels_last)
    _library().gated_act_forward(h.data_ptr(), y.data_ptr(), int(h.dtype == torch.bfloat16), n * height * width,
                                 c2 // 2, act, torch.get_num_threads())
    return y


@gated_act.register_fake
def _(h, act):
    n, c2, height, width = h.shape
    return torch.empty(n, c2 // 2, height, width, dtype=h.dtype, device=h.device, memory_format=torch.channels_last)


@torch.library.custom_op("nas::gated_act_backward", mutates_args=())
def gated_act_backward(h: torch.Tensor, grad: torch.Tensor, act: int) -> torch.Tensor:
    """The gradient of gated_act's `h` given its output's gradient `grad`: both halves in one tensor like h."""
    n, c2, height, width = h.shape
    grad = grad.to(h.dtype).contiguous(memory_format=torch.channels_last)
    dh = torch.empty_like(h, memory_format=torch.channels_last)
    _library().gated_act_backward(h.data_ptr(), grad.data_ptr(), dh.data_ptr(), int(h.dtype == torch.bfloat16),
                                  n * height * width, c2 // 2, act, torch.get_num_threads())
    return dh


@gated_act_backward.register_fake
def _(h, grad, act):
    return torch.empty_like(h, memory_format=torch.channels_last)


def layer_norm_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the C kernel takes LayerNorm over the channels of `x` (channels_last, fp32 or bf16, on the
    CPU) with an fp32 `weight`; else the caller uses F.layer_norm."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16) and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last) and x.numel() > 0
            and weight.dtype == torch.float32 and available())


@torch.library.custom_op("nas::layer_norm_forward", mutates_args=())
def layer_norm_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                       eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LayerNorm over the channels of `x` (N, C, H, W, channels_last): (y like x, each pixel's mean and
    reciprocal standard deviation, fp32, N*H*W each)."""
    n, c, h, w = x.shape
    y = torch.empty_like(x, memory_format=torch.channels_last)
    mean, rstd = torch.empty(n * h * w), torch.empty(n * h * w)
    code = _library().layer_norm_forward(x.data_ptr(), y.data_ptr(), int(x.dtype == torch.bfloat16), n * h * w, c,
                                         weight.contiguous().data_ptr(), bias.contiguous().data_ptr(), eps,
                                         mean.data_ptr(), rstd.data_ptr(), torch.get_num_threads())
    if code != 0:
        raise MemoryError("nas.native.layer_norm_forward: out of memory")
    return y, mean, rstd


@layer_norm_forward.register_fake
def _(x, weight, bias, eps):
    n, c, h, w = x.shape
    return (torch.empty_like(x, memory_format=torch.channels_last), x.new_empty(n * h * w, dtype=torch.float32),
            x.new_empty(n * h * w, dtype=torch.float32))


@torch.library.custom_op("nas::layer_norm_backward", mutates_args=())
def layer_norm_backward(x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor,
                        rstd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients (x's, weight's, bias's) of layer_norm_forward, given its output's gradient `grad`."""
    n, c, h, w = x.shape
    grad = grad.to(x.dtype).contiguous(memory_format=torch.channels_last)
    grad_x = torch.empty_like(x, memory_format=torch.channels_last)
    grad_w, grad_b = torch.empty(c), torch.empty(c)
    code = _library().layer_norm_backward(x.data_ptr(), grad.data_ptr(), grad_x.data_ptr(),
                                          int(x.dtype == torch.bfloat16), n * h * w, c, weight.contiguous().data_ptr(),
                                          mean.data_ptr(), rstd.data_ptr(), grad_w.data_ptr(), grad_b.data_ptr(),
                                          torch.get_num_threads())
    if code != 0:
        raise MemoryError("nas.native.layer_norm_backward: out of memory")
    return grad_x, grad_w, grad_b


@layer_norm_backward.register_fake
def _(x, grad, weight, mean, rstd):
    c = x.shape[1]
    return torch.empty_like(x, memory_format=torch.channels_last), x.new_empty(c, dtype=torch.float32), \
        x.new_empty(c, dtype=torch.float32)
