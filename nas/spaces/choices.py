"""Named choices: the only source of variation in a search space.

A choice has a name (its key in a candidate) and a finite, ordered list of values.
Using the same Choice object in two places ties them: one value serves both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Choice:
    name: str
    values: tuple

    def __init__(self, name: str, values: Sequence[Any]):
        if not name or not isinstance(name, str):
            raise ValueError("a choice needs a non-empty string name")
        values = tuple(values)
        if not values:
            raise ValueError(f"choice {name!r} has no values")
        if len(set(values)) != len(values):
            raise ValueError(f"choice {name!r} repeats a value: {values}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "values", values)

    def __len__(self) -> int:
        return len(self.values)


def choice(name: str, values: Sequence[Any]) -> Choice:
    """A categorical choice: one of `values`."""
    return Choice(name, values)


def irange(name: str, low: int, high: int, step: int = 1) -> Choice:
    """An integer choice from `low` to `high`, both included."""
    if step <= 0 or high < low:
        raise ValueError(f"irange {name!r}: need low <= high and step > 0")
    return Choice(name, range(low, high + 1, step))


def resolve(value: Any, candidate: dict) -> Any:
    """The value a field takes in `candidate`: a Choice's pick, or the fixed value itself."""
    if isinstance(value, Choice):
        return candidate[value.name]
    return value
