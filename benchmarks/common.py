"""What the benchmarks share: arguments, data, the machine's description, and appending a
result section to docs/benchmarks.md. Benchmarks measure; they assert nothing."""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default=os.environ.get("CIFAR10_NPZ", "cifar10"),
                   help="cifar10, an .npz or an ImageFolder (default: $CIFAR10_NPZ, else cifar10)")
    p.add_argument("--device", default=None)
    p.add_argument("--docs", action="store_true", help="append the result to docs/benchmarks.md")
    p.add_argument("--seed", type=int, default=0)
    return p


def machine() -> str:
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    else:
        gpu = "no GPU"
    return f"{gpu}; {os.cpu_count()} CPU cores; torch {torch.__version__}; Python {platform.python_version()}"


def publish(title: str, markdown: str, docs: bool) -> None:
    """Print a result section and, with --docs, append it to docs/benchmarks.md."""
    command = "python " + shlex.join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    section = (f"\n## {title}\n\n{datetime.date.today()} on {machine()}.\n\n```\n{command}\n```\n\n{markdown}\n")
    print(section)
    if docs:
        with open(ROOT / "docs" / "benchmarks.md", "a") as f:
            f.write(section)


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def sync(device) -> None:
    if torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")).type == "cuda":
        torch.cuda.synchronize()


def median_seconds(f, repeats: int = 5, warmup: int = 2) -> float:
    """The median wall time of `f()` over `repeats` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2]
