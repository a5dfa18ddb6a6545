"""The search's wall clock: `--time` is a budget for the whole search, resumes included.

The time used is kept in clock.json in the run directory, saved after every trial and every few
seconds during one, so a run killed and started again goes on with the time it had left (less
at most HEARTBEAT seconds)."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from ..errors import UserError
from ..files import write_json

HEARTBEAT = 10.0  # seconds between saves of the time used

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in '90s', '45m', '2h', '1h30m' or a bare number of seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise UserError(f"not a duration: {text!r} (write 90s, 45m, 2h or 1h30m)")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UserError(f"the time must be positive, not {text!r}")
    return seconds


class Clock:
    """`started`: the time.monotonic() reading this run's time counts from (default: now); the
    command passes its own start, so reading the data and surveying the space count too."""

    def __init__(self, path: Path, limit: float | None, started: float | None = None):
        self.path, self.limit = Path(path), limit
        self.before = 0.0  # seconds used by earlier runs of this search
        if self.path.exists():
            try:
                self.before = float(json.loads(self.path.read_text())["elapsed"])
            except (ValueError, KeyError, TypeError):
                pass  # a damaged clock: count from zero rather than refuse the run
        self.started = time.monotonic() if started is None else started
        self.saved = time.monotonic()

    def elapsed(self) -> float:
        return self.before + time.monotonic() - self.started

    def remaining(self) -> float:
        return float("inf") if self.limit is None else self.limit - self.elapsed()

    def save(self) -> None:
        self.saved = time.monotonic()
        write_json(self.path, {"elapsed": round(self.elapsed(), 3), "limit": self.limit})

    def tick(self) -> None:
        """Save now and then (call it often)."""
        if time.monotonic() - self.saved >= HEARTBEAT:
            self.save()
