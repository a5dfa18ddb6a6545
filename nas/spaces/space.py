"""Declarative search spaces: Stem + Stages + Head, any field a fixed value or a Choice.

A Candidate is a plain dict {choice name: value}. `Space.resolve(candidate)` turns it into an
Architecture: every value fixed, knobs the chosen block does not take dropped. The Architecture
is what gets built, counted (nas.budget) and frozen as code (nas.export).
"""
from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import math
import random
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from ..errors import UserError
from .choices import Choice, resolve
from .network import BLOCKS, POOLS, Network
from .registry import FAMILIES

Candidate = dict  # {choice name: value}; JSON-serialisable
DOWNSAMPLES = ("none", "stride", *POOLS)


def candidate_key(candidate: Candidate) -> str:
    """A candidate as a canonical string, to tell candidates apart."""
    return json.dumps(candidate, sort_keys=True)


@lru_cache(maxsize=None)
def block_defaults(family: str) -> dict:
    """The keyword arguments a block family takes beyond (cin, cout, stride), with their defaults."""
    return FAMILIES[family].knobs()


def block_knobs(family: str) -> frozenset[str]:
    return frozenset(block_defaults(family))


class Stem:
    """A conv-BN-activation of `width` channels; with `whiten`, airbench's frozen whitening layer
    (2x2 patches, no padding: 32 pixels become 31) and its activation come first."""

    def __init__(self, width, kernel=3, whiten=False):
        self.width, self.kernel, self.whiten = width, kernel, whiten


class Stage:
    """`depth` blocks of one family. The first block changes width and, with
    downsample='stride', halves the size; 'maxpool'/'avgpool' put a 2x2 pool before it."""

    def __init__(self, block, width, depth=1, downsample="none", **knobs):
        self.block, self.width, self.depth, self.downsample, self.knobs = block, width, depth, downsample, knobs


class Head:
    """Average pool to `pool` x `pool`, then a linear classifier or (hidden > 0) a small MLP."""

    def __init__(self, pool=1, hidden=0, dropout=0.0):
        self.pool, self.hidden, self.dropout = pool, hidden, dropout


@dataclass(frozen=True)
class Layer:
    kind: str  # a block family, or a pool
    cin: int
    cout: int
    stride: int = 1
    knobs: dict = field(default_factory=dict)


@dataclass
class StageArch:
    block: str
    width: int
    depth: int
    downsample: str
    knobs: dict


@dataclass
class Architecture:
    """One fully fixed network."""

    stem_width: int
    stem_kernel: int
    stages: list
    stem_whiten: bool = False
    head_pool: int = 1
    head_hidden: int = 0
    head_dropout: float = 0.0
    act: str = "relu"
    num_classes: int = 10
    in_channels: int = 3
    input_size: int = 32

    def __post_init__(self):
        self.stages = [s if isinstance(s, StageArch) else StageArch(**s) for s in self.stages]

    @property
    def last_width(self) -> int:
        return self.stages[-1].width if self.stages else self.stem_width

    def plan(self) -> list[list[Layer]]:
        """The layers of each stage, in order: what the builder builds and the estimator counts."""
        plan, cin = [], self.stem_width
        for s in self.stages:
            layers = []
            if s.downsample in POOLS:
                layers.append(Layer(s.downsample, cin, cin))
            for i in range(s.depth):
                stride = 2 if (i == 0 and s.downsample == "stride") else 1
                layers.append(Layer(s.block, cin if i == 0 else s.width, s.width, stride, dict(s.knobs)))
            plan.append(layers)
            cin = s.width
        return plan

    def build(self) -> Network:
        return Network(self)

    def summary(self) -> str:
        """One line: 'stem 24 | mixer 32x1 k5 e2 | /2 dwsep 48x2 k3 | ... | head 64'."""
        parts = [f"{'white ' if self.stem_whiten else ''}stem {self.stem_width}"]
        shown = {"kernel": "k", "expansion": "e", "k": "K", "skip_kernel": "s", "gate_hidden": "h"}
        for s in self.stages:
            down = {"none": "", "stride": "/2 ", "maxpool": "max/2 ", "avgpool": "avg/2 "}[s.downsample]
            knobs = " ".join(f"{shown[k]}{v}" for k, v in s.knobs.items() if k in shown)
            extra = " " + s.knobs["gate"] if "gate" in s.knobs else ""
            extra += " +res" if s.knobs.get("residual") else ""
            parts.append(f"{down}{s.block} {s.width}x{s.depth} {knobs}{extra}".rstrip())
        head = f"pool{self.head_pool}" + (f" fc{self.head_hidden}" if self.head_hidden else "")
        parts.append(f"{head} {self.act}")
        return " | ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Architecture":
        return cls(**data)


