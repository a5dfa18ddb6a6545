"""trials.jsonl: one JSON line per finished trial, appended and fsynced the moment it ends."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..spaces.space import candidate_key


class TrialLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records: list[dict] = []
        self.by_key: dict[str, dict] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
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
                    print(f"nas: warning: dropped a torn last line of {self.path}", file=sys.stderr)
                    break
                raise ValueError(f"{self.path}: line {i + 1} is not JSON") from None
            good.append(line)
            self._remember(record)
        if raw and not raw.endswith(b"\n"):  # rewrite without the torn tail, so appends start clean
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
