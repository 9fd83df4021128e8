"""Prompts for the engine: the voice's reference segments, the request's context turns, then the text.

Generation always has its rows: `build` is told how many frames the utterance may make and keeps that many
rows of the window free (see the trimming policy in model/tokenizer.py).

The reference segments form a prefix that is the same for every request in that voice, so the engine
caches its KV state (see prefix_cache.py); `AssembledPrompt.prefix_rows` says how many rows it spans.
Reference audio is encoded by Mimi once per voice revision and kept as codes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from csmstream.engine.request import SynthesisRequest
from csmstream.model.tokenizer import Segment, TextTokenizer, build_prompt


@dataclass(frozen=True)
class AssembledPrompt:
    tokens: torch.Tensor  # (T, K + 1) int64
    mask: torch.Tensor  # (T, K + 1) bool
    prefix_rows: int  # rows [0, prefix_rows) are the voice reference (0: no voice, or it had to be trimmed)

    @property
    def num_rows(self) -> int:
        return self.tokens.shape[0]


class PromptAssembler:
    def __init__(
        self,
        tokenizer: TextTokenizer,
        encode: Callable[[np.ndarray], torch.Tensor],  # (S,) 24 kHz → (T, K) codes
        max_rows: int,
        num_codebooks: int = 32,
        max_cached_voices: int = 32,
    ):
        self.tokenizer = tokenizer
        self.encode = encode
        self.max_rows = max_rows
        self.num_codebooks = num_codebooks
        self.max_cached_voices = max_cached_voices
        self._reference_codes: OrderedDict[tuple[str, str], list[torch.Tensor]] = OrderedDict()
        # context audio (e.g. a user's recorded turn) is sent again with every later unit of a conversation:
        # encode each clip once, keyed by a hash of its samples
        self._audio_codes: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.max_cached_clips = 64
        self.encoded_clips = 0  # Mimi encodes actually run (a figure for tests and metrics)

    def encode_cached(self, audio: np.ndarray) -> torch.Tensor:
        samples = np.ascontiguousarray(audio, dtype=np.float32)
        key = hashlib.blake2b(samples.tobytes(), digest_size=16).digest()
        codes = self._audio_codes.get(key)
        if codes is None:
            codes = self.encode(samples)
            self.encoded_clips += 1
            self._audio_codes[key] = codes
            while len(self._audio_codes) > self.max_cached_clips:
                self._audio_codes.popitem(last=False)
        self._audio_codes.move_to_end(key)
        return codes

    def reference_segments(self, voice) -> list[Segment]:
        """The voice's references as segments carrying codes (encoded once per voice revision)."""
        key = (voice.voice_id, voice.revision)
        codes = self._reference_codes.get(key)
        if codes is None:
            codes = [self.encode_cached(seg.audio) for seg in voice.segments]
            self._reference_codes[key] = codes
            while len(self._reference_codes) > self.max_cached_voices:
                self._reference_codes.popitem(last=False)
        self._reference_codes.move_to_end(key)
        return [
            Segment(voice.speaker, seg.text, codes=c) for seg, c in zip(voice.segments, codes, strict=True)
        ]

    def build(self, request: SynthesisRequest, voice, reserve_rows: int = 0) -> AssembledPrompt:
        """The prompt for `request`, leaving `reserve_rows` rows of the window free for the frames it may
        generate: earlier turns / units give way first, then the voice references; the text always stays."""
        references = self.reference_segments(voice) if voice is not None else []
        speaker = (
            request.speaker if request.speaker is not None else (voice.speaker if voice is not None else 0)
        )
        prompt = build_prompt(
            self.tokenizer,
            [*references, *request.context],
            speaker,
            request.text,
            self.encode_cached,
            max_rows=self.max_rows,
            num_reference_segments=len(references),
            num_codebooks=self.num_codebooks,
            reserve_rows=reserve_rows,
        )
        # the prefix is cacheable only when every reference segment was kept (they are always in front)
        all_kept = references and prompt.num_references_kept == len(references)
        prefix_rows = prompt.reference_rows if all_kept and prompt.reference_rows < prompt.num_rows else 0
        return AssembledPrompt(prompt.tokens, prompt.mask, prefix_rows)
