"""trials.jsonl: one JSON line per finished training job (a candidate on one rung), appended and
fsynced the moment it ends. Lines written before rungs existed read as rung 0."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import UserError
from ..records import TrialRecord
from ..spaces.space import candidate_key


class TrialLogError(UserError):
    """trials.jsonl that is not a log of trials."""


class TrialLog:
    """Read with repair=False (the report, `nas show`): nothing is written. Only the search, the
    one writer, opens it with repair=True, which cuts a torn last line before appending."""

    def __init__(self, path: str | Path, repair: bool = False):
        self.path = Path(path)
        self.records: list[TrialRecord] = []  # every job, in the order they ended
        self.by_key: dict[str, dict[int, TrialRecord]] = {}  # candidate -> rung -> its job
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
            try:
                record = TrialRecord.from_dict(record)
            except (KeyError, ValueError, TypeError, AttributeError):
                raise TrialLogError(f"{self.path}: line {i + 1} is not a trial record") from None
            good.append(line)
            self._remember(record)
        if repair and raw and not raw.endswith(b"\n"):  # rewrite without the torn tail, so appends start clean
            from ..files import write_bytes
            write_bytes(self.path, b"".join(l + b"\n" for l in good))

    def _remember(self, record: TrialRecord) -> None:
        self.records.append(record)
        self.by_key.setdefault(candidate_key(record.candidate), {})[record.rung] = record

    def rungs(self, candidate: dict) -> dict[int, TrialRecord]:
        """The candidate's jobs by rung ({} when it was never trained)."""
        return self.by_key.get(candidate_key(candidate), {})

    def get(self, candidate: dict) -> TrialRecord | None:
        """The candidate's job on the highest rung it reached."""
        jobs = self.rungs(candidate)
        return jobs[max(jobs)] if jobs else None

    def finished(self, trial: int) -> TrialRecord:
        """Candidate number `trial`'s job on the highest rung it finished; a UserError line when the log
        has no such trial or all its jobs failed."""
        jobs = sorted((r for r in self.records if r.trial == trial), key=lambda r: r.rung)
        if not jobs:
            raise UserError(f"{self.path} has no trial {trial}")
        done = [r for r in jobs if r.ok]
        if not done:
            raise UserError(f"trial {trial} failed in the search ({jobs[-1].reason}): nothing to retrain")
        return done[-1]

    def append(self, record: TrialRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record.to_dict()) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._remember(record)

    def final(self) -> list[TrialRecord]:
        """One record per candidate, its highest rung's, in the order candidates were first trained."""
        return [jobs[max(jobs)] for jobs in self.by_key.values()]

    def ok(self) -> list[TrialRecord]:
        """Per candidate that trained at all, its job on the highest rung it finished."""
        ok = ([r for _, r in sorted(jobs.items()) if r.ok] for jobs in self.by_key.values())
        return [done[-1] for done in ok if done]

    def best(self) -> TrialRecord | None:
        """The winner: the best score on the highest rung any candidate finished."""
        ok = self.ok()
        top = max((r.rung for r in ok), default=None)
        return max((r for r in ok if r.rung == top), key=lambda r: r.score, default=None)

    def __len__(self) -> int:
        """Candidates trained (on rung 0 at least)."""
        return len(self.by_key)