class Space:
    def __init__(self, name, stem, stages, head=None, act="relu", num_classes=10, in_channels=3,
                 input_size=32, description=""):
        self.name, self.description = name, description
        self.stem, self.stages, self.head = stem, list(stages), head or Head()
        self.act, self.num_classes, self.in_channels, self.input_size = act, num_classes, in_channels, input_size
        self.choices = self._collect_choices()
        self._check()

    # --- the choices ---------------------------------------------------------------
    def _fields(self) -> Iterator[tuple[str, Any]]:
        yield "stem.width", self.stem.width
        yield "stem.kernel", self.stem.kernel
        if self.stem.whiten is not False:  # absent where unused, so older spaces keep their fingerprint
            yield "stem.whiten", self.stem.whiten
        for i, s in enumerate(self.stages):
            yield f"stages[{i}].block", s.block
            yield f"stages[{i}].width", s.width
            yield f"stages[{i}].depth", s.depth
            yield f"stages[{i}].downsample", s.downsample
            for k, v in s.knobs.items():
                yield f"stages[{i}].{k}", v
        yield "head.pool", self.head.pool
        yield "head.hidden", self.head.hidden
        yield "head.dropout", self.head.dropout
        yield "act", self.act

    def _collect_choices(self) -> dict[str, Choice]:
        found: dict[str, Choice] = {}
        for where, value in self._fields():
            if isinstance(value, Choice):
                if value.name in found and found[value.name] != value:
                    raise ValueError(f"two different choices are named {value.name!r} ({where})")
                found[value.name] = value
        return found

    def _values(self, value) -> tuple:
        return value.values if isinstance(value, Choice) else (value,)

    def _check(self) -> None:
        if not self.stages:
            raise ValueError("a space needs at least one stage")
        for i, s in enumerate(self.stages):
            families = self._values(s.block)
            for fam in families:
                if fam not in BLOCKS:
                    raise ValueError(f"stages[{i}]: unknown block {fam!r}; one of {sorted(BLOCKS)}")
            taken = set().union(*(block_knobs(f) for f in families))
            for knob in s.knobs:
                if knob not in taken:
                    raise ValueError(f"stages[{i}]: no block in {families} takes {knob!r}")
            for d in self._values(s.downsample):
                if d not in DOWNSAMPLES:
                    raise ValueError(f"stages[{i}]: downsample {d!r} is not one of {DOWNSAMPLES}")
            for d in self._values(s.depth):
                if not isinstance(d, int) or d < 1:
                    raise ValueError(f"stages[{i}]: depth must be a positive integer, not {d!r}")

    @property
    def size(self) -> int:
        """How many candidates: the product of the choices' sizes."""
        return math.prod(len(c) for c in self.choices.values())

    # --- candidates ----------------------------------------------------------------
    def sample(self, rng: random.Random) -> Candidate:
        return {name: rng.choice(c.values) for name, c in self.choices.items()}

    def enumerate(self) -> Iterator[Candidate]:
        names = list(self.choices)
        for values in itertools.product(*(self.choices[n].values for n in names)):
            yield dict(zip(names, values))

    def validate(self, candidate: Candidate) -> None:
        """Raise ValueError naming the first problem with `candidate`."""
        if not isinstance(candidate, dict):
            raise ValueError("a candidate is a JSON object of choice names to values")
        missing = [n for n in self.choices if n not in candidate]
        extra = [n for n in candidate if n not in self.choices]
        if missing or extra:
            raise ValueError(f"candidate does not match space {self.name!r}: missing {missing}, unknown {extra}")
        for name, c in self.choices.items():
            if candidate[name] not in c.values:
                raise ValueError(f"candidate: {name}={candidate[name]!r} is not one of {list(c.values)}")

    def resolve(self, candidate: Candidate) -> Architecture:
        """The Architecture `candidate` picks."""
        c = candidate
        stages = []
        for s in self.stages:
            block = resolve(s.block, c)
            # every knob written out, defaults included: a saved architecture never changes
            # meaning when a block's default does
            knobs = dict(block_defaults(block))
            if "act" in knobs:
                knobs["act"] = resolve(self.act, c)
            knobs.update({k: resolve(v, c) for k, v in s.knobs.items() if k in knobs})
            stages.append(StageArch(block, resolve(s.width, c), resolve(s.depth, c), resolve(s.downsample, c), knobs))
        return Architecture(
            stem_width=resolve(self.stem.width, c), stem_kernel=resolve(self.stem.kernel, c), stages=stages,
            stem_whiten=bool(resolve(self.stem.whiten, c)),
            head_pool=resolve(self.head.pool, c), head_hidden=resolve(self.head.hidden, c),
            head_dropout=resolve(self.head.dropout, c), act=resolve(self.act, c), num_classes=self.num_classes,
            in_channels=self.in_channels, input_size=self.input_size,
        )

    def build(self, candidate: Candidate):
        return self.resolve(candidate).build()

    def edges(self, candidate: Candidate) -> list[tuple[str, Any, str]]:
        """The numeric choices (three values or more) where `candidate` takes the lowest or the
        highest value: (name, value, "lowest" or "highest"). A winner there says the space's range
        may have cut off better networks on that side."""
        found = []
        for name, c in self.choices.items():
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in c.values)
            if not numeric or len(c.values) < 3 or name not in candidate:
                continue
            if candidate[name] == min(c.values):
                found.append((name, candidate[name], "lowest"))
            elif candidate[name] == max(c.values):
                found.append((name, candidate[name], "highest"))
        return found

    def fingerprint(self) -> str:
        """A hash of everything that defines the space: changes when the space file's meaning changes."""
        desc = [(where, (v.name, list(v.values)) if isinstance(v, Choice) else v) for where, v in self._fields()]
        desc.append((self.num_classes, self.in_channels, self.input_size))
        families = sorted({f for s in self.stages for f in self._values(s.block)})
        desc.append([(f, block_defaults(f)) for f in families])  # the defaults resolve writes in
        return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def edges_note(space: Space, candidate: Candidate) -> str | None:
    """One sentence naming the choices where `candidate` sits at an end of the space's range, or None."""
    edges = space.edges(candidate)
    if not edges:
        return None
    where = ", ".join(f"{name}={value} ({side} of {_span(space.choices[name].values)})" for name, value, side in edges)
    return f"The winner sits at an edge of the space: {where}; a space whose ranges go further there may hold a better network."


def _span(values) -> str:
    """A numeric choice's values, short: '3..8' for consecutive integers, else '16, 24, 32'."""
    values = sorted(values)
    if all(isinstance(v, int) for v in values) and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}"
    return ", ".join(str(v) for v in values)


class SpaceFileError(UserError):
    """A space file that is missing, raises, or defines no space."""


def load_space(path: str | Path) -> Space:
    """Load a space file: a Python file that defines `space = Space(...)`."""
    path = Path(path)
    if not path.is_file():
        raise SpaceFileError(f"space file not found: {path}")
    module_name = f"_nas_space_{hashlib.md5(str(path.resolve()).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SpaceFileError(f"not a Python file: {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code: any error is the file's fault
        raise SpaceFileError(f"space file {path} raised {type(e).__name__}: {e}") from e
    space = getattr(module, "space", None)
    if not isinstance(space, Space):
        raise SpaceFileError(f"space file {path} defines no `space = Space(...)`")
    return space
