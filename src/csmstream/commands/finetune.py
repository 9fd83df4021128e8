"""`csmstream finetune prepare|train`: make your own voice from recordings.

csmstream finetune prepare DATA_DIR -o DATASET_DIR --model CKPT      # audio (+ transcripts) → a dataset
csmstream finetune train DATASET_DIR -o RUN_DIR --model CKPT --voice ID [--steps N] [--seed S] [--resume]

`prepare` segments, transcribes (Whisper, cached), filters and encodes the audio once; `train` fits a LoRA
adapter on it and puts the result in the voice library as voice ID (speaker + references + adapter).
Each action lives in its own module: commands/finetune_prepare.py and commands/finetune_train.py.
"""

from __future__ import annotations

import argparse
import importlib

ACTIONS = ["prepare", "train"]  # → csmstream.commands.finetune_<action>


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune", help="prepare a dataset and fine-tune a voice (LoRA)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    actions = parser.add_subparsers(dest="finetune_action", metavar="ACTION")
    for name in ACTIONS:
        try:
            module = importlib.import_module(f"csmstream.commands.finetune_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"csmstream.commands.finetune_{name}":
                raise
            continue
        module.add_parser(actions)  # sets func=<module>.run on its parser
    parser.set_defaults(func=lambda args: _no_action(parser))


def _no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
