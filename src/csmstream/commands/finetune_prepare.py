"""`csmstream finetune prepare DATA_DIR -o DATASET_DIR --model CKPT`: recordings → a fine-tuning dataset.

DATA_DIR holds one of (see csmstream/train/sources.py):
  audio files only            cut at pauses and transcribed with Whisper (transcripts cached in
                              DATA_DIR/.csmstream-transcripts.json, so a second run does not transcribe again)
  audio + .txt of same name   each file is one clip with that transcript (not cut: keep files ≤ --max-seconds)
  metadata.csv + wavs/        the LJSpeech layout: `id|text|normalized text` a line
Folders of audio inside DATA_DIR (and nothing else) are one speaker each.

Clips too short or long, clipped, silent, without speech, or whose given transcript Whisper disagrees with
(--check-transcripts, on when Whisper is installed) are left out and counted. Whole source files are held
out for evaluation (--heldout-fraction, chosen by --seed). Each clip's Mimi codes are computed once with the
checkpoint's codec, so train with the same --model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser(
        "prepare", help="recordings (+ transcripts) → a dataset for `finetune train`", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="folder of recordings")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="DATASET_DIR", help="dataset folder to write"
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="CKPT",
        help="checkpoint folder or hub id (its Mimi codec encodes the clips)",
    )
    parser.add_argument(
        "--speaker-id", type=int, default=0, help="CSM speaker id of the (first) speaker (default 0)"
    )
    parser.add_argument(
        "--heldout-fraction",
        type=float,
        default=0.1,
        help="share of the audio held out, by source file (default 0.1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="picks the held-out files (default 0)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="shortest clip kept (default 1)")
    parser.add_argument(
        "--max-seconds", type=float, default=20.0, help="longest clip kept; longer speech is cut (default 20)"
    )
    parser.add_argument(
        "--check-transcripts", action=argparse.BooleanOptionalAction, default=None,
        help="drop clips whose given transcript Whisper disagrees with (word error rate > 0.5); "
        "default: on when Whisper is installed",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from csmstream.train.prepare import PrepareOptions, prepare_dataset

    options = PrepareOptions(
        speaker_id=args.speaker_id,
        heldout_fraction=args.heldout_fraction,
        seed=args.seed,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        check_transcripts=args.check_transcripts,
    )
    prepare_dataset(args.data_dir, args.output, args.model, options, progress=sys.stderr.isatty())
    return 0
