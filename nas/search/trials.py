"""trials.jsonl: one JSON line per finished trial, appended and fsynced the moment it ends."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import UserError
from ..spaces.space import candidate_key


class TrialLogError(UserError):
    """trials.jsonl that is not a log of trials."""


class TrialLog:
    """Read with repair=False (the report, `nas show`): nothing is written. Only the search, the
    one writer, opens it with repair=True, which cuts a torn last line before appending."""

    def __init__(self, path: str | Path, repair: bool = False):
        self.path = Path(path)
        self.records: list[dict] = []
        self.by_key: dict[str, dict] = {}
        if self.path.exists():
            self._load(repair)

    def _load(self, repair: bool) -> None:
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        good = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # the last line, cut short by a crash mid-write
                    if repair:
                        print(f"nas: warning: dropped a torn last line of {self.path}", file=sys.stderr)
                    break
                raise TrialLogError(f"{self.path}: line {i + 1} is not JSON (a damaged log; only a torn last "
                                    f"line is dropped)") from None
            if not isinstance(record, dict) or "candidate" not in record or "status" not in record:
                raise TrialLogError(f"{self.path}: line {i + 1} is not a trial record")
            good.append(line)
            self._remember(record)
        if repair and raw and not raw.endswith(b"\n"):  # rewrite without the torn tail, so appends start clean
            from ..files import write_bytes
            write_bytes(self.path, b"".join(l + b"\n" for l in good))

    def _remember(self, record: dict) -> None:
        self.records.append(record)
        self.by_key[candidate_key(record["candidate"])] = record

    def get(self, candidate: dict) -> dict | None:
        return self.by_key.get(candidate_key(candidate))

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._remember(record)

    def ok(self) -> list[dict]:
        return [r for r in self.records if r["status"] == "ok"]

    def best(self) -> dict | None:
        return max(self.ok(), key=lambda r: r["score"], default=None)

    def __len__(self) -> int:
        return len(self.records)
