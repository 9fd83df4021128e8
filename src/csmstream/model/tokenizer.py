"""From text and context audio to prompt rows.

A prompt is a sequence of rows of K + 1 columns (K audio codebooks, then one text token) with a mask:
- a text segment: `<|begin_of_text|>` + tokens of `[{speaker}]{text}` + `<|end_of_text|>`, one token per row;
- its audio (context only): one row per Mimi frame, then one all-zero end-of-audio row.
Context segments come first, oldest first, then the text to speak; generation continues from there.

Trimming policy when the context does not fit in `max_rows - reserve_rows` (`reserve_rows`: the frames the
utterance may generate, kept free after the prompt): the text to speak always stays (it alone longer than
`max_rows` → `TextTooLong`; when it leaves less than `reserve_rows`, generation gets every row after it);
then the voice reference segments (the first `num_reference_segments` of the context) are kept in order
while they fit; then conversation turns (earlier turns, earlier units of the same request) are kept newest
first, and at the first turn that does not fit it and all older turns are dropped whole (a turn is never
cut in half). So the turns give way first, then the references, and generation never loses its rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from csmstream.audio.resample import to_mono_24k
from csmstream.errors import BadRequest, TextTooLong

BEGIN_OF_TEXT = "<|begin_of_text|>"
END_OF_TEXT = "<|end_of_text|>"

# (S,) float32 mono 24 kHz audio → (T, K) int64 codes (e.g. the Mimi encoder)
AudioEncoder = Callable[[np.ndarray], torch.Tensor]


class TextTokenizer:
    """The Llama-3 text tokenizer of a checkpoint (tokenizer.json), with its begin/end-of-text ids."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        ids = {name: tokenizer.token_to_id(name) for name in (BEGIN_OF_TEXT, END_OF_TEXT)}
        missing = [name for name, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"the tokenizer has no {' / '.join(missing)} token (is it a Llama-3 tokenizer?)")
        self.begin_of_text_id: int = ids[BEGIN_OF_TEXT]
        self.end_of_text_id: int = ids[END_OF_TEXT]

    @classmethod
    def from_file(cls, path: str | Path) -> TextTokenizer:
        return cls(Tokenizer.from_file(str(path)))

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text, without special tokens."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def segment_ids(self, speaker: int, text: str) -> list[int]:
        """The text rows' ids of one segment: begin + `[speaker]text` + end."""
        return [self.begin_of_text_id, *self.encode(f"[{speaker}]{text}"), self.end_of_text_id]


@dataclass
class Segment:
    """One turn: who spoke, what, and (context only) how it sounded, as audio or as codes."""

    speaker: int
    text: str
    audio: np.ndarray | None = None  # (S,) float32 mono at 24 kHz
    codes: torch.Tensor | None = None  # (T, K) int64 Mimi codes; used instead of `audio` when both are set

    @classmethod
    def from_audio(cls, speaker: int, text: str, samples: np.ndarray, sample_rate: int) -> Segment:
        """A segment from audio of any rate and channel count ((S,) or (S, C)), converted to mono 24 kHz."""
        return cls(speaker=speaker, text=text, audio=to_mono_24k(samples, sample_rate))


@dataclass
class Prompt:
    tokens: torch.Tensor  # (T, K + 1) int64
    mask: torch.Tensor  # (T, K + 1) bool
    num_context_segments: int  # context segments kept
    num_dropped_segments: int  # context segments dropped to fit `max_rows`
    num_references_kept: int = 0  # of the `num_reference_segments` voice references
    reference_rows: int = 0  # rows [0, reference_rows) come from the kept references (a cacheable prefix)

    @property
    def num_rows(self) -> int:
        return self.tokens.shape[0]


def _check_speaker(speaker: object, what: str) -> None:
    if isinstance(speaker, bool) or not isinstance(speaker, int) or speaker < 0:
        raise BadRequest(f"{what}: speaker must be an integer >= 0, got {speaker!r}")


def _check_segment(segment: Segment, index: int, num_codebooks: int, codebook_size: int) -> None:
    what = f"context segment {index}"
    _check_speaker(segment.speaker, what)
    if not isinstance(segment.text, str):
        raise BadRequest(f"{what}: text must be a string, got {type(segment.text).__name__}")
    if segment.codes is not None:
        codes = segment.codes
        if not isinstance(codes, torch.Tensor) or codes.dim() != 2 or codes.shape[1] != num_codebooks:
            shape = tuple(codes.shape) if hasattr(codes, "shape") else type(codes).__name__
            raise BadRequest(f"{what}: codes must be a (frames, {num_codebooks}) tensor, got {shape}")
        if (
            codes.dtype.is_floating_point
            or codes.numel()
            and not (0 <= codes.min() and codes.max() < codebook_size)
        ):
            raise BadRequest(f"{what}: codes must be integers in [0, {codebook_size})")
        return
    if segment.audio is None:
        return
    audio = segment.audio
    if not isinstance(audio, np.ndarray) or audio.ndim != 1:
        shape = audio.shape if hasattr(audio, "shape") else type(audio).__name__
        raise BadRequest(
            f"{what}: audio must be a 1-D (samples,) float array, mono at 24 kHz; got {shape} "
            "(use Segment.from_audio(speaker, text, samples, sample_rate) to convert other audio)"
        )
    if audio.size == 0:
        raise BadRequest(f"{what}: audio is empty")
    if not np.issubdtype(audio.dtype, np.floating):
        raise BadRequest(f"{what}: audio must hold float samples in [-1, 1], got {audio.dtype}")
    if not np.all(np.isfinite(audio)):
        raise BadRequest(f"{what}: audio contains NaN or infinite samples")


