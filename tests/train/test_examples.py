"""Training examples are laid out as inference lays out a prompt; the data order is a function of the seed."""

from __future__ import annotations

import torch
from train_datasets import write_random_dataset

from csmstream.model.checkpoint import load_checkpoint
from csmstream.model.tokenizer import Segment, build_prompt
from csmstream.train.data_order import BatchStream, DataCursor, plan_epoch, plan_eval
from csmstream.train.dataset import load_dataset
from csmstream.train.examples import ExampleMaker, build_example, collate

K = 32


def test_example_rows_are_the_inference_prompt_then_the_frames(tiny_checkpoint_dir):
    tokenizer = load_checkpoint(
        str(tiny_checkpoint_dir), device="cpu", dtype="float32", progress=False
    ).tokenizer
    generator = torch.Generator().manual_seed(0)
    context_codes = torch.randint(1, 2048, (5, K), generator=generator)
    target_codes = torch.randint(1, 2048, (7, K), generator=generator)
    context = Segment(speaker=0, text="an earlier line", codes=context_codes)
    target = Segment(speaker=0, text="what to say", codes=target_codes)
    example = build_example(tokenizer, target, context, K)

    # inference: the context as a reference, then the text; generation continues at the next row
    prompt = build_prompt(
        tokenizer, [context], 0, "what to say", None, max_rows=2048, num_reference_segments=1
    )
    num_prompt = prompt.num_rows
    assert torch.equal(example.tokens[:num_prompt], prompt.tokens)
    assert torch.equal(example.mask[:num_prompt], prompt.mask)
    # then the target frames, then the all-zero end frame; exactly those rows are learnt
    assert example.num_rows == num_prompt + 7 + 1
    assert torch.equal(example.tokens[num_prompt : num_prompt + 7, :K], target_codes)
    assert (example.tokens[-1] == 0).all() and example.mask[-1, :K].all() and not example.mask[-1, K]
    assert torch.equal(example.learn.nonzero().flatten(), torch.arange(num_prompt, num_prompt + 8))

    plain = build_example(tokenizer, target, None, K)
    batch = collate([example, plain], K)
    assert batch.tokens.shape == (2, example.num_rows, K + 1)
    assert not batch.mask[1, plain.num_rows :].any() and not batch.learn[1, plain.num_rows :].any()
    assert torch.equal(batch.codes[0, num_prompt : num_prompt + 7], target_codes)
    assert batch.num_learnt_frames == 16


def test_data_order_depends_on_seed_and_epoch_only(tiny_checkpoint_dir, tmp_path):
    tokenizer = load_checkpoint(
        str(tiny_checkpoint_dir), device="cpu", dtype="float32", progress=False
    ).tokenizer
    dataset = load_dataset(write_random_dataset(tmp_path / "d", num_train=20, num_heldout=3))
    maker = ExampleMaker(dataset, tokenizer, max_rows=2048)
    clips = dataset.train()

    def ids(plan):
        return [[(c.id, x.id if x else None) for c, x in batch] for batch in plan]

    first = plan_epoch(
        clips, maker.num_rows, seed=1, epoch=0, batch_frames=100, context_probability=0.5, max_rows=2048
    )
    again = plan_epoch(
        clips, maker.num_rows, seed=1, epoch=0, batch_frames=100, context_probability=0.5, max_rows=2048
    )
    other = plan_epoch(
        clips, maker.num_rows, seed=1, epoch=1, batch_frames=100, context_probability=0.5, max_rows=2048
    )
    assert ids(first) == ids(again) and ids(first) != ids(other)
    assert sorted(c.id for batch in first for c, _ in batch) == sorted(c.id for c in clips), "each clip once"
    assert any(x is not None for batch in first for _, x in batch), "some examples carry a context clip"
    assert all(
        len(b) * max(maker.num_rows(c) + (maker.num_rows(x) if x else 0) for c, x in b) <= 100 for b in first
    )
    none = plan_epoch(
        clips, maker.num_rows, seed=1, epoch=0, batch_frames=100, context_probability=0.0, max_rows=2048
    )
    assert all(x is None for batch in none for _, x in batch)

    # a stream restarted at a saved cursor goes on exactly as the uninterrupted one
    stream = BatchStream(clips, maker.num_rows, 7, 100, 0.5, 2048)
    seen = [stream.next() for _ in range(9)]
    saved = DataCursor(**stream.cursor.state())
    rest = [stream.next() for _ in range(9)]
    resumed = BatchStream(clips, maker.num_rows, 7, 100, 0.5, 2048, cursor=saved)
    assert [ids([b]) for b, _ in rest] == [ids([resumed.next()[0]]) for _ in range(9)]
    assert any(ended for _, ended in seen + rest), "an epoch ended within 18 batches"

    held = plan_eval(dataset.heldout(), maker.num_rows, batch_frames=100)
    assert sorted(c.id for b in held for c, _ in b) == sorted(c.id for c in dataset.heldout())
