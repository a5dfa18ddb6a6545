"""What passes between the steps of a run, in one place: the trial log's records, winner.json,
the per-epoch metrics (metrics.csv) and the retrain's result (result.json). The search writes trials and the
winner; retrain reads the winner and writes metrics and the result; the report only reads."""
from __future__ import annotations

import csv
import enum
import io
import json
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path

from . import __version__
from .budget import Budget, estimate
from .errors import UserError
from .files import write_json, write_text
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


def _read_object(path: Path, what: str) -> dict:
    """A JSON object from `path`, or a one-line UserError saying why not."""
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a {what} (a JSON object)")
    return data


def _architecture(path: Path, data) -> Architecture:
    """The architecture a file describes, checked by counting it (an unknown block family or knob
    fails here, not later in the middle of a run)."""
    try:
        arch = Architecture.from_dict(data)
        estimate(arch)
        return arch
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise UserError(f"{path}: bad architecture: {type(e).__name__}: {e}") from None


@dataclass(frozen=True)
class Winner:
    """winner.json: the search's best candidate, which `nas retrain` and `nas show` take. The
    fields after `macs` describe how it was found; a winner written by hand may leave them out."""

    space: dict  # {"path", "name", "fingerprint"} of the space file it came from
    budget: Budget
    candidate: dict
    architecture: Architecture  # every value fixed, every knob written out (format 2)
    params: int
    macs: int
    proxy_score: float | None = None  # on the held-out validation split, at the highest rung it reached
    proxy_rung: int = 0
    proxy_epochs: float | None = None
    strategy: str | None = None
    trials: int | None = None  # candidates the search trained
    seed: int | None = None
    search_seconds: float | None = None
    data: str = "cifar10"  # the search's --data, retrain's default
    normalize: dict | None = None  # {"mean", "std"} of the training split
    proxy_recipe: dict | None = None
    ladder: dict | None = None
    nas_version: str = __version__

    @property
    def summary(self) -> str:
        return self.architecture.summary()

    def to_dict(self) -> dict:
        d = {"format": WINNER_FORMAT, "nas_version": self.nas_version, "space": self.space,
             "budget": self.budget.to_dict(), "candidate": self.candidate,
             "architecture": self.architecture.to_dict(), "summary": self.summary}
        d.update({f.name: getattr(self, f.name) for f in fields(self)
                  if f.name not in d and f.name not in ("architecture", "budget")})
        return d

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path, check_space: bool = True) -> "Winner":
        """Read and check winner.json; with check_space, the space file it names must be unchanged
        and must still give its architecture. Every problem is one UserError line."""
        path = Path(path)
        data = _read_object(path, "winner file")
        missing = [f for f in WINNER_FIELDS if f not in data]
        if missing:
            raise UserError(f"{path} lacks {', '.join(missing)}: not a winner file written by nas search")
        if data["format"] != WINNER_FORMAT:
            raise UserError(f"{path} has format {data['format']!r}; this nas {__version__} reads format {WINNER_FORMAT}")
        arch = _architecture(path, data["architecture"])
        if check_space:
            _check_space(path, data, arch)
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{**{k: v for k, v in data.items() if k in known}, "architecture": arch,
                          "budget": Budget.from_dict(data.get("budget"))})
        except (TypeError, AttributeError) as e:
            raise UserError(f"{path}: {e}") from None

    def for_trial(self, path: str | Path, record: TrialRecord) -> "Winner":
        """The same search's candidate `record` (a finished job of trials.jsonl beside winner.json at
        `path`) in the winner's place: a runner-up to retrain."""
        space = load_space(_space_file(Path(path), {"space": self.space}))
        try:
            arch = space.resolve(record.candidate)
        except ValueError as e:
            raise UserError(f"trial {record.trial}: {e}") from None
        return replace(self, candidate=record.candidate, architecture=arch, params=record.params, macs=record.macs,
                       proxy_score=record.score, proxy_rung=record.rung, proxy_epochs=record.epochs)


def _space_file(path: Path, data: dict) -> Path:
    """The space file winner.json at `path` names, read relative to the working directory or, failing
    that, to winner.json's folder."""
    space_file = Path(data["space"]["path"])
    if not space_file.is_absolute() and not space_file.exists():
        space_file = path.parent / space_file
    return space_file


def _check_space(path: Path, data: dict, arch: Architecture) -> None:
    space = load_space(_space_file(path, data))
    if space.fingerprint() != data["space"]["fingerprint"]:
        raise UserError(f"space file {data['space']['path']} has changed since this winner was found")
    try:
        space.validate(data["candidate"])
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    if space.resolve(data["candidate"]) != arch:
        raise UserError(f"{path}: its candidate no longer gives its architecture")


@dataclass(frozen=True)
class RetrainResult:
    """result.json: what `nas retrain` made of a winner. The final accuracies are the frozen
    network's on the test split after the final epoch, scored as its evaluate.py scores it (fp32, on
    the CPU), so they can differ by an image or two from metrics.csv's last row, which ran in the
    training's execution (bf16, say). `best_test_acc` is over metrics.csv's epochs, for information only."""

    architecture: Architecture
    params: int
    macs: int
    epochs: float
    final_test_acc: float
    best_test_acc: float
    final_test_acc_tta: float | None
    seconds: float  # training and evaluation, every epoch, resumes included
    data: str
    device: str
    execution: dict  # Execution.to_dict() as it ran
    execution_summary: str
    recipe: dict  # Recipe.to_dict(), batch size fixed
    space: dict | None = None
    candidate: dict | None = None
    proxy_score: float | None = None
    budget: dict | None = None
    command: str = ""

    @property
    def summary(self) -> str:
        return self.architecture.summary()

    @property
    def tta_name(self) -> str:
        """What final_test_acc_tta averaged: the mirrored pair, or also its shifted crops."""
        return "multi-crop TTA" if self.recipe.get("tta_shift") else "flip-TTA"

    def to_dict(self) -> dict:
        d = {"format": WINNER_FORMAT, "summary": self.summary}
        d.update({f.name: getattr(self, f.name) for f in fields(self)})
        d["architecture"] = self.architecture.to_dict()
        return d

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "RetrainResult":
        path = Path(path)
        data = _read_object(path, "retrain result")
        known = {f.name for f in fields(cls)}
        missing = sorted(f.name for f in fields(cls) if f.name not in data and f.default is MISSING)
        if missing:
            raise UserError(f"{path} lacks {', '.join(missing)}: not a result.json written by nas retrain")
        return cls(**{**{k: v for k, v in data.items() if k in known},
                      "architecture": _architecture(path, data["architecture"])})


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


