"""`csmstream dev ...`: developer tools.

csmstream dev tiny-checkpoint DIR [--seed S]    write a tiny random checkpoint in the csm-1b format
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dev", help="developer tools (tiny random checkpoints)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    tools = parser.add_subparsers(dest="dev_tool", metavar="TOOL")
    tiny = tools.add_parser(
        "tiny-checkpoint",
        help="write a tiny random checkpoint (sesame/csm-1b format) for tests and trying things offline",
    )
    tiny.add_argument("directory", type=Path, metavar="DIR", help="where to write it (created if needed)")
    tiny.add_argument("--seed", type=int, default=0, help="random seed of the weights (default 0)")
    parser.set_defaults(func=run, dev_parser=parser)


def run(args: argparse.Namespace) -> int:
    if args.dev_tool != "tiny-checkpoint":
        args.dev_parser.print_help()
        return 2
    from csmstream.dev.tiny_checkpoint import write_tiny_checkpoint

    info = write_tiny_checkpoint(args.directory, seed=args.seed)
    print(f"wrote a tiny random CSM checkpoint to {info.path} (seed {args.seed}):")
    for file in sorted(info.path.iterdir()):
        print(f"  {file.name:<20} {file.stat().st_size / 1e6:8.2f} MB")
    print(
        f"  model {info.model_parameters / 1e6:.1f} M parameters, codec {info.codec_parameters / 1e6:.2f} M, "
        f"text vocabulary {info.text_vocab_size} tokens"
    )
    print(f"its audio is noise: it only exercises the pipeline. Use it with --model {info.path}")
    return 0