def _text_rows(ids: list[int], num_codebooks: int) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.zeros(len(ids), num_codebooks + 1, dtype=torch.int64)
    tokens[:, num_codebooks] = torch.tensor(ids, dtype=torch.int64)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[:, num_codebooks] = True
    return tokens, mask


def _audio_rows(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, K) codes → rows (T + 1, K + 1): the frames, then the all-zero end-of-audio frame."""
    num_frames, num_codebooks = codes.shape
    tokens = torch.zeros(num_frames + 1, num_codebooks + 1, dtype=torch.int64)
    tokens[:num_frames, :num_codebooks] = codes
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[:, :num_codebooks] = True
    return tokens, mask


def _segment_rows(
    tokenizer: TextTokenizer, segment: Segment, encode: AudioEncoder | None, num_codebooks: int, index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [_text_rows(tokenizer.segment_ids(segment.speaker, segment.text), num_codebooks)]
    codes = segment.codes
    if codes is None and segment.audio is not None:
        if encode is None:
            raise ValueError("a context segment has audio but no `encode` function was given")
        codes = encode(segment.audio.astype(np.float32, copy=False))
        if not isinstance(codes, torch.Tensor) or codes.dim() != 2 or codes.shape[1] != num_codebooks:
            shape = tuple(codes.shape) if hasattr(codes, "shape") else type(codes).__name__
            raise ValueError(
                f"encode() must return (frames, {num_codebooks}) codes, got {shape} (segment {index})"
            )
    if codes is not None:
        parts.append(_audio_rows(codes.detach().to("cpu", torch.int64)))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def segment_rows(
    tokenizer: TextTokenizer, segment: Segment, num_codebooks: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens, mask (T, K + 1) of one segment given as codes, laid out exactly as `build_prompt` lays out
    context: its text rows, then its frames and the all-zero end frame (fine-tuning examples use it)."""
    return _segment_rows(tokenizer, segment, None, num_codebooks, 0)


def build_prompt(
    tokenizer: TextTokenizer,
    context: Sequence[Segment],
    speaker: int,
    text: str,
    encode: AudioEncoder | None,
    max_rows: int,
    num_reference_segments: int = 0,
    num_codebooks: int = 32,
    codebook_size: int = 2048,
    reserve_rows: int = 0,
) -> Prompt:
    """The rows for speaking `text` as `speaker` after `context` (oldest first), within `max_rows` rows, of
    which `reserve_rows` stay free for the frames to generate (context gives way for them; the text never).

    The first `num_reference_segments` context segments are the voice's references (kept before any turn);
    see the module docstring for the trimming policy. Context audio is encoded only for segments kept.
    """
    # 1. validate everything first, so the same input fails the same way whatever gets trimmed
    _check_speaker(speaker, "request")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("text is empty: give some words to speak")
    for index, segment in enumerate(context):
        _check_segment(segment, index, num_codebooks, codebook_size)
    if not 0 <= num_reference_segments <= len(context):
        raise ValueError(
            f"num_reference_segments={num_reference_segments} with {len(context)} context segments"
        )

    # 2. the text to speak must fit on its own; the context gets what is left after the reserved rows
    if reserve_rows < 0:
        raise ValueError(f"reserve_rows must be >= 0, got {reserve_rows}")
    target = _text_rows(tokenizer.segment_ids(speaker, text), num_codebooks)
    if target[0].shape[0] > max_rows:
        raise TextTooLong(
            f"the text takes {target[0].shape[0]} tokens; at most {max_rows} fit. Split it into shorter parts."
        )
    budget = max(0, max_rows - target[0].shape[0] - reserve_rows)

    # 3. references in order while they fit, then turns newest first until one does not fit
    references: list[tuple[torch.Tensor, torch.Tensor]] = []
    for index, segment in enumerate(context[:num_reference_segments]):
        rows = _segment_rows(tokenizer, segment, encode, num_codebooks, index)
        if rows[0].shape[0] <= budget:
            references.append(rows)
            budget -= rows[0].shape[0]
    turns: list[tuple[torch.Tensor, torch.Tensor]] = []
    for index in range(len(context) - 1, num_reference_segments - 1, -1):
        rows = _segment_rows(tokenizer, context[index], encode, num_codebooks, index)
        if rows[0].shape[0] > budget:
            break
        turns.insert(0, rows)
        budget -= rows[0].shape[0]

    parts = [*references, *turns, target]
    return Prompt(
        tokens=torch.cat([p[0] for p in parts]),
        mask=torch.cat([p[1] for p in parts]),
        num_context_segments=len(parts) - 1,
        num_dropped_segments=len(context) - (len(parts) - 1),
        num_references_kept=len(references),
        reference_rows=sum(r[0].shape[0] for r in references),
    )
