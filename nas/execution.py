"""How a training run executes on this machine: device, precision, memory format, compile, threads.

`choose()` decides by itself for the device it is given, and every field can be forced (the
command line's --precision, --compile, --threads). What it decides on a CPU, and why:

- threads: the cores this process may really use (its CPU affinity and cgroup quota), never
  more: two processes each running as many threads as the machine has cores ran 10x slower.
- channels_last: always. Every block family trained faster in it here (1.3-2.8x in fp32).
- precision: bf16 autocast where the CPU has native bf16 (AVX512_BF16 or AMX), else fp32. With
  'auto' the trainer then times a few steps of each on the real network and keeps the faster
  (depthwise-heavy networks are sometimes faster in fp32): see `nas.train`. The decision is
  remembered per network, batch size, thread count and machine in the cache directory
  (`DecisionCache`), so the same run on the same machine makes it the same way, and gives the
  same scores.
- compile: torch.compile only where it pays for itself: with 'auto', a run whose eager time is
  estimated at COMPILE_MIN_SECONDS or more tries it, and keeps it if its steps are faster.
- memory: freed memory kept for reuse (glibc's malloc told not to mmap large blocks nor give
  memory back). PyTorch's CPU tensors come from malloc, and by default every block over 32 MB
  (a batch's activations and their gradients) is a fresh mmap whose pages the kernel zeroes on
  first touch: several seconds of system time per training epoch. Off with `keep_memory=False`
  (the command line's --no-keep-memory); nothing to do off glibc. What is kept goes back to the
  system at the end of each training run (`release_freed_memory`).

On a GPU: bf16 autocast where supported, channels_last, one thread of Python, compile 'auto'.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .errors import UserError
from .files import write_json

PRECISIONS = ("auto", "bf16", "fp32")
COMPILE_MODES = ("auto", "on", "off")
COMPILE_MIN_SECONDS = 20 * 60  # an eager run shorter than this never tries torch.compile (it costs ~30-60 s)
CPU_BATCH_SIZE = 256  # small nets train as fast or faster per image at 256 than at 512 on a CPU (cache)
GPU_BATCH_SIZE = 512


@dataclass(frozen=True)
class Execution:
    """One decided way to run: what the run header prints and result.json records."""

    device: str = "cpu"
    precision: str = "fp32"  # bf16 (autocast) | fp32
    channels_last: bool = True
    compile: str = "off"  # on | off | auto (decided by timing once the run starts)
    threads: int = 1  # intra-op threads on the CPU (0: as the process has them, e.g. a Dask worker's)
    tune_precision: bool = False  # time bf16 against fp32 on the real network and keep the faster
    keep_memory: bool = False  # CPU: freed memory kept by malloc for the next step (see keep_freed_memory)

    @property
    def autocast(self) -> bool:
        return self.precision == "bf16"

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def describe(self) -> str:
        parts = [self.device]
        if self.device == "cpu":
            parts.append(f"{self.threads} thread{'s' * (self.threads != 1)}" if self.threads else "the worker's threads")
        parts.append("bf16 autocast" if self.autocast else "fp32")
        if self.tune_precision:
            parts[-1] += " (timed against fp32 where a run is long enough)"
        parts.append("channels_last" if self.channels_last else "NCHW")
        parts.append({"on": "torch.compile", "off": "eager", "auto": "compile if it pays"}[self.compile])
        if self.keep_memory:
            parts.append("memory kept")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> "Execution":
        return Execution(**{**asdict(self), **changes})

    def apply(self) -> None:
        """Set the process-wide knobs this execution needs (the CPU thread count, malloc's settings)."""
        if self.device == "cpu" and self.threads and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        if self.keep_memory:
            keep_freed_memory()


class DecisionCache:
    """Choices made by timing, remembered (in memory and in `decisions.json` in nas's cache
    directory) by a key naming the network and the machine: timing noise must not make one run
    train in bf16 and the next in fp32. A cache that cannot be written stays in memory."""

    _memory: dict[str, str] = {}

    def __init__(self, directory: str | Path | None = None):
        self.path = Path(directory or os.environ.get("NAS_DATA_CACHE", Path.home() / ".cache" / "nas")) / "decisions.json"

    @staticmethod
    def key(*parts) -> str:
        from . import kernels  # a decision timed with other kernels is not this one's
        text = "|".join(map(str, (*parts, torch.__version__, _cpu_name(), kernels.REVISION, kernels.native.available())))
        return hashlib.sha1(text.encode()).hexdigest()

    def get(self, key: str) -> str | None:
        if key not in self._memory and self.path.is_file():
            try:
                self._memory.update(json.loads(self.path.read_text()))
            except (OSError, ValueError):
                pass
        return self._memory.get(key)

    def put(self, key: str, value: str) -> None:
        self._memory[key] = value
        try:
            stored = json.loads(self.path.read_text()) if self.path.is_file() else {}
            write_json(self.path, {**stored, key: value})
        except (OSError, ValueError):
            pass


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def usable_cores() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup v2 quota if any."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
_kept = False  # whether keep_freed_memory() took effect in this process


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc on Linux (musl has a mallopt that does nothing), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version, libc.mallopt, libc.malloc_trim  # glibc's own
        return libc
    except (OSError, AttributeError):
        return None


def can_keep_memory() -> bool:
    """Whether this process's malloc can be told to keep freed memory (glibc on Linux)."""
    return _glibc() is not None


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to serve every block from its heap, not mmap, and never to give freed memory
    back to the system, so that a training step's large tensors reuse the last step's pages instead of
    faulting in fresh zeroed ones (what jemalloc or tcmalloc preloaded would do; IPEX's launcher preloads
    them for the same reason). Process-wide and for the rest of the process; blocks allocated before keep
    their mmap. Returns whether it took effect."""
    global _kept
    libc = _glibc()
    if not _kept and libc is not None:
        _kept = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    return _kept


def release_freed_memory() -> None:
    """Give the memory malloc keeps back to the system (glibc's malloc_trim), where keep_freed_memory()
    took effect: at the end of a training run, so that a search's many runs, each with other tensor sizes,
    do not each leave their own free blocks in the heap (a 5-minute search's peak RSS: 3.5 GB with malloc
    as it was, 5.6 GB keeping memory without this)."""
    if _kept:
        _glibc().malloc_trim(0)


def releases_freed_memory(fn):
    """Decorate a training run: release_freed_memory() when it returns or raises."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            release_freed_memory()
    return run


def cpu_has_bf16() -> bool:
    """Native bf16 arithmetic on this CPU (AVX512_BF16 or AMX): where bf16 autocast is fast."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_batch_size(device: str | None = None) -> int:
    return GPU_BATCH_SIZE if torch.device(device or default_device()).type == "cuda" else CPU_BATCH_SIZE


def check_device(name: str | None) -> None:
    """Refuse a device name that is not one, or a GPU that is not here (one line)."""
    if name is None:
        return
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r} (use cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is available here")


def choose(device: str | None = None, precision: str = "auto", compile: str = "auto",
           threads: int | None = None, keep_memory: bool = True) -> Execution:
    """The execution for `device` (default: a GPU if there is one), forced where an argument says so
    (`keep_memory=False`: leave the CPU's malloc as it is)."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; one of {', '.join(PRECISIONS)}")
    if compile not in COMPILE_MODES:
        raise UserError(f"unknown compile mode {compile!r}; one of {', '.join(COMPILE_MODES)}")
    if threads is not None and threads < 1:
        raise UserError(f"threads must be at least 1, not {threads}")
    check_device(device)
    dev = torch.device(device or default_device())
    if dev.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        threads = threads or torch.get_num_threads()
    else:
        bf16 = cpu_has_bf16()
        threads = threads or usable_cores()
    if precision == "bf16" and not bf16:
        where = "GPU" if dev.type == "cuda" else "CPU (no AVX512_BF16 or AMX)"
        raise UserError(f"--precision bf16: this {where} has no native bf16; use fp32 or auto")
    chosen = "bf16" if (precision == "bf16" or (precision == "auto" and bf16)) else "fp32"
    return Execution(device=str(dev), precision=chosen, channels_last=True, compile=compile, threads=threads,
                     tune_precision=precision == "auto" and bf16 and dev.type == "cpu",
                     keep_memory=keep_memory and dev.type == "cpu" and can_keep_memory())
