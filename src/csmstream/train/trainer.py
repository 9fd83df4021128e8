"""The LoRA fine-tuning loop: batches → CSM loss → AdamW on the adapters, with held-out evaluation, early
stopping, gradient accumulation, checkpoints and resume.

One step = `grad_accum` micro-batches of at most `batch_frames` rows each, their losses averaged, gradients
clipped to norm 1, one optimizer step. The learning rate warms up linearly, then decays along a cosine to a
tenth. The held-out loss is measured before training, after every epoch and every `eval_every` steps, with
the depth decoder on every frame and no context (no randomness: the same adapter always scores the same);
after `patience` evaluations without a new best, training stops. The adapter kept is the best one.

Everything random (LoRA init, context choice, which frames train the depth decoder) flows from `seed`, and
a checkpoint holds all of it, so a resumed run ends exactly where an uninterrupted one would (CPU, fp32).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import PeftModel
from tqdm.auto import tqdm

from csmstream.errors import CsmstreamError
from csmstream.model.csm import CsmModel
from csmstream.model.tokenizer import TextTokenizer
from csmstream.train.data_order import BatchStream, DataCursor, Planned, plan_eval
from csmstream.train.dataset import Clip, Dataset
from csmstream.train.examples import Batch, ExampleMaker, collate
from csmstream.train.lora_setup import (
    LoraSettings,
    adapter_parameters,
    adapter_state,
    add_lora,
    load_adapter_state,
    save_adapter,
)
from csmstream.train.objective import amortised_labels, csm_loss
from csmstream.train.run_state import (
    ADAPTER_DIR,
    HISTORY_FILE,
    Progress,
    RunCheckpoint,
    append_history,
    atomic_write_bytes,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    sweep_temp_files,
)

log = logging.getLogger(__name__)

FRAME_RATE_HZ = 12.5  # Mimi frames per second of audio
MAX_GRAD_NORM = 1.0
FINAL_LR_FRACTION = 0.1


class TrainingError(CsmstreamError):
    """Training cannot start or go on (no clips, a diverging loss)."""


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 600  # optimizer steps in all (a resumed run continues up to this)
    seed: int = 0
    lr: float = 2e-4
    batch_frames: int = 2048  # rows per micro-batch, padding included
    grad_accum: int = 2  # micro-batches per optimizer step
    eval_every: int = 100  # steps between held-out evaluations (also after every epoch); 0: epochs only
    checkpoint_every: int = 50  # steps between checkpoints (also at the end); 0: at the end only
    patience: int = 4  # evaluations without a new best held-out loss before stopping; 0: never stop early
    depth_fraction: float = 1 / 16  # frames of a batch that train the depth decoder (Sesame's amortisation)
    context_probability: float = 0.5  # chance of another clip of the speaker before the example, as context
    warmup_steps: int = 30
    lora: LoraSettings = field(default_factory=LoraSettings)

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, f"--steps must be >= 1, got {self.steps}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (self.batch_frames >= 16, f"--batch-frames must be >= 16, got {self.batch_frames}"),
            (self.grad_accum >= 1, f"--grad-accum must be >= 1, got {self.grad_accum}"),
            (self.eval_every >= 0, f"--eval-every must be >= 0, got {self.eval_every}"),
            (self.checkpoint_every >= 0, f"--checkpoint-every must be >= 0, got {self.checkpoint_every}"),
            (self.patience >= 0, f"--patience must be >= 0, got {self.patience}"),
            (
                0.0 < self.depth_fraction <= 1.0,
                f"--depth-fraction must be in (0, 1], got {self.depth_fraction}",
            ),
            (
                0.0 <= self.context_probability <= 1.0,
                f"--context must be in [0, 1], got {self.context_probability}",
            ),
            (self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainingError(message)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready settings (run.json); the LoRA ones as `lora_rank`, `lora_alpha`, …"""
        settings = asdict(self)
        lora = settings.pop("lora")
        settings.update({f"lora_{key}": value for key, value in lora.items()})
        settings["lora_targets"] = list(self.lora.targets)
        return settings


