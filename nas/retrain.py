"""Retrain a search's winner from scratch with the full recipe, then freeze it as code.

winner.json -> Architecture -> train (metrics.csv per epoch, checkpoint.pt to resume) ->
model.py + model.pkl + evaluate.py, loss.png + error.png, result.json.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from .budget import estimate
from .data import Dataset, channel_stats, check_compatible
from .errors import UserError
from .execution import Execution, choose, default_batch_size
from .export import freeze
from .files import save_torch
from .records import EpochStats, RetrainResult, Winner, read_metrics, write_metrics
from .train import FULL, Recipe, train


def run_retrain(winner: Winner, data: Dataset, out: str | Path, recipe: Recipe = FULL, seed: int = 0,
                device=None, view=None, command: str = "", execution: Execution | None = None) -> RetrainResult:
    from .report.plots import plot_curves

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write to {out}: {e.strerror}") from None
    arch = winner.architecture
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
        write_metrics(metrics_path, history)
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
    result = RetrainResult(
        architecture=arch, params=cost.params, macs=cost.macs, epochs=recipe.epochs, final_test_acc=last.test_acc,
        best_test_acc=max(h.test_acc for h in history if h.test_acc is not None),
        final_test_acc_tta=last.test_acc_tta, seconds=round(seconds, 1), data=data.source, device=execution.device,
        execution=execution.to_dict(), execution_summary=execution.describe(), recipe=recipe.to_dict(),
        space=winner.space, candidate=winner.candidate, proxy_score=winner.proxy_score,
        budget=winner.budget.to_dict(), command=command)
    result.save(out / "result.json")
    checkpoint_path.unlink(missing_ok=True)
    if view is not None:
        view.finish(result)
    return result
