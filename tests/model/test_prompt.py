"""Prompt rows: parity with transformers' CsmProcessor, the trimming policy, input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from csmstream.errors import BadRequest, TextTooLong
from csmstream.model.checkpoint import load_checkpoint
from csmstream.model.tokenizer import Segment, TextTokenizer, build_prompt

FRAME_SAMPLES = 1920


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint_dir):
    return load_checkpoint(str(tiny_checkpoint_dir), device="cpu")


@pytest.fixture(scope="module")
def reference(tiny_checkpoint_dir):
    """transformers' model and CsmProcessor, loaded from the same tiny checkpoint directory."""
    transformers = pytest.importorskip("transformers")
    model = transformers.CsmForConditionalGeneration.from_pretrained(str(tiny_checkpoint_dir)).eval()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(tiny_checkpoint_dir / "tokenizer.json"),
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<|end_of_text|>",
    )
    feature_extractor = transformers.EncodecFeatureExtractor(feature_size=1, sampling_rate=24000)
    return model, transformers.CsmProcessor(feature_extractor, tokenizer)


def _audio(num_samples: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(num_samples) * 0.1).astype(np.float32)


def _our_encoder(checkpoint):
    def encode(audio: np.ndarray) -> torch.Tensor:
        return checkpoint.codec.encode(torch.from_numpy(audio)[None, None])[0].T  # (T, K)

    return encode


