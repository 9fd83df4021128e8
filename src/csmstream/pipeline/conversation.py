"""One spoken conversation (one realtime connection): the user's audio in, the assistant's speech out.

    mic audio ─▶ VAD ─▶ turn audio ─▶ STT ─▶ user turn ─┐
                  └─▶ incremental STT ─▶ turn-end decider ▼
    history ─▶ LLM stream ─▶ SpeakableSplitter ─▶ unit ─▶ SynthesisRequest(context = history) ─▶ audio out

The transport drives it with `append_audio`, `commit`, `add_user_text`, `create_response`,
`cancel_response`, `truncate` / `interrupt`, and reads `events()`. Everything runs on the caller's event loop;
the methods that the transport calls never block (STT, LLM and synthesis run in tasks).

While the user speaks, the turn is transcribed as it grows (`incremental_stt.py`: word deltas out, and a
speculative decode of the turn as soon as a silence begins), so at the end of the turn its transcript is
ready or nearly; with `semantic_vad` that transcript, and a small language model's probability that the
user's message ends there (`end_of_turn_model.py`), decide how much silence ends the turn (`turn_end.py`).

Units are synthesized one after another, each with the previous ones in its context (so the voice carries
on), while the LLM keeps writing: the first unit is spoken as soon as the splitter releases it.

A text-only response (`SessionConfig.text_only`, or `create_response(text_only=True)`: the realtime
`modalities: ["text"]`) skips the voice: nothing is submitted to the engine, the LLM's text goes out as
`TranscriptDelta`s as it is written, and its turn keeps the text (the LLM reads it; the speech model's context
has no audio of it).

Barge-in: when the user starts speaking while the assistant is audible, the LLM stream and the current
synthesis are cancelled and the assistant's turn is cut to what the user heard (the played-samples figure
is the client's, or the server's own estimate: 1× playback from the first chunk sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from csmstream.audio.resample import resample
from csmstream.engine.base import RequestHandle, SpeechEngine
from csmstream.engine.events import AudioChunk, Finished
from csmstream.engine.request import SAMPLE_RATE, SynthesisRequest
from csmstream.errors import BadRequest, CsmstreamError
from csmstream.pipeline import events as ev
from csmstream.pipeline.end_of_turn_model import EndOfTurnModel, EndOfTurnScores
from csmstream.pipeline.first_unit import FirstClauseSplitter
from csmstream.pipeline.history import AssistantTurn, History, SpokenUnit, UserTurn
from csmstream.pipeline.incremental_stt import IncrementalTranscription
from csmstream.pipeline.input_buffer import InputAudioBuffer
from csmstream.pipeline.llm.base import LLMBackend
from csmstream.pipeline.playback import PlaybackClock
from csmstream.pipeline.session import SessionConfig
from csmstream.pipeline.stt import Transcriber
from csmstream.pipeline.turn_timings import TurnTimings
from csmstream.pipeline.vad import StreamingVad, VadEvent, as_float32
from csmstream.pipeline.vad_model import SileroVadModel
from csmstream.text.controls import speakable
from csmstream.text.normalize import normalize_for_speech
from csmstream.text.splitter import SpeakableSplitter

log = logging.getLogger(__name__)

TAIL_PADDING_MS = 100  # audio kept after the detected end of speech (the decay of the last word)
PRE_ONSET_KEEP_MS = 1500  # input kept while nobody speaks: covers the onset confirmation delay + padding
DRAIN_TIMEOUT_S = 5.0  # how long a cancelled synthesis may take to hand back its codes
# Silence after which the turn so far is decoded in case the silence ends it. Shorter, and the dips between
# words start decodes that occupy the recognizer for nothing; longer, and the transcript comes later.
SPECULATE_AFTER_MS = 96.0


def new_item_id() -> str:
    return "item_" + uuid.uuid4().hex[:16]


def new_response_id() -> str:
    return "resp_" + uuid.uuid4().hex[:16]


@dataclass
class _Response:
    response_id: str
    turn: AssistantTurn
    cancel: asyncio.Event = field(default_factory=asyncio.Event)  # tells the LLM stream to stop
    playback: PlaybackClock | None = None
    handle: RequestHandle | None = None  # the synthesis in progress
    task: asyncio.Task[None] | None = None
    done: bool = False  # ResponseDone was emitted: nothing more may be emitted or added for it
    spoke: bool = False  # some transcript was emitted (the next unit needs a separating space)
    timings: TurnTimings | None = None


class Conversation:
    """The state of one conversation. Create it on the event loop that will drive it."""

    def __init__(
        self,
        engine: SpeechEngine,
        llm: LLMBackend,
        stt: Transcriber | None,
        *,
        config: SessionConfig | None = None,
        vad_model: SileroVadModel | None = None,
        end_of_turn_model: EndOfTurnModel | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.llm = llm
        self.stt = stt
        self.history = History()
        self._clock = clock
        self._vad_model = vad_model
        # semantic_vad's reading of the words (None: rules only)
        self._end_scores = EndOfTurnScores(end_of_turn_model) if end_of_turn_model is not None else None
        self._events: asyncio.Queue[ev.PipelineEvent | None] = asyncio.Queue()
        self._closed = False
        self._response: _Response | None = None
        self._last_response: _Response | None = None  # may still be playing after it finished generating
        self._transcription: asyncio.Task[None] | None = None  # the newest one; each awaits the one before
        self._background: set[asyncio.Task[None]] = set()
        self.config = SessionConfig()
        self._vad: StreamingVad | None = None
        self._input = InputAudioBuffer(self.config.input_sample_rate)
        self._speech_item_id: str | None = None
        self._speech_start_sample = 0
        self._incremental: IncrementalTranscription | None = None  # the turn being spoken
        self._turn_timings: TurnTimings | None = None  # of the newest spoken turn, until a response takes it
        self.update_config(config or SessionConfig())

    # ---- configuration

    def update_config(self, config: SessionConfig) -> None:
        """Apply a new session config. Changing the input rate or the turn detection drops buffered input."""
        old = self.config
        self.config = config
        input_changed = config.input_sample_rate != old.input_sample_rate or self._input.sample_rate != (
            config.input_sample_rate
        )
        if (
            input_changed
            or config.turn_detection != old.turn_detection
            or (config.turn_detection is not None and self._vad is None)
        ):
            self._input = InputAudioBuffer(config.input_sample_rate)
            self._speech_item_id = None
            self._drop_incremental()
            self._vad = None
            if config.turn_detection is not None:
                if self._vad_model is None:
                    self._vad_model = SileroVadModel()
                self._vad = StreamingVad(
                    self._vad_model, config.turn_detection.vad_config(), sample_rate=config.input_sample_rate
                )

    # ---- events out

    async def events(self) -> AsyncIterator[ev.PipelineEvent]:
        """Every event, in order, until `aclose()`. One consumer."""
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    def _emit(self, event: ev.PipelineEvent) -> None:
        if not self._closed:
            self._events.put_nowait(event)

    # ---- user input

    def append_audio(self, pcm: bytes | np.ndarray) -> None:
        """PCM16 LE bytes (or an int16 / float32 array) of user audio at `config.input_sample_rate`."""
        samples = as_float32(pcm)
        self._input.append(samples)
        if self._vad is None:
            return
        for vad_event in self._vad.push(samples):
            self._on_vad(vad_event)
        if self._speech_item_id is not None and self._vad.speaking:
            self._follow_speech(self._vad)
        if self._speech_item_id is None:  # nobody is speaking: keep only what a coming onset might need
            self._input.drop_before(self._input.end_sample - self._input.ms_to_sample(PRE_ONSET_KEEP_MS))

    def _on_vad(self, vad_event: VadEvent) -> None:
        detection = self.config.turn_detection
        assert detection is not None, "VAD events without turn detection"
        if vad_event.kind == "speech_started":
            self._speech_item_id = new_item_id()
            self._speech_start_sample = self._input.ms_to_sample(
                vad_event.at_ms - detection.prefix_padding_ms
            )
            self._emit(ev.SpeechStarted(self._speech_item_id, int(vad_event.at_ms)))
            self._drop_incremental()
            if self.stt is not None:
                item = self._speech_item_id
                self._incremental = IncrementalTranscription(
                    self.stt,
                    self.config.input_sample_rate,
                    lambda delta: self._emit(ev.TranscriptionDelta(item, delta)),
                    on_decoded=self._prefetch_end_score,
                )
            if detection.interrupt_response and self.assistant_audible():
                self.interrupt()
            return
        if self._speech_item_id is None:
            return
        item_id, self._speech_item_id = self._speech_item_id, None
        now_s = self._clock()
        # on a live stream the silence waited for is wall time: the speech ended that long ago
        self._turn_timings = TurnTimings(now_s - (vad_event.detected_ms - vad_event.at_ms) / 1000.0)
        self._turn_timings.mark("speech_end_detected", now_s)
        self._emit(ev.SpeechStopped(item_id, int(vad_event.at_ms)))
        silence_start = self._input.ms_to_sample(vad_event.at_ms)
        speculated_end = self._incremental.speculated_end(silence_start) if self._incremental else None
        # the turn as the speculative decode cut it (its transcript is then ready), else with the full tail
        end_sample = speculated_end or self._input.ms_to_sample(vad_event.at_ms + TAIL_PADDING_MS)
        audio = self._input.slice(self._speech_start_sample, end_sample)
        self._input.drop_before(end_sample)
        self._commit_audio(item_id, audio, respond=detection.create_response, silence_start=silence_start)

    def _follow_speech(self, vad: StreamingVad) -> None:
        """While the user speaks: transcribe the turn as it grows; in a silence, decode the turn as the
        silence would end it, and end it when the turn-end decider says the silence is long enough."""
        incremental = self._incremental
        silence_ms = vad.silence_ms
        start = self._speech_start_sample
        if incremental is not None and silence_ms == 0.0:
            end = self._input.end_sample
            incremental.partial(lambda: self._input.slice(start, end), end - start, end)
            return
        detection = self.config.turn_detection
        assert detection is not None, "following speech without turn detection"
        silence_start = self._input.ms_to_sample(vad.stream_ms - silence_ms)
        if (
            incremental is not None
            and silence_ms >= SPECULATE_AFTER_MS
            and incremental.speculated_end(silence_start) is None
        ):
            tail_end = silence_start + self._input.ms_to_sample(TAIL_PADDING_MS)
            end_sample = min(tail_end, self._input.end_sample)  # as much of the tail as has arrived
            incremental.speculate(silence_start, end_sample, self._input.slice(start, end_sample))
        policy = detection.turn_end_policy()
        if not policy.semantic:
            return  # the VAD's own silence rule ends the turn
        decoded = incremental.speculative(silence_start) if incremental is not None else None
        transcript = decoded.text if decoded is not None else None
        avg_logprob = decoded.avg_logprob if decoded is not None else None
        end_probability = None
        if transcript is not None and self._end_scores is not None:
            known, end_probability = self._end_scores.probability(transcript)
            if not known:
                transcript = None  # decided once the words are scored (tens of ms): till then, as unknown
        if policy.turn_ended(transcript, silence_ms, end_probability, avg_logprob):
            log.debug(
                "turn ends after %.0f ms of silence: %r (P(end) %s, mean log-prob %s)",
                silence_ms,
                transcript,
                end_probability,
                avg_logprob,
            )
            stop = vad.end_speech()
            if stop is not None:
                self._on_vad(stop)

    def _prefetch_end_score(self, transcript: str) -> None:
        """Score each decode of the turn as it comes (semantic_vad), so a silence finds its score ready."""
        detection = self.config.turn_detection
        if self._end_scores is not None and detection is not None and detection.type == "semantic_vad":
            self._end_scores.probability(transcript)

    def _drop_incremental(self) -> None:
        if self._incremental is not None:
            self._incremental.close()
            self._incremental = None

    def commit(self) -> str | None:
        """Make the buffered input a user turn now (the client decides turns). Returns its item id, or None
        when the buffer is empty."""
        audio = self._input.take_all()
        if self._speech_item_id is not None:  # the VAD was mid-turn: that turn is this one
            item_id, self._speech_item_id = self._speech_item_id, None
            self._turn_timings = TurnTimings(self._clock())
            if self._vad is not None:
                self._vad.reset()
        else:
            item_id = new_item_id()
        if len(audio) == 0:
            return None
        self._commit_audio(item_id, audio, respond=False)
        return item_id

    def clear_audio(self) -> None:
        """Drop buffered input (`input_audio_buffer.clear`)."""
        self._input.drop_before(self._input.end_sample)
        self._speech_item_id = None
        self._drop_incremental()
        if self._vad is not None:
            self._vad.reset()

    def add_user_text(self, text: str) -> str:
        """A typed user turn. Returns its item id. The client asks for the answer with `create_response`."""
        if not text.strip():
            raise BadRequest("user text is empty")
        turn = UserTurn(new_item_id(), text.strip())
        self.history.add(turn)
        return turn.item_id

    def _commit_audio(
        self, item_id: str, audio: np.ndarray, *, respond: bool, silence_start: int | None = None
    ) -> None:
        audio_24k = resample(audio, self.config.input_sample_rate, SAMPLE_RATE)
        turn = UserTurn(item_id, "", audio=audio_24k)
        self.history.add(turn)  # now, so turns keep the order they were spoken in
        self._emit(ev.InputCommitted(item_id))
        incremental, self._incremental = self._incremental, None
        if incremental is None and self.stt is not None:  # a client commit: no words were followed
            incremental = IncrementalTranscription(
                self.stt,
                self.config.input_sample_rate,
                lambda delta: self._emit(ev.TranscriptionDelta(item_id, delta)),
            )
        previous = self._transcription
        final = (
            self._spawn_text(incremental.final(audio, silence_start)) if incremental is not None else None
        )  # starts now: it need not wait for the previous turn's transcript
        self._transcription = self._spawn(
            self._transcribe(turn, previous, respond, final, self._turn_timings)
        )

    async def _transcribe(
        self,
        turn: UserTurn,
        previous: asyncio.Task[None] | None,
        respond: bool,
        final: asyncio.Task[str] | None = None,
        timings: TurnTimings | None = None,
    ) -> None:
        if previous is not None:  # transcripts come out in the order the turns were spoken
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await previous
        if self.stt is None:
            self.history.remove(turn)
            self._emit(ev.Error("stt_unavailable", "speech recognition is not configured on this server"))
            return
        assert turn.audio is not None, "a spoken turn has audio"
        try:
            turn.text = (
                await final if final is not None else await self.stt.transcribe(turn.audio, SAMPLE_RATE)
            )
        except CsmstreamError as exc:
            self.history.remove(turn)
            self._emit(ev.Error(exc.code, str(exc)))
            return
        if timings is not None:
            timings.mark("transcript_final", self._clock())
        self._emit(ev.TranscriptionCompleted(turn.item_id, turn.text))
        # Nothing recognised (a cough, noise): no answer. Nor when the user has already started again.
        if respond and turn.text and self._speech_item_id is None and self._response is None:
            self.create_response(timings)

    # ---- responses

    @property
    def responding(self) -> bool:
        return self._response is not None

    def assistant_audible(self) -> bool:
        """True while a response is generating, or its audio is still playing at the client."""
        if self._response is not None:
            return True
        last = self._last_response
        return last is not None and last.playback is not None and last.playback.playing()

    def create_response(
        self, timings: TurnTimings | None = None, *, text_only: bool | None = None
    ) -> str | None:
        """Start answering the conversation so far. Returns the response id; None (with an `Error` event)
        when a response is already in progress. `timings`: of the spoken turn it answers. `text_only`: this
        response written, not spoken (None: as the session's config says)."""
        if self._response is not None:
            self._emit(ev.Error("response_in_progress", "a response is already in progress: cancel it first"))
            return None
        text_only = self.config.text_only if text_only is None else text_only
        turn = AssistantTurn(new_item_id(), text_only=text_only)
        response = _Response(new_response_id(), turn, timings=timings or TurnTimings(self._clock()))
        self.history.add(turn)
        self._response = response
        self._emit(ev.ResponseCreated(response.response_id, turn.item_id, text_only))
        response.task = self._spawn(self._run_response(response))
        return response.response_id

    def cancel_response(self) -> bool:
        """Stop the response in progress (`response.cancel`). Its turn keeps the audio sent so far; the
        client's `truncate` then cuts it to what was played. False when nothing was in progress."""
        response = self._response
        if response is None:
            return False
        sent = response.playback.sent_samples if response.playback is not None else 0
        self._stop(response)
        response.turn.truncate(sent)
        self._finish(response, "cancelled")
        return True

    def truncate(self, item_id: str | None, played_samples: int) -> None:
        """Cut an assistant turn (the newest when `item_id` is None) to its first `played_samples` samples
        (`conversation.item.truncate`). A turn still being generated is stopped first."""
        turn = self.history.find(item_id) if item_id is not None else self._newest_assistant_turn()
        if turn is None or not isinstance(turn, AssistantTurn):
            raise BadRequest(f"no assistant item {item_id!r} to truncate")
        if self._response is not None and self._response.turn is turn:
            self.cancel_response()
        turn.truncate(played_samples)
        last = self._last_response
        if last is not None and last.turn is turn:
            last.playback = None  # the client stopped playing it

    def interrupt(self, played_samples: int | None = None) -> None:
        """Barge-in: stop the response (LLM and synthesis) and cut the assistant's turn to what was played.
        `played_samples` of the current (or last, still playing) response; None: the server's estimate."""
        response = self._response
        if response is None:  # generation is over: only audio still playing can be interrupted
            last = self._last_response
            if last is None or last.playback is None or not last.playback.playing():
                return
            response = last
        if played_samples is None:
            played_samples = response.playback.played_samples() if response.playback is not None else 0
        self.truncate(response.turn.item_id, played_samples)

    def _newest_assistant_turn(self) -> AssistantTurn | None:
        return next((t for t in reversed(self.history.turns) if isinstance(t, AssistantTurn)), None)

    def _stop(self, response: _Response) -> None:
        """Stop generating at once: the LLM stream ends, the synthesis is cancelled (freed within one step)."""
        response.cancel.set()
        if response.handle is not None:
            response.handle.cancel()
        task = response.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            # It may read on to collect the cancelled synthesis' codes, but not for ever.
            asyncio.get_running_loop().call_later(DRAIN_TIMEOUT_S, task.cancel)

    def _finish(self, response: _Response, status: ev.ResponseStatus, error: str | None = None) -> None:
        """Close the response towards the client: exactly once."""
        if response.done:
            return
        response.done = True
        if self._response is response:
            self._response = None
        self._last_response = response
        turn = response.turn
        item_id = turn.item_id
        if not turn.text_only:
            self._emit(ev.AudioDone(response.response_id, item_id))
        self._emit(ev.TranscriptDone(response.response_id, item_id, turn.text))
        timings_ms = response.timings.as_ms() if response.timings is not None else None
        self._emit(ev.ResponseDone(response.response_id, item_id, status, error, timings_ms))
        if not turn.units:
            self.history.remove(turn)

    async def _run_response(self, response: _Response) -> None:
        """LLM → units → synthesis, one unit after another, until the LLM is done or the response stops."""
        units: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        writer: asyncio.Task[None] | None = None
        status: ev.ResponseStatus = "completed"
        error: str | None = None
        try:
            # 1) the user's last words must be transcribed before the LLM reads the history
            while self._transcription is not None and not self._transcription.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._transcription)
            if response.done:
                return
            messages = self.history.llm_messages(
                self.config.instructions, self.config.context, before=response.turn
            )
            if response.turn.text_only:  # 2) the LLM's text is the answer
                await self._write_text(response, messages)
                return
            # 2) the LLM writes on while units are spoken
            writer = asyncio.create_task(self._write(response, messages, units))
            while not response.done:
                unit = await units.get()
                if unit is None:
                    break
                if isinstance(unit, BaseException):
                    raise unit
                await self._speak(response, unit)
        except CsmstreamError as exc:
            status, error = "failed", str(exc)
            if not response.done:
                self._emit(ev.Error(exc.code, str(exc)))
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except Exception as exc:  # a bug: tell the client, keep the connection
            log.exception("response %s failed", response.response_id)
            status, error = "failed", f"internal error: {exc}"
            if not response.done:
                self._emit(ev.Error("internal", error))
        finally:
            if status != "completed":
                self._stop(response)
            if writer is not None and not writer.done():
                response.cancel.set()
                writer.cancel()
            self._finish(response, status, error)

    async def _write(
        self,
        response: _Response,
        messages: list[dict[str, str]],
        units: asyncio.Queue[str | BaseException | None],
    ) -> None:
        """Stream the LLM's answer, cut into speakable units, into `units`; end with None (or the error)."""
        splitter = FirstClauseSplitter(SpeakableSplitter())  # a short first unit: the first audio sooner
        timings = response.timings
        try:
            async for delta in self.llm.stream_chat(messages, cancel=response.cancel):
                if timings is not None and delta:
                    timings.mark("llm_first_token", self._clock())
                for unit in splitter.push(delta):
                    units.put_nowait(unit)
            if not response.cancel.is_set():
                for unit in splitter.flush():
                    units.put_nowait(unit)
            units.put_nowait(None)
        except asyncio.CancelledError:
            units.put_nowait(None)
            raise
        except Exception as exc:
            units.put_nowait(
                exc if isinstance(exc, CsmstreamError) else CsmstreamError(f"the LLM failed: {exc}")
            )

    async def _speak(self, response: _Response, text: str) -> None:
        """Synthesize one unit with the conversation so far as context; stream its audio out.

        After a barge-in it reads on, silently, only to collect the codes of what was heard (the history
        keeps them as context for the next utterance); `_stop` bounds that wait.
        """
        spoken_text = normalize_for_speech(speakable(text)).strip()  # an LLM may emit controls too
        if not spoken_text:
            return  # nothing to say (an emoji, a stray symbol)
        cfg = self.config
        unit = SpokenUnit(text=text.strip(), spoken_text=spoken_text)
        context = self.history.speech_context(
            cfg.context,
            user_speaker=cfg.user_speaker,
            assistant_speaker=cfg.assistant_speaker,
            current=response.turn,
        )
        request = SynthesisRequest(
            text=spoken_text,
            voice_id=cfg.voice_id,
            speaker=cfg.assistant_speaker,
            context=context,
            sampling=cfg.sampling,
            max_seconds=cfg.max_unit_seconds,
            # a later sentence of an answer already being heard goes before new requests (no gap, no `busy`)
            continues=bool(response.turn.units),
        )
        handle = self.engine.submit(request)  # Busy / BadRequest … surface as a failed response
        if response.timings is not None:
            response.timings.mark("first_unit_to_voice", self._clock())
        response.handle = handle
        response.turn.units.append(unit)
        try:
            async for event in handle.events():
                if isinstance(event, AudioChunk):
                    if not response.done and len(event.pcm) > 0:
                        self._send_audio(response, unit, event.pcm)
                elif isinstance(event, Finished):
                    unit.codes_full = event.codes
                    unit.finished = event.finish_reason in ("eos", "length")
                    if event.finish_reason == "error" and not response.done:
                        raise event.error or CsmstreamError("speech synthesis failed")
                    break
        finally:
            response.handle = None
            if not unit.finished and not response.done:  # left early (a failure): no more audio for it
                handle.cancel()

    async def _write_text(self, response: _Response, messages: list[dict[str, str]]) -> None:
        """A text-only response: the LLM's deltas go out as they come, into one unit without audio (the
        engine is never asked). A failed LLM raises; a cancelled response keeps what was written."""
        unit = SpokenUnit(text="", spoken_text="", finished=True)
        response.turn.units.append(unit)
        try:
            async for delta in self.llm.stream_chat(messages, cancel=response.cancel):
                if not unit.text:
                    delta = delta.lstrip()
                if not delta or response.done:
                    continue
                if response.timings is not None:
                    response.timings.mark("llm_first_token", self._clock())
                unit.text += delta
                self._emit(ev.TranscriptDelta(response.response_id, response.turn.item_id, delta))
        except CsmstreamError:
            raise
        except Exception as exc:
            raise CsmstreamError(f"the LLM failed: {exc}") from exc
        finally:
            if not unit.text:  # nothing written: the turn has no unit (`_finish` drops an empty turn)
                response.turn.units.remove(unit)

    def _send_audio(self, response: _Response, unit: SpokenUnit, pcm: np.ndarray) -> None:
        if not unit.chunks:  # the unit starts playing: its caption goes out with it
            caption = (" " if response.spoke else "") + unit.text
            response.spoke = True
            self._emit(ev.TranscriptDelta(response.response_id, response.turn.item_id, caption))
        if response.playback is None:
            response.playback = PlaybackClock(SAMPLE_RATE, self._clock)
            if response.timings is not None:
                response.timings.mark("first_audio_out", self._clock())
        unit.chunks.append(pcm)
        response.playback.sent(len(pcm))
        self._emit(ev.AudioDelta(response.response_id, response.turn.item_id, pcm))

    # ---- lifecycle

    def _spawn(self, coroutine) -> asyncio.Task[None]:  # noqa: ANN001
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _spawn_text(self, coroutine) -> asyncio.Task[str]:  # noqa: ANN001
        return self._spawn(coroutine)  # type: ignore[return-value]

    async def aclose(self) -> None:
        """Stop everything (the connection closed); `events()` ends."""
        if self._response is not None:
            self._stop(self._response)
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await task
        self._closed = True
        self._events.put_nowait(None)
