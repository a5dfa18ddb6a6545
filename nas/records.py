"""What passes between the steps of a run, in one place: the trial log's records, winner.json,
the per-epoch metrics (metrics.csv) and the retrain's result. The search writes trials and the
winner; retrain reads the winner and writes metrics and the result; the report only reads."""
from __future__ import annotations

import csv
import enum
import io
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from . import __version__
from .errors import UserError
from .files import write_text
from .spaces import Architecture, load_space

WINNER_FORMAT = 2  # 2: every block knob written into the architecture, defaults included


class TrialStatus(str, enum.Enum):
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class TrialRecord:
    """One training job of the search, as one line of trials.jsonl: candidate number `trial`
    trained on rung `rung` of the ladder (0 first) for `epochs` epochs over `data_fraction` of
    the training split."""

    trial: int
    rung: int
    candidate: dict
    summary: str
    params: int
    macs: int
    epochs: float
    data_fraction: float
    status: TrialStatus
    score: float | None  # validation accuracy of the proxy; None when it failed
    reason: str | None  # why it failed
    seconds: float  # this job's
    elapsed: float  # the search's time used when it ended, earlier runs of a resumed search included
    naswot: float | None = None  # the training-free score, with --prescreen

    @property
    def ok(self) -> bool:
        return self.status == TrialStatus.OK

    def to_dict(self) -> dict:
        data = asdict(self)
        data["status"] = self.status.value
        if self.naswot is None:
            del data["naswot"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrialRecord":
        """A line of trials.jsonl; lines from before rungs read as rung 0 of a one-rung search.
        KeyError/ValueError/TypeError when it is not a trial record."""
        status = TrialStatus(data["status"])
        return cls(trial=int(data["trial"]), rung=int(data.get("rung", 0)), candidate=dict(data["candidate"]),
                   summary=data.get("summary", ""), params=int(data.get("params", 0)), macs=int(data.get("macs", 0)),
                   epochs=float(data.get("epochs") or 0), data_fraction=float(data.get("data_fraction", 1.0)),
                   status=status, score=None if data.get("score") is None else float(data["score"]),
                   reason=data.get("reason"), seconds=float(data.get("seconds", 0.0)),
                   elapsed=float(data.get("elapsed", 0.0)), naswot=data.get("naswot"))


@dataclass
class EpochStats:
    """One epoch of training. `test_*` is whatever split the run evaluated on: the held-out
    validation split in a search's proxy, the test split in a retrain."""

    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float | None  # None where the recipe skipped this epoch's evaluation
    test_acc: float | None
    test_acc_tta: float | None
    lr: float
    seconds: float


WINNER_FIELDS = ("format", "space", "candidate", "architecture", "params", "macs")


def load_winner(path: str | Path, check_space: bool = True) -> dict:
    """Read and check winner.json; the space file it names must be unchanged."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"winner file not found: {path}")
    try:
        winner = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not JSON: {e}") from None
    if not isinstance(winner, dict):
        raise UserError(f"{path} is not a winner file (a JSON object)")
    missing = [f for f in WINNER_FIELDS if f not in winner]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: not a winner file written by nas search")
    if winner["format"] != WINNER_FORMAT:
        raise UserError(f"{path} has format {winner['format']!r}; this nas {__version__} reads format {WINNER_FORMAT}")
    try:
        arch = Architecture.from_dict(winner["architecture"])
    except TypeError as e:
        raise UserError(f"{path}: bad architecture: {e}") from None
    if check_space:
        space_file = Path(winner["space"]["path"])
        if not space_file.is_absolute() and not space_file.exists():
            space_file = path.parent / space_file
        space = load_space(space_file)
        if space.fingerprint() != winner["space"]["fingerprint"]:
            raise UserError(f"space file {winner['space']['path']} has changed since this winner was found")
        try:
            space.validate(winner["candidate"])
        except ValueError as e:
            raise UserError(f"{path}: {e}") from None
        if space.resolve(winner["candidate"]) != arch:
            raise UserError(f"{path}: its candidate no longer gives its architecture")
    winner["_arch"] = arch
    return winner


def write_metrics(path: Path, history: list[EpochStats]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    names = [f.name for f in fields(EpochStats)]
    writer.writerow(names)
    for h in history:
        writer.writerow(["" if getattr(h, n) is None else round(getattr(h, n), 6) for n in names])
    write_text(path, buffer.getvalue())


def read_metrics(path: Path) -> list[EpochStats]:
    rows = list(csv.DictReader(path.open()))
    casts = {f.name: (int if f.name == "epoch" else float) for f in fields(EpochStats)}
    return [EpochStats(**{k: (None if v == "" else casts[k](v)) for k, v in row.items()}) for row in rows]


