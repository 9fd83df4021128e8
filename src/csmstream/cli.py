"""The `csmstream` command. Each subcommand lives in `csmstream.commands.<name>` and registers itself.

A subcommand module defines `add_parser(subparsers)` (which sets `func=run` on its parser) and
`run(args) -> int`. Imports of heavy modules (torch, the server) happen inside `run`, so that
`csmstream --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from csmstream.errors import CsmstreamError

# name → module under csmstream.commands; a missing module is skipped (its feature is not installed)
SUBCOMMANDS = ["say", "serve", "chat", "talk", "voices", "finetune", "dev", "loadtest"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="csmstream", description="Self-hosted real-time speech with CSM-1B."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"csmstream.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"csmstream.commands.{name}":
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from csmstream import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CsmstreamError as exc:
        print(f"csmstream: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
