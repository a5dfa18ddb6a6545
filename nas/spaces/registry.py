"""Every block family, registered once with everything that must agree about it: the module
that builds it, the function that counts its parameters and MACs without building it, and its
colour in plots. A family file registers itself below its module (timm's way)."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from torch import nn


@dataclass(frozen=True)
class Family:
    name: str
    block: type[nn.Module]  # block(cin, cout, stride=..., **knobs)
    cost: Callable  # cost(cin, cout, stride, size, **knobs) -> (Cost, output size)
    colour: str  # for plots and diagrams

    def knobs(self) -> dict:
        """The knobs the block takes beyond (cin, cout, stride), with their defaults."""
        params = inspect.signature(self.block.__init__).parameters
        return {name: p.default for name, p in params.items() if name not in ("self", "cin", "cout", "stride")}


FAMILIES: dict[str, Family] = {}


def register(name: str, block: type[nn.Module], cost: Callable, colour: str) -> Family:
    if name in FAMILIES:
        raise ValueError(f"block family {name!r} is registered twice")
    FAMILIES[name] = family = Family(name, block, cost, colour)
    return family
