"""The realtime connections' shared speech recognition (server/realtime_services.py) gives the incremental
transcription Whisper's short-window decode, as `load_stt`'s recognizer does in the benches: the server's
partial and speculative transcripts must not fall back to a 30 s decode each (they did: 440–800 ms per decode
on 2 cores instead of ~100 ms, with no confidence for the end-of-turn decider)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np

from csmstream.config import Settings
from csmstream.pipeline.incremental_stt import transcribe_once
from csmstream.server.realtime_services import RealtimeServices

sys.path.insert(0, str(Path(__file__).parents[1]))
from speech_recordings import SAMPLE_RATE, speak, word_overlap  # noqa: E402

QUESTION = "What time does the museum open tomorrow?"


def test_the_shared_recognizer_decodes_partial_transcripts_on_the_short_window():
    audio = np.concatenate([speak(QUESTION), np.zeros(2400, dtype=np.float32)])

    async def scenario():
        services = RealtimeServices(Settings())
        decoded = await transcribe_once(services.stt, audio, SAMPLE_RATE)  # waits for Whisper to load
        whisper = await services.stt._loaded()
        short = await asyncio.to_thread(whisper.transcribe_window_detailed_sync, audio, SAMPLE_RATE)
        return decoded, short

    decoded, short = asyncio.run(scenario())
    assert decoded.avg_logprob is not None  # the short-window path: it reports Whisper's confidence
    assert (decoded.text, decoded.avg_logprob) == (short.text, short.avg_logprob)
    assert word_overlap(QUESTION, decoded.text) >= 0.5, decoded.text  # speech was heard (tiny.en may slip)