@dataclass
class TrainResult:
    adapter_dir: Path
    peft_model: PeftModel  # holds the best adapter when `train` returns
    steps: int  # optimizer steps done in all
    epochs: float
    initial_loss: float | None  # held-out loss before training (None without held-out clips)
    best_loss: float | None
    best_step: int
    stopped_early: bool
    frames_per_second: float  # learnt frames per second of training-step time
    train_seconds: float


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the base learning rate at `step` (0-based): linear warm-up, then cosine to 10 %."""
    warmup = min(warmup_steps, max(0, total_steps - 1))
    if step < warmup:
        return (step + 1) / (warmup + 1)
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    return FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (the adapters stay fp32); plain fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def accumulate_gradients(
    model: CsmModel,
    batches: list[Batch],
    depth_fraction: float,
    generator: torch.Generator,
    device: torch.device,
) -> float:
    """Forward and backward every micro-batch, each loss divided by their number (gradients add up to the
    mean of the micro-batches' losses); returns that mean."""
    total = 0.0
    for batch in batches:
        batch = batch.to(device)
        labels = amortised_labels(batch.codes, batch.learn, depth_fraction, generator)  # (B, T, K)
        with autocast_for(device):
            loss = csm_loss(model, batch.tokens, batch.mask, labels).loss / len(batches)
        loss.backward()
        total += float(loss.detach())
    return total


@torch.no_grad()
def heldout_loss(model: CsmModel, batches: list[Batch], device: torch.device) -> float:
    """Mean held-out loss per labelled token (backbone frames and depth-decoder frames weighted by count),
    every frame through the depth decoder."""
    was_training = model.training
    model.eval()
    backbone_sum = depth_sum = 0.0
    backbone_count = depth_count = 0
    for batch in batches:
        batch = batch.to(device)
        labels = amortised_labels(batch.codes, batch.learn, fraction=1.0)
        with autocast_for(device):
            result = csm_loss(model, batch.tokens, batch.mask, labels)
        backbone_sum += float(result.backbone_loss) * result.num_backbone_frames
        depth_sum += float(result.depth_loss) * result.num_depth_frames
        backbone_count += result.num_backbone_frames
        depth_count += result.num_depth_frames
    model.train(was_training)
    # backbone loss per frame + depth loss per frame: the same scale as the training loss
    return backbone_sum / max(1, backbone_count) + depth_sum / max(1, depth_count)


def _examples(maker: ExampleMaker, planned: list[Planned]) -> Batch:
    return collate([maker.example(clip, context) for clip, context in planned], maker.num_codebooks)


def _usable(maker: ExampleMaker, clips: list[Clip], what: str) -> list[Clip]:
    usable = [clip for clip in clips if maker.fits(clip)]
    if len(usable) < len(clips):
        log.warning(
            "%d %s clip(s) skipped: longer than the model's %d rows",
            len(clips) - len(usable),
            what,
            maker.max_rows,
        )
    return usable


def train(
    model: CsmModel,
    tokenizer: TextTokenizer,
    dataset: Dataset,
    settings: TrainSettings,
    run_dir: Path,
    base_model_name: str,
    device: torch.device,
    resume: bool = False,
    show_progress: bool = True,
) -> TrainResult:
    """Fine-tune LoRA adapters on `model` (wrapped in place) with `dataset`; the best adapter ends up in
    RUN_DIR/adapter. `resume`: continue from RUN_DIR/checkpoint.pt (the caller checked the settings)."""
    max_rows = model.config.backbone.max_positions
    maker = ExampleMaker(dataset, tokenizer, max_rows)
    train_clips = _usable(maker, dataset.train(), "training")
    heldout_clips = _usable(maker, dataset.heldout(), "held-out")
    if not train_clips:
        raise TrainingError(f"{dataset.path} has no training clips to learn from; prepare it with more audio")

    run_dir.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(run_dir)  # what a killed run was writing

    # 1. everything random starts from the seed (a resume overwrites it all from the checkpoint)
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed % 2**32)
    random.seed(settings.seed)
    amortisation = torch.Generator().manual_seed(settings.seed)
    generators = {"amortisation": amortisation}
    model.train()
    peft_model = add_lora(model, settings.lora, base_model_name)
    model.to(device)
    parameters = list(adapter_parameters(peft_model).values())
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, settings.steps, settings.warmup_steps)
    )
    stream = BatchStream(
        train_clips,
        maker.num_rows,
        settings.seed,
        settings.batch_frames,
        settings.context_probability,
        max_rows,
    )
    eval_batches = [
        _examples(maker, planned)
        for planned in plan_eval(heldout_clips, maker.num_rows, settings.batch_frames)
    ]

    progress = Progress()
    best_adapter = adapter_state(peft_model)
    if resume:
        saved = load_checkpoint(run_dir)
        load_adapter_state(peft_model, saved.adapter)
        optimizer.load_state_dict(saved.optimizer)
        scheduler.load_state_dict(saved.scheduler)
        restore_rng(saved.rng, generators)
        progress, best_adapter = saved.progress, saved.best_adapter
        stream.cursor = DataCursor(progress.epoch, progress.batch_index)
        _trim_history(run_dir, progress.step)
        log.info("resuming %s at step %d (epoch %d)", run_dir, progress.step, progress.epoch)
    else:
        _trim_history(run_dir, -1)  # a fresh start (also a --resume killed before its first checkpoint)
    if not resume and eval_batches:
        progress.best_loss = heldout_loss(model, eval_batches, device)
        progress.extra["initial_loss"] = progress.best_loss
        append_history(run_dir, {"step": 0, "epoch": 0.0, "heldout_loss": progress.best_loss})
    if not eval_batches:
        log.warning(
            "the dataset has no held-out clips: no evaluation, no early stopping; the last adapter is kept"
        )

    def checkpoint() -> None:
        progress.epoch, progress.batch_index = stream.cursor.epoch, stream.cursor.batch_index
        state = RunCheckpoint(
            progress=progress,
            adapter=adapter_state(peft_model),
            best_adapter=best_adapter,
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            rng=capture_rng(generators),
        )
        save_checkpoint(run_dir, state)

    def epochs_done() -> float:
        return stream.cursor.epoch + stream.cursor.batch_index / max(1, stream.batches_per_epoch)

    # 2. the loop: one optimizer step per iteration
    bar = tqdm(
        total=settings.steps,
        initial=min(progress.step, settings.steps),
        desc="fine-tuning",
        unit="step",
        disable=not show_progress,
        dynamic_ncols=True,
    )
    postfix: dict[str, str] = {}
    if progress.best_loss is not None:
        postfix["best"] = f"{progress.best_loss:.3f}"
    try:
        while progress.step < settings.steps and not progress.stopped_early:
            started = time.perf_counter()
            micro_batches, epoch_ended = [], False
            for _ in range(settings.grad_accum):
                planned, ended = stream.next()
                micro_batches.append(_examples(maker, planned))
                epoch_ended = epoch_ended or ended
            loss = accumulate_gradients(model, micro_batches, settings.depth_fraction, amortisation, device)
            if not math.isfinite(loss):
                raise TrainingError(
                    f"the training loss became {loss} at step {progress.step + 1}; lower --lr and start again"
                )
            torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            progress.train_seconds += time.perf_counter() - started
            progress.train_frames += sum(b.num_learnt_frames for b in micro_batches)
            progress.step += 1
            postfix["loss"] = f"{loss:.3f}"

            due = settings.eval_every and progress.step % settings.eval_every == 0
            if eval_batches and (epoch_ended or due or progress.step == settings.steps):
                current = heldout_loss(model, eval_batches, device)
                append_history(
                    run_dir,
                    {
                        "step": progress.step,
                        "epoch": round(epochs_done(), 3),
                        "train_loss": loss,
                        "heldout_loss": current,
                    },
                )
                if progress.best_loss is None or current < progress.best_loss:
                    progress.best_loss, progress.best_step, progress.evals_since_best = (
                        current,
                        progress.step,
                        0,
                    )
                    best_adapter = adapter_state(peft_model)
                else:
                    progress.evals_since_best += 1
                    if settings.patience and progress.evals_since_best >= settings.patience:
                        progress.stopped_early = True
                        bar.write(
                            f"early stop at step {progress.step}: held-out loss {current:.4f}, no better than "
                            f"{progress.best_loss:.4f} (step {progress.best_step}) for {settings.patience} evaluations"
                        )
                postfix["heldout"] = f"{current:.3f}"
                postfix["best"] = f"{progress.best_loss:.3f}"
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)
            finished = progress.step >= settings.steps or progress.stopped_early
            if finished or (settings.checkpoint_every and progress.step % settings.checkpoint_every == 0):
                if not eval_batches:
                    best_adapter = adapter_state(peft_model)  # nothing to judge by: the latest is the best
                checkpoint()
    finally:
        bar.close()

    # 3. the best adapter, in PEFT's format; the model keeps it for the caller
    if not eval_batches:
        best_adapter = adapter_state(peft_model)
    load_adapter_state(peft_model, best_adapter)
    adapter_dir = save_adapter(peft_model, best_adapter, run_dir / ADAPTER_DIR)
    return TrainResult(
        adapter_dir=adapter_dir,
        peft_model=peft_model,
        steps=progress.step,
        epochs=epochs_done(),
        initial_loss=progress.extra.get("initial_loss"),
        best_loss=progress.best_loss,
        best_step=progress.best_step,
        stopped_early=progress.stopped_early,
        frames_per_second=progress.train_frames / progress.train_seconds if progress.train_seconds else 0.0,
        train_seconds=progress.train_seconds,
    )


def _trim_history(run_dir: Path, step: int) -> None:
    """Drop history lines after the checkpoint's step (the resumed run writes them again), and a line a
    killed run left half-written."""
    path = run_dir / HISTORY_FILE
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    atomic_write_bytes(path, "".join(line + "\n" for line in kept).encode())
