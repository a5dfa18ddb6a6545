"""Retrain a search's winner from scratch with the full recipe, then freeze it as code.

winner.json -> Architecture -> train (metrics.csv per epoch, checkpoint.pt to resume) ->
model.py + model.pkl + evaluate.py, loss.png + error.png, result.json.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, fields
from pathlib import Path

import torch

from . import __version__
from .budget import estimate
from .data import Dataset, channel_stats, check_compatible
from .errors import UserError
from .execution import Execution, choose
from .export import freeze
from .files import save_torch, write_json, write_text
from .search.runner import WINNER_FORMAT
from .spaces import Architecture, load_space
from .execution import default_batch_size
from .train import FULL, EpochStats, Recipe, train

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


def _write_metrics(path: Path, history: list[EpochStats]) -> None:
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


def run_retrain(winner: dict, data: Dataset, out: str | Path, recipe: Recipe = FULL, seed: int = 0,
                device=None, view=None, command: str = "", execution: Execution | None = None) -> dict:
    from .report.plots import plot_curves

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write to {out}: {e.strerror}") from None
    arch: Architecture = winner["_arch"]
    check_compatible(data, arch.input_size, arch.in_channels, arch.num_classes)
    cost = estimate(arch)
    execution = execution or choose(device)
    recipe = recipe.with_(batch_size=recipe.batch_size or default_batch_size(execution.device))
    mean, std = channel_stats(data.train)
    torch.manual_seed(seed)
    model = arch.build()
    checkpoint_path, metrics_path = out / "checkpoint.pt", out / "metrics.csv"
    history, start, opt_state = [], 0, None
    if checkpoint_path.exists() and metrics_path.exists():
        ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if ckpt.get("recipe") == recipe.to_dict() and ckpt.get("architecture") == arch.to_dict():
            model.load_state_dict(ckpt["model"])
            opt_state, start = ckpt["optimizer"], ckpt["epoch"]
            history = read_metrics(metrics_path)[:start]
    if view is not None:
        view.start(winner, cost, recipe, resumed=start, execution=execution)

    def on_epoch(stats: EpochStats):
        history.append(stats)
        _write_metrics(metrics_path, history)
        if view is not None:
            view.epoch(stats)

    def on_checkpoint(epoch, model, optimizer):
        save_torch(checkpoint_path, {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                     "recipe": recipe.to_dict(), "architecture": arch.to_dict()})

    started = time.perf_counter()
    if start < recipe.epochs:
        execution = train(model, data.train, data.test, recipe, mean, std, seed=seed, on_epoch=on_epoch,
                          start_epoch=start, optimizer_state=opt_state, on_checkpoint=on_checkpoint,
                          execution=execution).execution
    seconds = time.perf_counter() - started + sum(h.seconds for h in history[:start])
    model.to("cpu").eval()
    freeze(arch, model, out, mean, std, data.source)
    plot_curves(history, out)
    last = history[-1]
    result = {
        "format": WINNER_FORMAT, "summary": arch.summary(), "params": cost.params, "macs": cost.macs, "epochs": recipe.epochs,
        "final_test_acc": last.test_acc, "best_test_acc": max(h.test_acc for h in history if h.test_acc is not None),
        "final_test_acc_tta": last.test_acc_tta, "seconds": round(seconds, 1), "data": data.source,
        "device": execution.device, "execution": execution.to_dict(), "execution_summary": execution.describe(),
        "recipe": recipe.to_dict(),
        "space": winner["space"], "candidate": winner["candidate"], "architecture": arch.to_dict(),
        "proxy_score": winner.get("proxy_score"), "budget": winner.get("budget"), "command": command,
    }
    write_json(out / "result.json", result)
    checkpoint_path.unlink(missing_ok=True)
    if view is not None:
        view.finish(result)
    return result
