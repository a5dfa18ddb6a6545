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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas", description="Budget-aware neural architecture search for PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("search", help="search a space for the best network within a budget")
    s.add_argument("space", help="a space file, e.g. spaces/tiny.py")
    s.add_argument("--budget", help="max trainable parameters (50000, 50k, 5M) or a budget file budgets/NAME.toml")
    s.add_argument("--macs", help="max multiply-accumulates per image (20M)")
    s.add_argument("--dry-run", action="store_true", help="count what fits the budget; train nothing")
    s.add_argument("--seed", type=int, default=0)
    return parser


def cmd_search(args) -> int:
    from .budget import parse_budget
    from .report.console import print_survey
    from .spaces import load_space
    from .survey import survey

    space = load_space(args.space)
    budget = parse_budget(args.budget, args.macs)
    result = survey(space, budget, seed=args.seed)
    if result.smallest is None:
        raise UserError(f"no candidate of {args.space} fits the budget ({budget.describe()})")
    if args.dry_run:
        print_survey(space, budget, result)
        return 0
    raise UserError("search without --dry-run is not built yet")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"search": cmd_search}[args.command](args)
    except UserError as e:
        sys.stderr.write(f"nas: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("nas: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
