"""Whisper on a short window: the encoder sees the turn plus a little silence, not 30 s.

faster-whisper pads every input to Whisper's 30 s window, so a 2 s question costs as much encoder time as a
30 s one (measured on 2 shared CPU cores with tiny.en: about 0.7–2 s per decode, almost all of it the
encoder). CTranslate2 (≥ 4) accepts shorter encoder inputs, and the encoder's cost falls with the window.

Whisper was trained on padded 30 s windows, and on a window that ends right after the speech the decoder
often misses its end of text and repeats the sentence. With a few seconds of silence after the speech it
stops where the speech stops (measured on piper speech: windows of ≥ 10 s matched the 30 s decode; 6 s
repeated one sentence in three). Two guards catch what still goes wrong, and the caller then decodes the
30 s way: the text hits the token cap (a bound on how much can be said per second), or it ends by repeating
itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from csmstream.pipeline.stt_result import Transcript

WHISPER_SAMPLE_RATE = 16_000
MIN_WINDOW_S = 10.0  # shorter windows make the decoder repeat itself
TRAILING_SILENCE_S = 3.0  # at least this much padding after the speech
MAX_WINDOW_S = 30.0  # Whisper's own window: longer audio goes the usual way
TOKENS_PER_SECOND = 8.0  # far above speech (about 4 tokens a second); reaching it means the decoder ran away
TOKEN_SLACK = 10


def decode_short_window(model: Any, samples_16k: np.ndarray) -> Transcript | None:
    """(S,) float32 16 kHz → the text with Whisper's confidence, or None when the audio is too long for the
    fast path or the result looks wrong (the caller then decodes the 30 s way). `model` is a faster-whisper
    `WhisperModel`; the caller holds its lock."""
    import ctranslate2
    from faster_whisper.tokenizer import Tokenizer

    duration_s = len(samples_16k) / WHISPER_SAMPLE_RATE
    window_s = max(duration_s + TRAILING_SILENCE_S, MIN_WINDOW_S)
    if window_s > MAX_WINDOW_S:
        return None
    padded = np.zeros(int(window_s * WHISPER_SAMPLE_RATE), dtype=np.float32)
    padded[: len(samples_16k)] = samples_16k
    features = model.feature_extractor(padded)  # (80, T) log-mel, 10 ms hops
    num_frames = features.shape[-1] - features.shape[-1] % 2  # the encoder's conv halves T
    features = np.ascontiguousarray(features[None, :, :num_frames], dtype=np.float32)
    encoded = model.model.encode(ctranslate2.StorageView.from_array(features), to_cpu=False)
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    max_new_tokens = int(TOKEN_SLACK + TOKENS_PER_SECOND * duration_s)
    result = model.model.generate(
        encoded,
        [prompt],
        beam_size=1,
        max_length=len(prompt) + max_new_tokens,
        suppress_blank=True,
        suppress_tokens=[-1],
        return_scores=True,  # the mean log-probability per token (length_penalty 1)
        return_no_speech_prob=True,
    )[0]
    tokens = result.sequences_ids[0]
    text_tokens = [t for t in tokens if t < tokenizer.eot]
    if len(tokens) >= max_new_tokens:  # no end of text within the cap: a runaway
        return None
    text = " ".join(tokenizer.decode(text_tokens).split())
    if repeats_itself(text):
        return None
    return Transcript(text, avg_logprob=float(result.scores[0]), no_speech_prob=float(result.no_speech_prob))


def repeats_itself(text: str, min_words: int = 3) -> bool:
    """True when the text ends with a run of ≥ `min_words` words that it has just said (the decoder looping)."""
    words = [w.strip(".,?!").lower() for w in text.split()]
    for size in range(min_words, len(words) // 2 + 1):
        if words[-size:] == words[-2 * size : -size]:
            return True
    return False
