"""What every realtime connection of one app shares: the LLM, speech recognition (Whisper), the VAD model and
the end-of-turn model, built on the first connection (on worker threads: they load slowly) and kept on
`app.state.realtime`."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import numpy as np
from fastapi import FastAPI

from csmstream.config import Settings
from csmstream.engine.request import SAMPLE_RATE
from csmstream.pipeline.end_of_turn_model import EndOfTurnModel, load_end_of_turn_model
from csmstream.pipeline.llm import LLMBackend, LLMError, build_llm
from csmstream.pipeline.llm.persona import DEFAULT_PERSONA
from csmstream.pipeline.stt import Transcript, WhisperTranscriber, load_stt
from csmstream.pipeline.vad_model import SileroVadModel
from csmstream.server.realtime_llm import MissingLLM

logger = logging.getLogger(__name__)

NO_LLM_MESSAGE = "no LLM configured: start the server with --llm-base-url/--llm-model or --llm-gguf"


class _SharedTranscriber:
    """Whisper, loaded once per app on a worker thread the first time a connection opens; a transcription
    that comes before the load has finished waits for it. A failed load fails every transcription with its
    reason (an `error` event per user turn)."""

    def __init__(self, model: str | None) -> None:
        self._model = model
        self._loading: asyncio.Task[WhisperTranscriber] | None = None

    def start_loading(self) -> None:
        if self._loading is None:
            self._loading = asyncio.get_running_loop().create_task(asyncio.to_thread(load_stt, self._model))

    async def _loaded(self) -> WhisperTranscriber:
        self.start_loading()
        assert self._loading is not None, "loading was just started"
        # shielded: a turn cancelled while the model loads must not cancel the load for every connection
        return await asyncio.shield(self._loading)

    async def transcribe(self, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
        return await (await self._loaded()).transcribe(pcm, sample_rate)

    async def transcribe_window_detailed(self, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Transcript:
        """The short-window decode (the incremental transcription's: several times faster than `transcribe`
        on a short turn), with Whisper's confidence."""
        return await (await self._loaded()).transcribe_window_detailed(pcm, sample_rate)


class RealtimeServices:
    """The LLM, speech recognition, VAD model and end-of-turn model shared by the realtime connections of one
    app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.persona = settings.persona or DEFAULT_PERSONA
        self.stt = _SharedTranscriber(settings.stt_model or None)
        self.llm: LLMBackend = MissingLLM(NO_LLM_MESSAGE)
        self.llm_problem: str | None = NO_LLM_MESSAGE  # why there is no LLM to answer; None: there is one
        self.vad_model: SileroVadModel | None = None
        self.end_of_turn_model: EndOfTurnModel | None = None  # None: semantic_vad by rules alone
        self._lock = asyncio.Lock()
        self._ready = False

    async def ready(self) -> None:
        """Build what the first connection needs (on worker threads: llama.cpp and ONNX load slowly)."""
        async with self._lock:
            if self._ready:
                return
            self.stt.start_loading()  # Whisper loads in the background: the first turn is seconds away
            s = self.settings
            if s.llm_gguf or s.llm_base_url:
                try:
                    self.llm = await asyncio.to_thread(
                        build_llm,
                        s.llm_base_url or None,
                        s.llm_model or None,
                        s.llm_api_key or None,
                        s.llm_gguf,
                    )
                    self.llm_problem = None
                except LLMError as exc:  # e.g. llama-cpp-python missing: every answer says so
                    logger.error("the LLM could not be set up: %s", exc)
                    self.llm, self.llm_problem = MissingLLM(str(exc)), str(exc)
            self.vad_model = await asyncio.to_thread(SileroVadModel)
            if s.turn_model:
                try:
                    self.end_of_turn_model = await asyncio.to_thread(load_end_of_turn_model)
                except Exception:  # a broken llama.cpp install: conversations still work, by rules
                    logger.exception(
                        "the end-of-turn model could not be loaded: semantic_vad uses rules only"
                    )
            self._ready = True

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.llm.aclose()


def realtime_services(app: FastAPI, settings: Settings) -> RealtimeServices:
    """The app's services, created (not yet loaded) on first use."""
    services = getattr(app.state, "realtime", None)
    if services is None:
        services = app.state.realtime = RealtimeServices(settings)
    return services
