"""Parameter and MAC counting of the layers blocks are made of: what each family's cost function
(beside its module, in its own file) adds up. `nas.budget` sums them over a network."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cost:
    params: int
    macs: int

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.params + other.params, self.macs + other.macs)


ZERO = Cost(0, 0)


def out_size(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * ((kernel - 1) // 2) - kernel) // stride + 1


def conv(cin, cout, kernel, stride, size, groups=1, bias=False, bn=True) -> tuple[Cost, int]:
    """A conv (+BN): its cost and output size."""
    out = out_size(size, kernel, stride)
    weights = cout * (cin // groups) * kernel * kernel
    params = weights + (cout if bias else 0) + (2 * cout if bn else 0)
    return Cost(params, weights * out * out), out


def linear(cin, cout, bias=True) -> Cost:
    return Cost(cin * cout + (cout if bias else 0), cin * cout)
