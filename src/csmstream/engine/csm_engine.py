"""The CSM engine: one thread owns the model and serves every session in shared batched steps.

The asyncio side calls `submit` (never blocks: validation, then a place in the scheduler's queue) and reads
each request's events from its `Collector`. The engine thread loops:

  1. finish cancelled sessions (their slots are free before this iteration's admission);
  2. admit queued sessions into free slots: build the prompt, copy a cached voice prefix, tell the client;
  3. run this step's prefill chunks (a bounded number of rows), then one batched step for every decoding
     session;
  4. hand finished chunks of audio to the collectors, finish sessions at EOS / length limit.

An exception inside one session's work ends that session with an `internal` error; the others go on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from csmstream.engine.base import EngineStats, RequestHandle, SpeechEngine
from csmstream.engine.collector import Collector
from csmstream.engine.events import AudioChunk, Finished, FinishReason, Queued, Started
from csmstream.engine.prefix_cache import PrefixCache
from csmstream.engine.prompts import PromptAssembler
from csmstream.engine.request import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, SynthesisRequest, chunk_frames_at
from csmstream.engine.runner import ModelRunner, StepOutput
from csmstream.engine.scheduler import PrefillChunk, Scheduler, SchedulerConfig
from csmstream.engine.session import Session
from csmstream.errors import BadRequest, CsmstreamError, TextTooLong
from csmstream.model.sampling import SamplingParams

log = logging.getLogger("csmstream.engine")


class CsmEngine(SpeechEngine):
    name = "csm"
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        checkpoint,  # csmstream.model.checkpoint.Checkpoint, or a function that loads one
        voices,  # csmstream.voices.library.VoiceLibrary | None
        *,
        max_slots: int = 8,
        max_queue: int = 32,
        max_rows: int = 2048,
        prefill_chunk_rows: int = 256,
        max_text_chars: int = 2000,
        default_max_seconds: float = 30.0,
        realtime_admission: bool = True,
        compile: bool = False,
        model_name: str | None = None,
    ):
        # One thread does all of this engine's torch work, loading included. CPU kernels run on OpenMP
        # thread teams, one per calling thread; a second busy team (say the main thread's, left over from
        # loading) made every step 2.5x slower on 2 cores. So the checkpoint is loaded on the engine thread.
        self._torch_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csmstream-engine")
        num_threads = torch.get_num_threads()

        def build() -> None:
            torch.set_num_threads(num_threads)
            ckpt = checkpoint() if callable(checkpoint) else checkpoint
            rows = min(max_rows, ckpt.config.backbone.max_positions)
            self.checkpoint = ckpt
            self.runner = ModelRunner(ckpt.model, ckpt.codec, max_slots, rows, compile=compile)
            self.prompts = PromptAssembler(ckpt.tokenizer, self.runner.encode_audio, max_rows=rows)

        self._torch_thread.submit(build).result()  # re-raises a loading error here, in the caller
        self.voices = voices
        self.model_name = model_name or str(getattr(self.checkpoint, "path", "csm"))
        self.max_text_chars = max_text_chars
        self.default_max_seconds = default_max_seconds
        self.scheduler = Scheduler(
            SchedulerConfig(
                max_slots=max_slots,
                max_queue=max_queue,
                prefill_chunk_rows=prefill_chunk_rows,
                realtime_admission=realtime_admission,
            )
        )
        self.prefix_cache = PrefixCache()
        self._lock = threading.Lock()  # guards the scheduler between the loop thread and the engine thread
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._running: Future | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- asyncio side --------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._running = self._torch_thread.submit(self._run)

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._running is not None:
            await asyncio.to_thread(self._running.result, 10.0)
            self._running = None

    def submit(self, request: SynthesisRequest) -> RequestHandle:
        assert self._loop is not None, "start() the engine before submitting"
        session = Session(request=self._validated(request), submitted_at_s=time.monotonic())
        if request.voice_id:
            session.extra["voice"] = self.voices.get(request.voice_id)  # raises UnknownVoice
        collector = Collector(request.request_id, self._loop, on_cancel=lambda: self._request_cancel(session))
        session.extra["collector"] = collector
        with self._lock:
            self.scheduler.add(session)  # raises Busy
        self._wake.set()
        return collector

    def stats(self) -> EngineStats:
        with self._lock:
            return EngineStats(
                active_sessions=self.scheduler.num_active,
                queued=self.scheduler.num_waiting,
                max_slots=self.scheduler.config.max_slots,
                max_queue=self.scheduler.config.max_queue,
                step_ms_avg=self.scheduler.mean_step_ms(),
            )

    def _validated(self, request: SynthesisRequest) -> SynthesisRequest:
        text = request.text.strip() if isinstance(request.text, str) else ""
        if not text:
            raise BadRequest("text is empty: give some words to speak")
        if len(text) > self.max_text_chars:
            raise TextTooLong(f"text has {len(text)} characters; the limit is {self.max_text_chars}")
        if request.max_seconds is not None and not (0 < request.max_seconds <= 600):
            raise BadRequest("max_seconds must be in (0, 600]")
        if request.speaker is not None and not (0 <= request.speaker < 1000):
            raise BadRequest("speaker must be an integer in [0, 1000)")
        return request

    def _request_cancel(self, session: Session) -> None:
        session.cancel_requested = True  # read by the engine thread on its next iteration
        self._wake.set()

    # ---- engine thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while not self._stopping.is_set():
            try:
                did_work = self._iterate()
            except Exception:  # a bug outside any one session: log it, keep serving
                log.exception("engine iteration failed")
                did_work = False
            if not did_work:
                self._wake.wait(timeout=0.05)
                self._wake.clear()
        with self._lock:
            leftovers = self.scheduler.running + self.scheduler.waiting
        for session in leftovers:
            self._finish(session, "cancelled")

    def _iterate(self) -> bool:
        now = time.monotonic()
        # 1. cancelled sessions give their slots back first
        with self._lock:
            cancelled = self.scheduler.cancelled_sessions()
        for session in cancelled:
            self._finish(session, "cancelled")
        # 2. admission
        with self._lock:
            admitted = self.scheduler.admit(now)
            positions = self.scheduler.queue_positions()
        for session, position in positions:
            if session.queue_position != position:
                session.queue_position = position
                self._push(session, Queued(position))
        for session in admitted:
            self._guarded(session, self._start_session)
        # 3. one prefill chunk, one batched step
        with self._lock:
            plan = self.scheduler.plan(time.monotonic())
        for chunk in plan.prefills:
            self._guarded(chunk.session, lambda s, chunk=chunk: self._prefill(chunk))
        if plan.decode:
            self._step(plan.decode)
        return bool(admitted or cancelled or not plan.is_empty)

    def _guarded(self, session: Session, work) -> None:
        try:
            work(session)
        except CsmstreamError as exc:
            self._finish(session, "error", error=exc)
        except Exception as exc:
            log.exception("request %s failed", session.request_id)
            self._finish(
                session, "error", error=CsmstreamError(f"internal error: {type(exc).__name__}: {exc}")
            )

    def _start_session(self, session: Session) -> None:
        request = session.request
        sampling = (request.sampling or SamplingParams()).with_seed()
        voice = session.extra.get("voice")
        prompt = self.prompts.build(request, voice)  # tokens/mask (T, 33), prefix_rows
        session.extra["prompt"] = prompt
        session.prompt_rows = prompt.num_rows
        max_seconds = request.max_seconds or self.default_max_seconds
        session.max_frames = max(
            0, min(math.ceil(max_seconds * 1000.0 / FRAME_MS), self.runner.max_rows - prompt.num_rows)
        )
        session.extra.update(pcm=[], pending_frames=0, seq=0, codes=[], sampling=sampling)
        self.runner.start_slot(session.slot, sampling)
        # the voice prefix: copied from the cache, or prefilled now and saved once its rows are written
        if voice is not None and prompt.prefix_rows > 0:
            entry = self.prefix_cache.get(voice.voice_id, voice.revision)
            if entry is not None and entry.num_rows == prompt.prefix_rows:
                self.runner.load_prefix(session.slot, entry)
                session.prefilled_rows = entry.num_rows
        session.prefix_rows = prompt.prefix_rows
        self._push(session, Started())

    def _prefill(self, chunk: PrefillChunk) -> None:
        session = chunk.session
        prompt = session.extra["prompt"]
        rows = slice(chunk.start_row, chunk.end_row)
        self.runner.prefill(
            session.slot, prompt.tokens[rows], prompt.mask[rows], chunk.start_row, chunk.is_last
        )
        voice = session.extra.get("voice")
        if voice is not None and chunk.end_row == prompt.prefix_rows and chunk.start_row < prompt.prefix_rows:
            self.prefix_cache.put(
                voice.voice_id, voice.revision, self.runner.save_prefix(session.slot, chunk.end_row)
            )
        with self._lock:
            self.scheduler.on_prefilled(chunk)
        if chunk.is_last and session.max_frames == 0:
            self._finish(session, "length")

    def _step(self, sessions: list[Session]) -> None:
        t0 = time.perf_counter()
        try:
            out = self._run_step(sessions)
        except Exception:
            # A failed batched step cannot be pinned on one request: run each alone (the step rewrites the
            # same cache rows, so a retry is safe); only those that fail alone end, with an error.
            log.exception("batched step of %d sessions failed; retrying each alone", len(sessions))
            for session in sessions:
                self._guarded(session, lambda s: self._take_frame(s, self._run_step([s]), 0))
            return
        with self._lock:
            self.scheduler.on_step(len(sessions), (time.perf_counter() - t0) * 1000.0)
        for i, session in enumerate(sessions):
            self._guarded(session, lambda s, i=i: self._take_frame(s, out, i))

    def _run_step(self, sessions: list[Session]) -> StepOutput:
        slots = [s.slot for s in sessions]
        positions = [s.prompt_rows + s.num_frames for s in sessions]
        frame_indices = [s.num_frames for s in sessions]
        return self.runner.step(slots, positions, frame_indices)

    def _take_frame(self, session: Session, out: StepOutput, i: int) -> None:
        """Row i of a step's output belongs to `session`: keep it, emit a chunk when one is due, or finish."""
        if out.is_eos[i]:
            self._finish(session, "eos")
            return
        session.num_frames += 1
        session.extra["codes"].append(out.codes[i])
        session.extra["pcm"].append(out.pcm[i])
        session.extra["pending_frames"] += 1
        schedule = session.request.chunk_schedule_frames
        if session.extra["pending_frames"] >= chunk_frames_at(schedule, session.extra["seq"]):
            self._emit_chunk(session)
        if session.num_frames >= session.max_frames:
            self._finish(session, "length")

    # ---- output --------------------------------------------------------------------------------------
    def _emit_chunk(self, session: Session) -> None:
        pcm_parts = session.extra["pcm"]
        if not pcm_parts:
            return
        pcm = np.concatenate(pcm_parts).astype(np.float32, copy=False)
        start_frame = session.num_frames - session.extra["pending_frames"]
        chunk = AudioChunk(seq=session.extra["seq"], pcm=pcm, start_frame=start_frame)
        session.extra["pcm"] = []
        session.extra["pending_frames"] = 0
        session.extra["seq"] += 1
        if session.first_audio_at_s is None:
            session.first_audio_at_s = time.monotonic()
        if not self._push(session, chunk):
            self._finish(
                session, "error", error=CsmstreamError("client too slow: audio backed up; request ended")
            )

    def _finish(self, session: Session, reason: FinishReason, error: CsmstreamError | None = None) -> None:
        if session.extra.get("finished"):
            return
        session.extra["finished"] = True
        if reason in ("eos", "length"):
            self._emit_chunk(session)  # the tail that did not fill a whole chunk
        with self._lock:
            self.scheduler.finish(session)  # the slot is free from here on
        now = time.monotonic()
        audio_seconds = session.num_frames * FRAME_SAMPLES / SAMPLE_RATE
        ttfa_ms = (
            None
            if session.first_audio_at_s is None
            else (session.first_audio_at_s - session.submitted_at_s) * 1e3
        )
        started = session.started_at_s or session.submitted_at_s
        rtf = (now - started) / audio_seconds if audio_seconds > 0 else None
        codes = np.stack(session.extra["codes"]) if session.extra.get("codes") else None
        self._push(session, Finished(reason, audio_seconds, ttfa_ms, rtf, error=error, codes=codes))
        session.extra.pop("prompt", None)

    def _push(self, session: Session, event) -> bool:
        collector: Collector = session.extra["collector"]
        return collector.push(event)
