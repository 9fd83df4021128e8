"""`csmstream finetune train`: fit a LoRA adapter on a prepared dataset and add the result as a voice.

csmstream finetune train DATASET_DIR -o RUN_DIR --model CKPT --voice ID [--steps N] [--seed S] [--resume]

The run lives in RUN_DIR (settings, checkpoints every --checkpoint-every steps, the best adapter in
RUN_DIR/adapter); a killed run continues with --resume. At the end the voice ID (the dataset's speaker,
reference clips picked from its training clips, and the adapter) is added to the voice library.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from csmstream.model.lora_targets import ADAPTABLE

DEFAULTS_HELP = "(default: %(default)s)"


def add_parser(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser(
        "train", help="fine-tune a LoRA adapter on a prepared dataset", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument(
        "dataset_dir", type=Path, metavar="DATASET_DIR", help="made by `csmstream finetune prepare`"
    )
    parser.add_argument(
        "-o",
        "--output",
        dest="run_dir",
        type=Path,
        required=True,
        metavar="RUN_DIR",
        help="folder of this run: empty or absent, or a run to continue with --resume",
    )
    parser.add_argument(
        "--model", required=True, help="the checkpoint the dataset was prepared with (dir or hub id)"
    )
    parser.add_argument(
        "--voice", required=True, metavar="ID", help="id of the voice to create (must be free)"
    )
    parser.add_argument("--name", help="display name of the voice (default: the speaker's name)")
    parser.add_argument(
        "--speaker", help="the dataset speaker (name or id) to make the voice of; default: the only one"
    )
    parser.add_argument("--voices-dir", type=Path, help="voice library folder (default: settings)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in RUN_DIR up to --steps in all"
    )

    recipe = parser.add_argument_group("training")
    recipe.add_argument("--steps", type=int, default=600, help=f"optimizer steps in all {DEFAULTS_HELP}")
    recipe.add_argument(
        "--seed", type=int, default=0, help=f"data order, LoRA init, sampling {DEFAULTS_HELP}"
    )
    recipe.add_argument("--lr", type=float, default=2e-4, help=f"peak learning rate {DEFAULTS_HELP}")
    recipe.add_argument("--rank", type=int, default=16, help=f"LoRA rank {DEFAULTS_HELP}")
    recipe.add_argument(
        "--alpha", type=float, default=32.0, help=f"LoRA alpha (scale = alpha / rank) {DEFAULTS_HELP}"
    )
    recipe.add_argument(
        "--targets",
        default=",".join(ADAPTABLE),
        help=f"projections to adapt, comma-separated, or 'all' {DEFAULTS_HELP}",
    )
    recipe.add_argument(
        "--batch-frames",
        type=int,
        default=2048,
        help=f"rows per micro-batch, padding included {DEFAULTS_HELP}",
    )
    recipe.add_argument("--grad-accum", type=int, default=2, help=f"micro-batches per step {DEFAULTS_HELP}")
    recipe.add_argument(
        "--eval-every",
        type=int,
        default=100,
        help=f"steps between held-out evaluations, besides every epoch; 0: epochs only {DEFAULTS_HELP}",
    )
    recipe.add_argument(
        "--checkpoint-every",
        type=int,
        default=50,
        metavar="N",
        help=f"steps between checkpoints in RUN_DIR {DEFAULTS_HELP}",
    )
    recipe.add_argument(
        "--patience",
        type=int,
        default=4,
        help=f"evaluations without a better held-out loss before stopping; 0: never {DEFAULTS_HELP}",
    )
    recipe.add_argument(
        "--depth-fraction",
        type=float,
        default=0.0625,
        help=f"fraction of frames that train the depth decoder (CSM's amortisation) {DEFAULTS_HELP}",
    )
    recipe.add_argument(
        "--context",
        dest="context_probability",
        type=float,
        default=0.5,
        metavar="P",
        help=f"chance of another clip of the speaker before an example, as a reference {DEFAULTS_HELP}",
    )
    recipe.add_argument("--device", default="auto", help=f"auto | cpu | cuda | cuda:N {DEFAULTS_HELP}")
    recipe.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from csmstream.model.checkpoint import load_checkpoint, resolve_device
    from csmstream.model.lora_targets import parse_targets
    from csmstream.train.dataset import codec_fingerprint, load_dataset
    from csmstream.train.lora_setup import LoraSettings
    from csmstream.train.run_state import check_run_dir, write_run_file
    from csmstream.train.trainer import FRAME_RATE_HZ, TrainingError, TrainSettings, train
    from csmstream.train.voice_output import open_library, plan_voice, write_voice

    # 1. everything that can refuse the run, before any weight is loaded or file written
    settings = TrainSettings(
        steps=args.steps,
        seed=args.seed,
        lr=args.lr,
        batch_frames=args.batch_frames,
        grad_accum=args.grad_accum,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        patience=args.patience,
        depth_fraction=args.depth_fraction,
        context_probability=args.context_probability,
        lora=LoraSettings(rank=args.rank, alpha=args.alpha, targets=parse_targets(args.targets)),
    )
    dataset = load_dataset(args.dataset_dir)
    if not dataset.train():
        raise TrainingError(f"{dataset.path} has no training clips; prepare it again with more audio")
    voice = plan_voice(open_library(args.voices_dir), dataset, args.voice, args.name, args.speaker)
    run_dir = Path(args.run_dir).expanduser()
    recipe = {
        "model": args.model,
        "dataset": str(dataset.path.resolve()),
        **settings.to_dict(),
        "device": args.device,
        "voice": args.voice,
        "speaker": voice.speaker,
    }
    resuming = check_run_dir(run_dir, recipe, args.resume)
    device = resolve_device(args.device)

    # 2. the model, checked against the dataset
    checkpoint = load_checkpoint(
        args.model, device=device, dtype="bfloat16" if device.type == "cuda" else "float32"
    )
    dataset.check_model(checkpoint.config.num_codebooks, codec_fingerprint(checkpoint.codec))
    del checkpoint.codec  # not needed to train: the dataset holds the codes
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # 3. train, then write the voice
    write_run_file(run_dir, recipe)
    print(
        f"fine-tuning {args.model} on {len(dataset.train())} clips ({dataset.meta.get('hours', '?')} h in all), "
        f"LoRA rank {settings.lora.rank} on {','.join(settings.lora.targets)}; run in {run_dir}"
        + (" (resumed)" if resuming else "")
    )
    result = train(
        checkpoint.model,
        checkpoint.tokenizer,
        dataset,
        settings,
        run_dir,
        base_model_name=args.model,
        device=device,
        resume=resuming,
        show_progress=args.progress,
    )
    if result.best_loss is not None:
        start = f"{result.initial_loss:.4f} → " if result.initial_loss is not None else ""
        print(f"held-out loss {start}{result.best_loss:.4f} (best at step {result.best_step})")
    how = "stopped early" if result.stopped_early else "done"
    print(f"{result.steps} steps ({result.epochs:.1f} epochs), {how}; adapter in {result.adapter_dir}")
    fps = result.frames_per_second
    print(
        f"training throughput: {fps:.1f} frames/s ({fps / FRAME_RATE_HZ:.2f} s of speech per second) on {device}"
    )
    write_voice(voice, result.adapter_dir)
    print(
        f"added voice {voice.voice_id!r} (speaker {voice.speaker}, {len(voice.references)} reference clip(s), "
        f"adapter) to {voice.library.user_dir}"
    )
    return 0