def _their_encoder(model):
    def encode(audio: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return model.codec_model.encode(torch.from_numpy(audio)[None, None]).audio_codes[0].T

    return encode


def _processor_text(context: list[Segment], speaker: int, text: str) -> str:
    """The string csm-1b's chat template renders for this conversation (text, then audio, per turn)."""
    parts = [f"<|begin_of_text|>[{s.speaker}]{s.text}<|end_of_text|><|AUDIO|><|audio_eos|>" for s in context]
    return "".join(parts) + f"<|begin_of_text|>[{speaker}]{text}<|end_of_text|>"


@pytest.mark.parametrize(
    ("lengths", "use_our_codec"),
    [
        ((7000, 4000), False),  # transformers' own encoder: only the row layout is compared
        ((7000, 4000), True),  # partial last frames through our Mimi, the path the server takes
        ((4 * FRAME_SAMPLES, 2 * FRAME_SAMPLES), True),  # whole frames through our Mimi
    ],
)
@torch.no_grad()
def test_rows_equal_csm_processor(checkpoint, reference, lengths, use_our_codec):
    model, processor = reference
    context = [
        Segment(0, "Hello there", _audio(lengths[0], seed=1)),
        Segment(1, "Good morning, Anna!", _audio(lengths[1], seed=2)),
    ]
    encode = _our_encoder(checkpoint) if use_our_codec else _their_encoder(model)
    prompt = build_prompt(checkpoint.tokenizer, context, 0, "How are you today?", encode, max_rows=200)

    inputs = processor(
        text=_processor_text(context, 0, "How are you today?"), audio=[s.audio for s in context]
    )
    ids = inputs["input_ids"][0]
    assert prompt.num_rows == ids.shape[0], "row counts differ (text tokens or audio frames per segment)"
    is_text = prompt.mask[:, 32]
    assert torch.equal(prompt.tokens[is_text, 32], ids[is_text]), "text rows hold different token ids"
    assert torch.equal(~is_text, (ids == processor.audio_token_id) | (ids == processor.audio_eos_token_id))
    merged = model._merge_input_ids_with_input_values(
        inputs["input_ids"], inputs["input_values"], inputs["input_values_cutoffs"]
    )["inputs_embeds"][0]
    ours = checkpoint.model.embed_rows(prompt.tokens[None], prompt.mask[None])[0]
    assert (ours - merged).abs().max() < 1e-4, "the rows embed differently from transformers' merged inputs"
    assert prompt.num_context_segments == 2 and prompt.num_dropped_segments == 0


def test_tokenizer_finds_special_tokens_by_name(checkpoint):
    tokenizer = checkpoint.tokenizer
    ids = tokenizer.segment_ids(3, "Hello")
    assert ids[0] == tokenizer.tokenizer.token_to_id("<|begin_of_text|>")
    assert ids[-1] == tokenizer.tokenizer.token_to_id("<|end_of_text|>")
    assert tokenizer.decode(ids[1:-1]) == "[3]Hello"


def test_tokenizer_without_llama3_special_tokens_is_rejected():
    from tokenizers import Tokenizer, models

    with pytest.raises(ValueError, match="begin_of_text"):
        TextTokenizer(Tokenizer(models.WordLevel({"a": 0}, unk_token="a")))


class _CountingEncoder:
    """Fake codec: one frame per 1920 samples, codes derived from the audio; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, audio: np.ndarray) -> torch.Tensor:
        self.calls += 1
        num_frames = -(-audio.shape[0] // FRAME_SAMPLES)
        return torch.full((num_frames, 32), 7, dtype=torch.int64)


def _rows_of(tokenizer, segment: Segment) -> int:
    frames = -(-segment.audio.shape[0] // FRAME_SAMPLES)
    return len(tokenizer.segment_ids(segment.speaker, segment.text)) + frames + 1


def test_trimming_keeps_references_then_newest_turns_whole(checkpoint):
    tokenizer = checkpoint.tokenizer
    reference = Segment(0, "reference voice", _audio(5 * FRAME_SAMPLES, 3))
    turns = [Segment(i % 2, f"turn number {i}", _audio(3 * FRAME_SAMPLES, 10 + i)) for i in range(5)]
    target_rows = len(tokenizer.segment_ids(0, "Say this"))
    # room for the reference, the two newest turns and half of a third
    budget = target_rows + _rows_of(tokenizer, reference) + 2 * _rows_of(tokenizer, turns[0]) + 5
    encoder = _CountingEncoder()
    prompt = build_prompt(
        tokenizer, [reference, *turns], 0, "Say this", encoder, max_rows=budget, num_reference_segments=1
    )
    assert prompt.num_context_segments == 3 and prompt.num_dropped_segments == 3
    assert prompt.num_references_kept == 1 and prompt.reference_rows == _rows_of(tokenizer, reference)
    assert prompt.num_rows <= budget
    # the order is: reference, turn 3, turn 4, target; check by the text tokens of each segment's first row
    text_ids = prompt.tokens[prompt.mask[:, 32], 32].tolist()
    texts = tokenizer.decode(text_ids).split("<|begin_of_text|>")[1:]
    expected = ["[0]reference voice", "[1]turn number 3", "[0]turn number 4", "[0]Say this"]
    assert texts == [t + "<|end_of_text|>" for t in expected]
    assert encoder.calls == 4, "older turns than the first one that did not fit must not be encoded"


def test_a_reference_that_does_not_fit_is_dropped_and_the_prefix_says_so(checkpoint):
    tokenizer = checkpoint.tokenizer
    long_reference = Segment(0, "long", _audio(40 * FRAME_SAMPLES, 4))
    short_reference = Segment(0, "short", _audio(2 * FRAME_SAMPLES, 5))
    turn = Segment(1, "turn", _audio(2 * FRAME_SAMPLES, 6))
    budget = 30 + len(tokenizer.segment_ids(0, "Hi"))
    prompt = build_prompt(
        tokenizer, [long_reference, short_reference, turn], 0, "Hi", _CountingEncoder(), budget, 2
    )
    assert prompt.num_references_kept == 1 and prompt.num_context_segments == 2
    assert prompt.reference_rows == _rows_of(tokenizer, short_reference)


def test_text_alone_too_long_is_an_error_and_empty_text_is_rejected(checkpoint):
    tokenizer = checkpoint.tokenizer
    with pytest.raises(TextTooLong, match="at most 10"):
        build_prompt(tokenizer, [], 0, "word " * 50, None, max_rows=10)
    for empty in ("", "   \n"):
        with pytest.raises(BadRequest, match="empty"):
            build_prompt(tokenizer, [], 0, empty, None, max_rows=100)


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        (Segment(0, "stereo", np.zeros((4000, 2), dtype=np.float32)), "1-D"),
        (Segment(0, "empty", np.zeros(0, dtype=np.float32)), "empty"),
        (Segment(0, "ints", np.zeros(4000, dtype=np.int16)), "float"),
        (Segment(0, "nan", np.full(4000, np.nan, dtype=np.float32)), "NaN"),
        (Segment(0, "codes", codes=torch.zeros(5, 31, dtype=torch.int64)), r"\(frames, 32\)"),
        (Segment(0, "codes", codes=torch.full((5, 32), 2048)), "2048"),
        (Segment(-1, "speaker", np.zeros(4000, dtype=np.float32)), "speaker"),
    ],
)
def test_bad_context_is_a_clear_bad_request(checkpoint, segment, message):
    with pytest.raises(BadRequest, match=message):
        build_prompt(checkpoint.tokenizer, [segment], 0, "Hello", _CountingEncoder(), max_rows=100)


def test_codes_are_used_instead_of_encoding_and_from_audio_converts(checkpoint):
    codes = torch.randint(0, 2048, (4, 32))
    encoder = _CountingEncoder()
    prompt = build_prompt(checkpoint.tokenizer, [Segment(1, "hi", codes=codes)], 0, "Hello", encoder, 100)
    audio_rows = prompt.tokens[~prompt.mask[:, 32]]
    assert encoder.calls == 0
    assert torch.equal(audio_rows[:4, :32], codes) and not audio_rows[4].any(), "frames then an all-zero row"
    stereo_48k = np.stack([np.linspace(-0.5, 0.5, 4800)] * 2, axis=1).astype(np.float32)
    segment = Segment.from_audio(0, "hi", stereo_48k, sample_rate=48000)
    assert segment.audio.ndim == 1 and abs(segment.audio.shape[0] - 2400) <= 1
