"""Retrain a search's winner from scratch with the full recipe, then freeze it as code.

winner.json -> Architecture -> train (metrics.csv per epoch, checkpoint.pt to resume) ->
model.py + model.pkl + evaluate.py, loss.png + error.png, result.json.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .budget import estimate
from .data import Dataset, channel_stats, check_compatible
from .errors import UserError
from .execution import Execution, choose, default_batch_size
from .export import freeze, frozen_accuracy
from .files import save_torch
from .records import EpochStats, RetrainResult, Winner, read_metrics, write_metrics
from .spaces.space import Architecture
from .train import FULL, Recipe, train


def run_retrain(winner: Winner, data: Dataset, out: str | Path, recipe: Recipe = FULL, seed: int = 0,
                device=None, view=None, command: str = "", execution: Execution | None = None) -> RetrainResult:
    from .report.plots import plot_curves

    out = Path(out)
    arch = winner.architecture
    check_compatible(data, arch.input_size, arch.in_channels, arch.num_classes)
    for flag, shift in (("--tta-shift", recipe.tta_shift), ("--translate", recipe.augment.translate)):
        if shift >= arch.input_size // 2:
            raise UserError(f"{flag} {shift} is too far for {arch.input_size}-pixel images "
                            f"(at most {arch.input_size // 2 - 1})")
    if recipe.distill and not recipe.teacher:
        raise UserError("distillation needs a teacher (--teacher DIR)")
    if recipe.teacher:
        from .distill import load_teacher
        load_teacher(recipe.teacher)  # checked before anything is written
    cost = estimate(arch)
    execution = execution or choose(device)
    recipe = recipe.with_(batch_size=recipe.batch_size or default_batch_size(execution.device))
    done, ckpt = earlier_run(out, arch, recipe)
    if done is not None:  # the same retrain, finished: nothing to train again
        if view is not None:
            view.finish(done)
        return done
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write to {out}: {e.strerror}") from None
    mean, std = channel_stats(data.train)
    torch.manual_seed(seed)
    model = arch.build()
    checkpoint_path, metrics_path = out / "checkpoint.pt", out / "metrics.csv"
    history, start, opt_state = [], 0, None
    if ckpt is not None and metrics_path.exists():
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
        soft = None
        if recipe.distill:
            from .distill import agreement, teacher_logits
            soft = teacher_logits(recipe.teacher, data.train.x, data.num_classes, out, autocast=execution.autocast)
            if view is not None:
                view.note(f"teacher {recipe.teacher}: {100 * agreement(soft, data.train.y):.2f}% of the training "
                          f"images ranked right, distilled at weight {recipe.distill:g}, temperature {recipe.temperature:g}")
        execution = train(model, data.train, data.test, recipe, mean, std, seed=seed, on_epoch=on_epoch,
                          start_epoch=start, optimizer_state=opt_state, on_checkpoint=on_checkpoint,
                          execution=execution, teacher_logits=soft).execution
    seconds = time.perf_counter() - started + sum(h.seconds for h in history[:start])
    model.to("cpu").eval()
    freeze(arch, model, out, mean, std, data.source)
    plot_curves(history, out)
    # The claim is the frozen network's, scored as its evaluate.py scores it (fp32 on the CPU), not the
    # last epoch's evaluation under the training's execution (bf16 moves an image or two).
    final, final_tta = frozen_accuracy(model, data.test.x, data.test.y, mean, std, recipe.tta_shift)
    last = history[-1]
    result = RetrainResult(
        architecture=arch, params=cost.params, macs=cost.macs, epochs=recipe.epochs, final_test_acc=final,
        best_test_acc=max(h.test_acc for h in history if h.test_acc is not None),
        final_test_acc_tta=final_tta if last.test_acc_tta is not None else None, seconds=round(seconds, 1), data=data.source, device=execution.device,
        execution=execution.to_dict(), execution_summary=execution.describe(), recipe=recipe.to_dict(),
        space=winner.space, candidate=winner.candidate, proxy_score=winner.proxy_score,
        budget=winner.budget.to_dict(), command=command)
    result.save(out / "result.json")
    checkpoint_path.unlink(missing_ok=True)
    if view is not None:
        view.finish(result)
    return result


def earlier_run(out: Path, arch, recipe: Recipe) -> tuple[RetrainResult | None, dict | None]:
    """What `out` already holds of this retrain: its finished result, or the checkpoint to go on
    from (or neither). A retrain there with another network or recipe is refused in one line:
    going on from it would mix two runs, starting over would throw it away."""
    ours = _plain({"architecture": arch.to_dict(), "recipe": recipe.to_dict()})
    if (out / "result.json").exists():
        done = RetrainResult.load(out / "result.json")
        theirs = _plain({"architecture": done.architecture.to_dict(), "recipe": _recorded(done.recipe)})
        if theirs == ours:
            return done, None
        raise UserError(f"{out} already holds a finished retrain with other settings ({_differences(theirs, ours)}); "
                        "give another --out")
    if not (out / "checkpoint.pt").exists():
        return None, None
    try:
        ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
        theirs = _plain({"architecture": Architecture.from_dict(ckpt["architecture"]).to_dict(),
                         "recipe": _recorded(ckpt["recipe"])})  # fields added since, at their defaults
    except Exception as e:
        raise UserError(f"{out / 'checkpoint.pt'} is not a retrain's checkpoint ({type(e).__name__}); "
                        "move it away to start over") from None
    if theirs != ours:
        raise UserError(f"{out} holds a retrain stopped after epoch {ckpt.get('epoch')} with other settings "
                        f"({_differences(theirs, ours)}); run the command that started it to go on, or give another --out")
    return None, ckpt


def _recorded(recipe: dict) -> dict:
    """A recipe as recorded, with the fields added since it was written at their defaults (each
    new field's default is what the code did before it)."""
    defaults = Recipe().to_dict()
    merged = {**defaults, **recipe}
    if isinstance(recipe.get("augment"), dict):  # fields added to Augment since, likewise
        merged["augment"] = {**defaults["augment"], **recipe["augment"]}
    return merged


def _plain(settings: dict) -> dict:
    return json.loads(json.dumps(settings))  # as a JSON file holds them (tuples as lists)


def _differences(theirs: dict, ours: dict) -> str:
    if theirs["architecture"] != ours["architecture"]:
        return "another network"
    changed = [k for k in ours["recipe"] if theirs["recipe"].get(k) != ours["recipe"][k]]
    return ", ".join(f"{k} {theirs['recipe'].get(k)} there, {ours['recipe'][k]} here" for k in changed)
