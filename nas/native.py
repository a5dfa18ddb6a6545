"""nas's C kernels (nas/csrc/), built with the machine's C compiler on first use and loaded with ctypes.

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

SOURCE = Path(__file__).with_name("csrc") / "depthwise_wgrad.c"
FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-pthread"]
KERNELS = (3, 5, 7)  # kernel widths the C code has vector paths for


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


def _build(compiler: str, out: Path) -> bool:
    out.parent.mkdir(parents=True, exist_ok=True)
    for flags in (FLAGS, [f for f in FLAGS if f != "-march=native"]):
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            built = Path(tmp) / out.name
            try:
                done = subprocess.run([compiler, *flags, str(SOURCE), "-o", str(built)], capture_output=True,
                                      timeout=120)
            except (OSError, subprocess.SubprocessError):
                return False
            if done.returncode == 0:
                os.replace(built, out)  # atomic: a process loading it never sees half a file
                return True
    return False


@cache
def _library() -> ctypes.CDLL | None:
    if os.environ.get("NAS_NATIVE", "1") == "0" or not SOURCE.exists():
        return None
    compiler = _compiler()
    if compiler is None:
        return None
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        key = hashlib.sha256("\n".join([SOURCE.read_text(), compiler, version, " ".join(FLAGS),
                                        _cpu_flags()]).encode()).hexdigest()[:16]
        cache_dir = Path(os.environ.get("NAS_CACHE_DIR") or os.environ.get("NAS_DATA_CACHE")
                         or Path.home() / ".cache" / "nas")  # beside the data cache and timed decisions
        path = cache_dir / f"depthwise_wgrad-{key}.so"
        if not path.exists() and not _build(compiler, path):
            return None
        lib = ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError):  # no cache directory, a broken compiler, an unloadable build
        return None
    lib.depthwise_wgrad.restype = ctypes.c_int
    lib.depthwise_wgrad.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int] * 12
    return lib


@torch.compiler.assume_constant_result  # torch.compile takes the answer as a constant, not tracing the build
def available() -> bool:
    """Whether the C kernels are built and loaded on this machine."""
    return _library() is not None


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
