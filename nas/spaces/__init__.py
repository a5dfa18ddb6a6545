"""Declarative CNN search spaces.

    from nas.spaces import Space, Stem, Stage, Head, choice, irange
    space = Space("mine", Stem(width=choice("stem", [16, 32])),
                  [Stage("residual", width=choice("w1", [32, 64]), depth=irange("d1", 1, 3))])

Built-in spaces are importable too: `nas.spaces.builtin("tiny")` loads spaces/tiny.py.
"""
from pathlib import Path

from .choices import Choice, choice, irange
from .network import BLOCKS, Classifier, Network
from .space import Architecture, Candidate, Head, Layer, Space, SpaceFileError, Stage, Stem, load_space

SPACES_DIR = Path(__file__).resolve().parents[2] / "spaces"


def builtin(name: str) -> Space:
    """One of the space files shipped in spaces/ (tiny, gated, resnet)."""
    return load_space(SPACES_DIR / f"{name}.py")


__all__ = ["Architecture", "BLOCKS", "Candidate", "Choice", "Classifier", "Head", "Layer", "Network", "Space",
           "SpaceFileError", "Stage", "Stem", "builtin", "choice", "irange", "load_space"]
