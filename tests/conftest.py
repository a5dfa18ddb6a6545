import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(min(2, os.cpu_count() or 1))


def run_nas(*args, cwd=ROOT, timeout=600):
    """Run the real `nas` command line in a fresh process."""
    return subprocess.run([sys.executable, "-m", "nas", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def nas_cli():
    return run_nas


@pytest.fixture(autouse=True, scope="session")
def _a_cache_of_their_own(tmp_path_factory):
    """The tests' timed decisions and data go to a cache of their own, never the user's."""
    previous = os.environ.get("NAS_DATA_CACHE")
    os.environ["NAS_DATA_CACHE"] = str(tmp_path_factory.mktemp("nas-cache"))
    yield
    if previous is None:
        os.environ.pop("NAS_DATA_CACHE", None)
    else:
        os.environ["NAS_DATA_CACHE"] = previous


@pytest.fixture
def trained_sizes(monkeypatch):
    """The parameter count of every network the search trains, in order."""
    import nas.search.jobs as jobs
    sizes, real = [], jobs.train

    def spy(model, *a, **k):
        sizes.append(sum(p.numel() for p in model.parameters()))
        return real(model, *a, **k)

    monkeypatch.setattr(jobs, "train", spy)
    return sizes
