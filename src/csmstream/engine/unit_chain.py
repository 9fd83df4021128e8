"""One request spoken as a chain of units: long text is never cut, it is spoken unit after unit.

A text longer than one speakable unit (see `text/splitter.py`) runs as several engine requests, one after
another; each unit is spoken with the earlier units of the same request (their text and, on CSM, their
codes) as context, so the voice and prosody carry across sentences. The caller sees one `RequestHandle`:

    chain = UnitChain(engine, request)        # `request` is the template: voice, sampling, max_seconds ...
    for unit in split_units(request.text):
        chain.add(unit)
    chain.close()                             # no more units (incremental callers add and close later)
    chain.start()                             # optional: submit the first unit now, so refusals raise here
    async for event in chain.events(): ...

What the caller gets:
- the first unit's `Queued` (its positions) and `Started`; later units may wait for a slot again, silently;
- `AudioChunk`s with one continuing `seq` and `start_frame` (sample offset / 1920) across units;
- exactly one `Finished`: audio seconds summed, the first audio's ttfa (from the first submit), the
  generation-time-weighted rtf, the units' codes joined (CSM), and a finish_reason of
  `eos` when every unit ended by itself, `length` when a unit was cut (the client's `max_seconds`, the
  operator's per-unit cap, or CSM's runaway bound), `cancelled`, or `error` (the first failure ends the
  chain: a unit's engine error, or a refusal of a later unit such as `busy`).

`max_seconds` of the template bounds the whole request: each unit is submitted with what is left of it,
and once it is spent no further unit runs. Without it, each unit has only its engine's bounds.
`cancel()` stops the running unit (its slot is freed within a step) and drops the units not yet run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

import numpy as np

from csmstream.engine.base import RequestHandle, SpeechEngine
from csmstream.engine.events import AudioChunk, Event, Finished, FinishReason, Queued, Started
from csmstream.engine.request import FRAME_MS, FRAME_SAMPLES, SynthesisRequest
from csmstream.errors import CsmstreamError, TextTooLong
from csmstream.text.splitter import DEFAULT_MAX_CHARS, DEFAULT_MIN_CHARS, SpeakableSplitter

# Earlier units of the same request given as context to the next one (the prompt builder trims further, and
# drops them before the voice references when the unit's reserved rows need the room).
MAX_CONTEXT_UNITS = 3


def split_units(
    text: str,
    min_chars: int = DEFAULT_MIN_CHARS,
    max_chars: int = DEFAULT_MAX_CHARS,
    max_text_chars: int | None = None,
) -> list[str]:
    """A whole text → its speakable units, in order (`TextTooLong` beyond `max_text_chars` in all)."""
    if max_text_chars is not None and len(text) > max_text_chars:
        raise TextTooLong(f"text has {len(text)} characters; the limit is {max_text_chars}")
    splitter = SpeakableSplitter(min_chars=min_chars, max_chars=max_chars)
    return [unit for unit in splitter.push(text) + splitter.flush() if unit.strip()]


def own_speaker(request: SynthesisRequest) -> int:
    """The speaker of a request's spoken units when it names none and has no voice: CSM's speaker 0."""
    return request.speaker if request.speaker is not None else 0


class UnitChain(RequestHandle):
    def __init__(
        self,
        engine: SpeechEngine,
        request: SynthesisRequest,
        *,
        speaker_of: Callable[[SynthesisRequest], int] = own_speaker,
        max_context_units: int = MAX_CONTEXT_UNITS,
    ) -> None:
        """`request`: the template of every unit (its `text` is not spoken: units are `add`ed). `speaker_of`:
        the CSM speaker of the template (a voice's speaker when it names none), asked only when a unit comes
        back with codes, to label it as context for the next one."""
        self.request_id = request.request_id
        self._engine = engine
        self._template = request
        self._speaker_of = speaker_of
        self._max_context_units = max_context_units
        self._units: deque[str] = deque()  # added, not yet submitted
        self._closed = False  # no more units will be added
        self._wakeup = asyncio.Event()  # a unit was added, the chain closed, or it was cancelled
        self._handle: RequestHandle | None = None  # the unit submitted and not yet finished
        self._cancelled = False
        self._done = False  # the chain's `Finished` was produced (or its consumer left)
        self._spoken: list = []  # csmstream.model.tokenizer.Segment of the units spoken, with codes
        self._num_units = 0  # units submitted
        self._pending_text = ""  # the text of the unit submitted last
        # what the one `Finished` reports
        self._first_submit_s: float | None = None
        self._unit_submit_s = 0.0
        self._ttfa_ms: float | None = None
        self._num_chunks = 0
        self._num_samples = 0
        self._audio_seconds = 0.0
        self._generation_s = 0.0  # Σ rtf x audio seconds: the engine's own wall time for the units
        self._rtf_known = True
        self._codes: list[np.ndarray] | None = []  # None once a unit with audio had no codes (piper)

    # ---- units in ----------------------------------------------------------------------------------------

    def add(self, unit: str) -> None:
        """One more unit to speak after the others (ignored once the chain is closed, cancelled or done)."""
        if self._closed or self._cancelled or self._done or not unit.strip():
            return
        self._units.append(unit)
        self._wakeup.set()

    def close(self) -> None:
        """No more units: the chain finishes after the last one added."""
        self._closed = True
        self._wakeup.set()

    def start(self) -> UnitChain:
        """Submit the first unit now, so that its refusal (`Busy`, `UnknownVoice`, `BadRequest` ...) raises
        here, before any event, as `engine.submit` does. Later units are submitted as their turn comes."""
        if self._handle is None and self._num_units == 0 and self._units:
            self._handle = self._submit(self._units.popleft())
        return self

    # ---- the handle ------------------------------------------------------------------------------------

    def cancel(self) -> None:
        if self._done or self._cancelled:
            return
        self._cancelled = True
        self._units.clear()
        if self._handle is not None:
            self._handle.cancel()
        self._wakeup.set()

    async def events(self) -> AsyncIterator[Event]:  # type: ignore[override]
        reason: FinishReason = "eos"
        error: CsmstreamError | None = None
        cut = False  # a unit ended by a length bound
        try:
            while True:
                # 1. the next unit: submitted already (by `start`), or the next one added
                if self._handle is None:
                    if self._num_units and self._budget_spent() and (self._units or not self._closed):
                        cut = True  # the client's max_seconds is spent and text is (or may be) left
                        break
                    unit = await self._next_unit()
                    if unit is None:
                        break
                    try:
                        self._handle = self._submit(unit)
                    except CsmstreamError as exc:
                        reason, error = "error", exc
                        break
                # 2. relay its events under the chain's numbering
                first_unit = self._num_units == 1
                finished: Finished | None = None
                async for event in self._handle.events():
                    if isinstance(event, AudioChunk):
                        yield self._renumbered(event)
                    elif isinstance(event, Queued | Started):
                        if first_unit:
                            yield event
                    elif isinstance(event, Finished):
                        finished = event
                self._handle = None
                assert finished is not None, "an engine event stream must end with Finished"
                # 3. account for it; the first unit that did not end normally ends the chain
                self._account(finished)
                if finished.finish_reason in ("error", "cancelled"):
                    reason, error = finished.finish_reason, finished.error
                    break
                cut |= finished.finish_reason == "length"
                if self._cancelled:
                    break
            if reason != "error" and self._cancelled:
                reason = "cancelled"
            elif reason == "eos" and cut:
                reason = "length"
            self._done = True
            yield self._finished(reason, error)
        finally:
            self._done = True
            if self._handle is not None:  # the consumer left mid-unit: free its slot
                self._handle.cancel()
                self._handle = None

    # ---- internals ---------------------------------------------------------------------------------------

    async def _next_unit(self) -> str | None:
        """The next unit added; None when the chain is closed and all were spoken, or it was cancelled."""
        while not self._units and not self._closed and not self._cancelled:
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._cancelled or not self._units:
            return None
        return self._units.popleft()

    def _remaining_seconds(self) -> float | None:
        """What is left of the client's `max_seconds` for the whole request (None: it set none)."""
        if self._template.max_seconds is None:
            return None
        return self._template.max_seconds - self._audio_seconds

    def _budget_spent(self) -> bool:
        remaining = self._remaining_seconds()
        return remaining is not None and remaining < FRAME_MS / 1000.0  # not even one frame left

    def _submit(self, text: str) -> RequestHandle:
        context = self._spoken[-self._max_context_units :] if self._max_context_units > 0 else []
        unit = dataclasses.replace(
            self._template,
            text=text,
            context=(*self._template.context, *context),
            max_seconds=self._remaining_seconds(),
            request_id=f"{self.request_id}.{self._num_units}",
            continues=self._num_units > 0,
        )
        now_s = time.monotonic()
        handle = self._engine.submit(unit)  # raises a refusal before any event
        self._num_units += 1
        self._unit_submit_s = now_s
        if self._first_submit_s is None:
            self._first_submit_s = now_s
        self._pending_text = text
        if self._cancelled:  # a cancel that came while this unit was being submitted
            handle.cancel()
        return handle

    def _renumbered(self, chunk: AudioChunk) -> AudioChunk:
        """The unit's chunk under the chain's numbering: seq and start_frame continue across units."""
        out = AudioChunk(seq=self._num_chunks, pcm=chunk.pcm, start_frame=self._num_samples // FRAME_SAMPLES)
        self._num_chunks += 1
        self._num_samples += int(chunk.pcm.shape[0])
        return out

    def _account(self, finished: Finished) -> None:
        """Add a finished unit to the totals, and keep it (text + codes) as context for the next one."""
        if self._ttfa_ms is None and finished.ttfa_ms is not None and finished.audio_seconds > 0:
            assert self._first_submit_s is not None, "a unit finished before any was submitted"
            self._ttfa_ms = (self._unit_submit_s - self._first_submit_s) * 1000.0 + finished.ttfa_ms
        self._audio_seconds += finished.audio_seconds
        if finished.audio_seconds > 0:
            if finished.rtf is None:
                self._rtf_known = False
            else:
                self._generation_s += finished.rtf * finished.audio_seconds
        has_codes = finished.codes is not None and len(finished.codes) > 0
        if self._codes is not None:
            if has_codes:
                self._codes.append(finished.codes)
            elif finished.audio_seconds > 0:
                self._codes = None  # audio without codes (piper): no codes for the whole request
        if has_codes and finished.finish_reason in ("eos", "length"):
            self._remember(finished.codes)

    def _remember(self, codes: np.ndarray) -> None:
        import torch  # only CSM units carry codes; keep this module importable without torch

        from csmstream.model.tokenizer import Segment

        try:
            speaker = self._speaker_of(self._template)
        except CsmstreamError:  # e.g. the voice was deleted meanwhile: the next units go without this one
            return
        tensor = torch.from_numpy(np.ascontiguousarray(codes).astype(np.int64))  # (T, K)
        self._spoken.append(Segment(speaker=speaker, text=self._pending_text, codes=tensor))

    def _finished(self, reason: FinishReason, error: CsmstreamError | None) -> Finished:
        audio_seconds = self._audio_seconds
        rtf = self._generation_s / audio_seconds if audio_seconds > 0 and self._rtf_known else None
        codes = np.concatenate(self._codes) if self._codes else None
        return Finished(reason, audio_seconds, self._ttfa_ms, rtf, error=error, codes=codes)
