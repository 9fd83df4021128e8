"""What is learnt is what is generated: an adapter trained until it has memorised two short utterances makes
greedy generation (text prompt only, no context) speak exactly their codes, read back from the adapter files
the way the server reads them."""

from __future__ import annotations

import torch
from train_datasets import needs_piper, write_dataset

from csmstream.model.adapter_files import read_adapter
from csmstream.model.checkpoint import load_checkpoint
from csmstream.model.generate import generate
from csmstream.model.lora import merge_into_weights
from csmstream.model.sampling import SamplingParams
from csmstream.model.tokenizer import build_prompt
from csmstream.train.dataset import load_dataset
from csmstream.train.trainer import TrainSettings, train

UTTERANCES = ["Okay.", "Thank you."]  # about 9 frames each
MIN_SAME_CODES = 0.9  # of the compared frames' codes, all codebooks
FRAMES_COMPARED = 4  # the tiny model's bounded logits leave the last frames and the end frame less certain


def _load(tiny_checkpoint_dir):
    return load_checkpoint(str(tiny_checkpoint_dir), device="cpu", dtype="float32", progress=False)


def _greedy(model, tokenizer, speaker: int, text: str, max_frames: int) -> torch.Tensor:
    prompt = build_prompt(tokenizer, [], speaker, text, None, max_rows=2048)
    return generate(
        model, prompt.tokens, prompt.mask, SamplingParams(greedy=True, seed=0), max_frames=max_frames
    )


@needs_piper
def test_greedy_generation_speaks_a_memorised_utterance(tiny_checkpoint_dir, tiny_codec, tmp_path):
    dataset = load_dataset(write_dataset(tmp_path / "dataset", tiny_codec, UTTERANCES, heldout=set()))
    checkpoint = _load(tiny_checkpoint_dir)
    settings = TrainSettings(
        steps=600, lr=1e-2, batch_frames=512, grad_accum=1, checkpoint_every=0, warmup_steps=5,
        depth_fraction=1.0, context_probability=0.0,
    )  # fmt: skip
    result = train(
        checkpoint.model, checkpoint.tokenizer, dataset, settings, tmp_path / "run", "tiny", torch.device("cpu"),
        show_progress=False,
    )  # fmt: skip

    base = _load(tiny_checkpoint_dir)
    before = {
        clip.id: _greedy(base.model, base.tokenizer, clip.speaker, clip.text, 12) for clip in dataset.train()
    }
    merge_into_weights(read_adapter(result.adapter_dir), base.model)  # the files, as served
    for clip in dataset.train():
        expected = dataset.codes(clip)[:FRAMES_COMPARED]
        spoken = _greedy(base.model, base.tokenizer, clip.speaker, clip.text, 12)
        assert not torch.equal(before[clip.id][:FRAMES_COMPARED], expected), "the base model does not know it"
        assert spoken.shape[0] >= FRAMES_COMPARED, f"{clip.text!r}: only {spoken.shape[0]} frames"
        # codebook 0 (what the backbone chose) exactly; the deeper codebooks nearly all: piper samples its noise
        # anew each run, so some runs' codes are harder to memorise, and one wrong deep code
        # (greedy) changes the rest of its frame
        assert torch.equal(spoken[:FRAMES_COMPARED, 0], expected[:, 0]), f"{clip.text!r} not reproduced"
        same = (spoken[:FRAMES_COMPARED] == expected).float().mean().item()
        assert same >= MIN_SAME_CODES, f"{clip.text!r}: {same:.0%} of the codes reproduced"
