"""The `nas` command: parses arguments and calls the library. Nothing else lives here."""
from __future__ import annotations

import argparse
import sys

from .errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _number(text: str, ok, says: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must {says}, not {text}")
    return value


def _positive_float(text: str) -> float:
    return _number(text, lambda v: v > 0, "be positive")


def _non_negative_float(text: str) -> float:
    return _number(text, lambda v: 0 <= v < float("inf"), "be 0 or more")


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _open_fraction(text: str) -> float:
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1), not {text}")
    return value


def _open_unit(text: str) -> float:
    return _number(text, lambda v: 0 <= v < 1, "lie in [0, 1)")


def _fraction(text: str) -> float:
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], not {text}")
    return value


def _duration(text: str) -> float:
    from .search.clock import parse_duration
    try:
        return parse_duration(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e))


def _at_least_two(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be 2 or more, not {value}")
    return value


def _share(text: str) -> float:
    return _number(text, lambda v: 0 <= v < 1, "lie in [0, 1)")


def _add_execution_flags(p) -> None:
    p.add_argument("--device", help="cuda or cpu (default: cuda when there is one)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="bf16 autocast or fp32 (default auto: bf16 where the device has it natively, timed "
                        "against fp32 on a CPU)")
    p.add_argument("--compile", nargs="?", const="on", default="auto", choices=("auto", "on", "off"),
                   help="torch.compile the network (default auto: only a long run, and only if it is faster)")
    p.add_argument("--threads", type=_positive_int, help="CPU threads (default: the cores this process may use)")
    p.add_argument("--no-keep-memory", dest="keep_memory", action="store_false",
                   help="leave malloc as it is (default on a CPU: freed memory kept for the next step, no mmap "
                        "of large tensors)")


def _execution(args):
    from .execution import choose
    return choose(args.device, args.precision, args.compile, args.threads, args.keep_memory)


def build_parser() -> argparse.ArgumentParser:
    """Every default and its help text come from where the setting lives (SearchConfig, the recipes)."""
    from dataclasses import fields

    from .search.runner import DEFAULT_TRIALS, SearchConfig
    from .train import AIRBENCH, FULL, PROXY, RECIPES

    search_default = {f.name: f.default for f in fields(SearchConfig)}
    parser = _Parser(prog="nas", description="Budget-aware neural architecture search for PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("search", help="search a space for the best network within a budget")
    s.add_argument("space", help="a space file, e.g. spaces/tiny.py")
    s.add_argument("--budget", help="max trainable parameters (50000, 50k, 5M) or a budget file budgets/NAME.toml")
    s.add_argument("--macs", help="max multiply-accumulates per image (20M)")
    s.add_argument("--dry-run", action="store_true", help="count what fits the budget; train nothing")
    s.add_argument("--strategy", default=search_default["strategy"],
                   help=f"random, grid, evolution, tpe or rl (NNI's; default {search_default['strategy']})")
    s.add_argument("--trials", type=_positive_int,
                   help=f"candidates to train (default: as many as --time allows, else {DEFAULT_TRIALS})")
    s.add_argument("--time", type=_duration, help="wall-clock time for the whole search, resumes included "
                   "(90s, 45m, 2h); it stops cleanly at it with the best candidate found")
    s.add_argument("--proxy-epochs", type=_positive_float,
                   help=f"epochs of the proxy's last rung (default {PROXY.epochs:g})")
    s.add_argument("--rungs", type=_positive_int, default=search_default["rungs"],
                   help=f"successive halving: rungs of training length, each --eta times the one below "
                        f"(default {search_default['rungs']}; 1 trains every candidate for --proxy-epochs)")
    s.add_argument("--eta", type=_at_least_two, default=search_default["eta"],
                   help=f"each rung promotes its best 1/eta (default {search_default['eta']})")
    s.add_argument("--min-share", type=_share, default=search_default["min_share"],
                   help=f"train only candidates using at least this share of the budget: of --budget's params or "
                        f"of --macs, whichever they use more of (default {search_default['min_share']}; 0 trains "
                        f"any that fits)")
    s.add_argument("--batch-size", type=_positive_int, help="proxy batch size (default 256 on a CPU, 512 on a GPU)")
    s.add_argument("--trial-timeout", type=_positive_float, help="seconds a trial may train before it fails")
    s.add_argument("--val-fraction", type=_open_fraction, default=search_default["val_fraction"],
                   help=f"of the training split, held out to score (default {search_default['val_fraction']})")
    s.add_argument("--data-fraction", type=_fraction, default=search_default["data_fraction"],
                   help=f"of the rest, used to train the proxy (default {search_default['data_fraction']})")
    s.add_argument("--prescreen", type=_fraction, help="train only the top fraction of candidates by a "
                   "training-free NASWOT score (e.g. 0.5)")
    s.add_argument("--data", default="cifar10", help="cifar10, a .npz file, or an ImageFolder directory")
    s.add_argument("--out", help="run directory (default runs/SPACE)")
    s.add_argument("--workers", type=_positive_int, default=search_default["workers"],
                   help="train this many candidates at once, each in a worker process of a local Dask cluster "
                        "(the CPU's cores, or the GPUs, are shared out between them; default 1: in this process)")
    s.add_argument("--scheduler", help="train on the Dask cluster whose scheduler is at tcp://HOST:PORT instead")
    _add_execution_flags(s)
    s.add_argument("--seed", type=int, default=0)

    r = sub.add_parser("retrain", help="train a search's winner fully and freeze it as code")
    r.add_argument("winner", help="winner.json written by nas search")
    r.add_argument("--trial", type=_non_negative_int,
                   help="retrain candidate TRIAL of the same search (its number in trials.jsonl beside winner.json) "
                        "instead of the winner: a runner-up, or one the short proxy may have ranked too low")
    r.add_argument("--recipe", choices=sorted(RECIPES), default="full",
                   help="full: SGD-Nesterov, warm-up then cosine, flip + translate + cutout (the default); airbench: "
                        "airbench94's optimisation (batch 1024, its triangular schedule, lookahead, BN biases at 64x "
                        "the lr, frozen BN scales, identity-initialised convs, alternating flip; 10 epochs). The "
                        "flags below change either")
    r.add_argument("--epochs", type=_positive_int, help=f"epochs (default {FULL.epochs}; airbench {AIRBENCH.epochs})")
    r.add_argument("--batch-size", type=_positive_int, help="batch size (default 256 on a CPU, 512 on a GPU)")
    r.add_argument("--lr", type=_positive_float, help="peak learning rate at batch 512, scaled linearly with the "
                   f"batch size (default {FULL.lr})")
    # regularisation: small networks underfit, and train better with less of it
    r.add_argument("--weight-decay", type=_non_negative_float,
                   help=f"on conv/linear weights (default {FULL.weight_decay:g})")
    r.add_argument("--label-smoothing", type=_open_unit, help=f"(default {FULL.label_smoothing:g})")
    r.add_argument("--translate", type=_non_negative_int,
                   help="pixels each training image is shifted by at most, each way, its border reflected "
                        f"(default {FULL.augment.translate}; 4 is the classic pad-4 random crop)")
    r.add_argument("--cutout", type=_non_negative_int,
                   help=f"side of the square cut out of each training image, 0: none (default {FULL.augment.cutout})")
    r.add_argument("--flip", choices=("random", "alternate"),
                   help="random: each image mirrored or not, drawn every epoch; alternate: drawn once, then every "
                        "image mirrored every other epoch (airbench's derandomised flip) "
                        f"(default {'alternate' if FULL.augment.alternate else 'random'})")
    r.add_argument("--lookahead", type=_open_unit,
                   help="pull the weights toward their slow average every few steps, with this per-step decay at "
                        f"the end (airbench: 0.95; default {FULL.lookahead:g}: off)")
    r.add_argument("--tta-shift", type=_non_negative_int,
                   help="test-time augmentation also averages the mirrored pair shifted by this many pixels "
                        f"(airbench's multi-crop: 1; default {FULL.tta_shift}: the image and its mirror only)")
    r.add_argument("--teacher", help="distil from this frozen network: a folder `nas retrain` wrote (model.py + "
                   "model.pkl), trained on the same training split; its logits on each training image and its "
                   "mirror are computed once, before training")
    r.add_argument("--distill", type=_fraction, help="with --teacher, the weight of the teacher's softened "
                   "predictions in the loss, the labels' cross-entropy getting the rest (default 0.9 with a teacher)")
    r.add_argument("--temperature", type=_positive_float,
                   help=f"the softmax temperature both sides of the distillation (default {FULL.temperature:g})")
    r.add_argument("--data", help="as for search (default: the winner's)")
    r.add_argument("--out", help="output directory (default: retrain/ beside winner.json; retrain-trialN/ with --trial N)")
    _add_execution_flags(r)
    r.add_argument("--seed", type=int, default=0)

    w = sub.add_parser("show", help="print a winner's architecture layer by layer with its budget use")
    w.add_argument("winner", help="winner.json (or result.json of a retrain)")
    w.add_argument("--budget", help="compare against this budget instead of the winner's")
    w.add_argument("--macs")
    w.add_argument("--blocks-only", action="store_true", help="one row per block, no leaf layers")

    p = sub.add_parser("report", help="write report.md and report.html for search and/or retrain directories")
    p.add_argument("dirs", nargs="+", help="a search directory, a retrain directory, or both")
    p.add_argument("--pdf", action="store_true", help="also write report.pdf")
    p.add_argument("--out", help="where to write (default: the first directory)")
    return parser


def cmd_search(args) -> int:
    from .budget import parse_budget
    from .report.console import print_share_that_fits, print_survey
    from .spaces import load_space
    from .survey import survey

    space = load_space(args.space)
    budget = parse_budget(args.budget, args.macs)
    result = survey(space, budget, seed=args.seed, min_share=args.min_share)
    among = "" if result.exact else f" among {result.examined:,} sampled"
    if result.smallest is None:
        raise UserError(f"no candidate of {args.space}{among} fits the budget ({budget.describe()})")
    if result.eligible == 0 and not args.dry_run:
        raise UserError(f"no candidate of {args.space}{among} uses {100 * args.min_share:g}% or more of the budget "
                        f"({budget.describe()}); lower --min-share")
    if args.dry_run:
        print_survey(space, budget, result)
        return 0

    from .data import load
    from .report.live import SearchView
    from .search import STRATEGIES, SearchConfig, run_search
    from .search.runner import check_settings
    from .spaces.space import edges_note
    from .train import PROXY

    execution = _execution(args)
    if args.strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {args.strategy!r}; one of {', '.join(STRATEGIES)}")
    recipe = PROXY.with_(epochs=args.proxy_epochs, batch_size=args.batch_size, time_limit=args.trial_timeout)
    config = SearchConfig(space_path=args.space, budget=budget, strategy=args.strategy, trials=args.trials,
                          time=args.time, rungs=args.rungs, eta=args.eta, min_share=args.min_share, recipe=recipe,
                          seed=args.seed, val_fraction=args.val_fraction, data_fraction=args.data_fraction,
                          data_source=args.data, device=args.device, execution=execution, prescreen=args.prescreen,
                          workers=args.workers, scheduler=args.scheduler, command=args.command_line,
                          started=args.started)
    check_settings(config)
    out = args.out or f"runs/{space.name}"
    data = load(args.data)
    print_share_that_fits(result)
    with SearchView() as view:
        winner = run_search(space, config, data, out, view=view)
    from .report.console import console
    console.print(f"winner: {winner.summary}, {winner.params:,} params, proxy {100 * winner.proxy_score:.2f}% "
                  f"-> {out}/winner.json")
    note = edges_note(space, winner.candidate)
    if note:
        console.print(note)
    console.print(f"next: nas retrain {out}/winner.json")
    return 0


def cmd_retrain(args) -> int:
    from dataclasses import replace
    from pathlib import Path

    from .data import load
    from .report.live import RetrainView
    from .records import Winner
    from .retrain import run_retrain
    from .train import DISTILL_WEIGHT, RECIPES

    execution = _execution(args)
    winner = Winner.load(args.winner)
    if args.trial is not None:
        from .search.trials import TrialLog
        log = Path(args.winner).parent / "trials.jsonl"
        if not log.is_file():
            raise UserError(f"--trial needs the search's trials.jsonl beside {args.winner}; there is none")
        winner = winner.for_trial(args.winner, TrialLog(log).finished(args.trial))
    recipe = RECIPES[args.recipe].with_(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                        weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
                                        lookahead=args.lookahead, tta_shift=args.tta_shift,
                                        temperature=args.temperature)
    if args.teacher is None and (args.distill is not None or args.temperature is not None):
        raise UserError("--distill and --temperature need --teacher DIR")
    if args.teacher is not None:
        recipe = recipe.with_(teacher=str(Path(args.teacher)), distill=DISTILL_WEIGHT if args.distill is None else args.distill)
    augment = {"translate": args.translate, "cutout": args.cutout,
               "alternate": None if args.flip is None else args.flip == "alternate"}
    recipe = recipe.with_(augment=replace(recipe.augment, **{k: v for k, v in augment.items() if v is not None}))
    out = args.out or str(Path(args.winner).parent / ("retrain" if args.trial is None else f"retrain-trial{args.trial}"))
    data = load(args.data or winner.data)
    with RetrainView() as view:
        run_retrain(winner, data, out, recipe, seed=args.seed, view=view, command=args.command_line,
                    execution=execution)
    return 0


def _keep_caches_together() -> None:
    """matplotlib (imported by nas and by NNI's dependencies) writes a font cache and a config
    folder under ~; a nas run keeps them in nas's own cache instead."""
    import os

    from .data import DEFAULT_CACHE
    os.environ.setdefault("MPLCONFIGDIR", str(DEFAULT_CACHE / "matplotlib"))


def cmd_show(args) -> int:
    from .budget import parse_budget
    from .records import Winner
    from .report.show import print_architecture

    winner = Winner.load(args.winner, check_space=False)
    budget = parse_budget(args.budget, args.macs) if args.budget or args.macs else winner.budget
    print_architecture(winner.architecture, budget, leaves=not args.blocks_only)
    return 0


def cmd_report(args) -> int:
    from .report.console import console
    from .report.document import write_report

    for path in write_report(args.dirs, args.out, args.pdf):
        console.print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    import shlex
    import time

    started = time.monotonic()  # a search's --time counts from here: loading the data is part of it
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = "nas " + shlex.join(map(str, argv))
    args.started = started
    _keep_caches_together()
    try:
        return {"search": cmd_search, "retrain": cmd_retrain, "show": cmd_show,
                "report": cmd_report}[args.command](args)
    except UserError as e:
        sys.stderr.write(f"nas: error: {e}\n")
        return 2
    except OSError as e:  # the machine's trouble (disk full, permissions), not a bug: one line too
        sys.stderr.write(f"nas: error: {e}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("nas: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
