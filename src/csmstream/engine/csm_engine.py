"""The CSM engine: one thread owns the model and serves every session in shared batched steps.

The asyncio side calls `submit` (never blocks: validation, then a place in the scheduler's queue) and reads
each request's events from its `Collector`. The engine thread loops:

  1. finish cancelled sessions (their slots are free before this iteration's admission);
  2. admit queued sessions into free slots: build the prompt, copy a cached voice prefix, tell the client;
  3. run this step's prefill chunks (a bounded number of rows), then one batched step for every decoding
     session;
  4. hand finished chunks of audio to the collectors, finish sessions at EOS / length limit.

Before it serves, the engine thread warms up: every compiled step shape is built and the step's cost is
measured at each batch bucket (the scheduler's first cost curve); `status` is `starting` until then.

Fine-tuned voices (a voice with a LoRA adapter) share the same steps: the model has an adapter bank
(model/lora.py), the pool (adapter_pool.py) says which adapter sits at which bank index, and each slot runs
with its voice's index. A server for one voice may instead merge that voice's adapter into the weights.

An exception inside one session's work ends that session with an `internal` error; the others go on. Work
that keeps failing whoever runs it (a device error that persists) turns the engine `unhealthy`: every
session ends with an error, new requests are refused, and `on_fatal` tells the server to exit non-zero.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from csmstream.engine.adapter_pool import AdapterKey, AdapterPool
from csmstream.engine.base import EngineStats, EngineStatus, RequestHandle, SpeechEngine
from csmstream.engine.collector import Collector
from csmstream.engine.events import AudioChunk, Finished, FinishReason, Queued, Started
from csmstream.engine.prefix_cache import PrefixCache
from csmstream.engine.prompts import PromptAssembler
from csmstream.engine.request import (
    FRAME_MS,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SynthesisRequest,
    check_max_seconds,
    chunk_is_due,
)
from csmstream.engine.runner import KV_BUCKET_COUNT, ModelRunner, StepOutput
from csmstream.engine.scheduler import PrefillChunk, Scheduler, SchedulerConfig
from csmstream.engine.session import Session
from csmstream.engine.speech_length import expected_seconds, runaway_seconds
from csmstream.errors import BadRequest, Busy, CsmstreamError, TextTooLong
from csmstream.model.adapter_files import AdapterError, check_layout, load_adapter, read_adapter_layout
from csmstream.model.lora import ADAPTABLE, AdapterBank, LoraWeights, merge_into_weights
from csmstream.model.sampling import SamplingParams

log = logging.getLogger("csmstream.engine")

# Device work that failed this many times in a row, whichever sessions it was for, means the device is broken.
MAX_CONSECUTIVE_FAILURES = 3
# Errors after which a CUDA context is unusable: no retry can succeed, so the engine gives up at once.
STICKY_DEVICE_ERRORS = (
    "illegal memory access",
    "device-side assert",
    "CUDA error: unspecified launch failure",
)


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
        default_max_seconds: float | None = None,
        realtime_admission: bool = True,
        compile: bool = False,
        kv_buckets: int = KV_BUCKET_COUNT,
        model_name: str | None = None,
        max_adapters: int = 4,
        max_lora_rank: int = 16,
        lora_targets: tuple[str, ...] = ADAPTABLE,
        merge_voice: str | None = None,
    ):
        """`kv_buckets`: attention spans per compiled step shape (runner.kv_buckets; fewer: a shorter warm-up).
        `max_adapters`: fine-tuned voices held on the device at once (0: none are served); `max_lora_rank`
        and `lora_targets` size the adapter bank. `merge_voice`: merge that voice's adapter into the weights
        (a server for one fine-tuned voice: no per-step adapter cost; no other fine-tuned voice is served)."""
        # One thread does all of this engine's torch work, loading included. CPU kernels run on OpenMP
        # thread teams, one per calling thread; a second busy team (say the main thread's, left over from
        # loading) made every step 2.5x slower on 2 cores. So the checkpoint is loaded on the engine thread.
        self._torch_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csmstream-engine")
        num_threads = torch.get_num_threads()
        self.voices = voices
        self.merged_voice: AdapterKey | None = None
        self.adapter_bank: AdapterBank | None = None
        self.adapter_pool: AdapterPool | None = None

        def build() -> None:
            torch.set_num_threads(num_threads)
            ckpt = checkpoint() if callable(checkpoint) else checkpoint
            rows = min(max_rows, ckpt.config.backbone.max_positions)
            self.checkpoint = ckpt
            if merge_voice is not None:
                self._merge_voice(ckpt.model, merge_voice)
            elif max_adapters > 0:
                self.adapter_bank = AdapterBank(ckpt.model, max_adapters, max_lora_rank, lora_targets)
                self.adapter_pool = AdapterPool(
                    max_adapters, self.adapter_bank.write, self.adapter_bank.clear
                )
            self.runner = ModelRunner(
                ckpt.model,
                ckpt.codec,
                max_slots,
                rows,
                compile=compile,
                adapters=self.adapter_bank is not None,
                kv_bucket_count=kv_buckets,
            )
            self.prompts = PromptAssembler(ckpt.tokenizer, self.runner.encode_audio, max_rows=rows)

        self._torch_thread.submit(build).result()  # re-raises a loading error here, in the caller
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
        self._status: EngineStatus = "starting"
        self._consecutive_failures = 0  # device work (a step, a prefill) that failed since the last success
        self._abort_error: Busy | None = None  # `abort_all`: the engine thread ends every session with it
        self._forgotten_voices: collections.deque[str] = collections.deque()  # `forget_voice`, for the pool

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

    @property
    def status(self) -> EngineStatus:
        return self._status

    def submit(self, request: SynthesisRequest) -> RequestHandle:
        assert self._loop is not None, "start() the engine before submitting"
        # draining: the later units of a text already running still run (the stream is allowed to finish)
        if self._status == "unhealthy" or (self._status == "draining" and not request.continues):
            raise Busy(
                f"the speech engine is {self._status}; retry later (another replica, or after a restart)"
            )
        session = Session(request=self._validated(request), submitted_at_s=time.monotonic())
        if request.voice_id:
            session.extra["voice"] = self.voices.get(request.voice_id)  # raises UnknownVoice
            self._check_adapter_served(session.extra["voice"])
        collector = Collector(request.request_id, self._loop, on_cancel=lambda: self._request_cancel(session))
        session.extra["collector"] = collector
        with self._lock:
            self.scheduler.add(session)  # raises Busy
        self._wake.set()
        return collector

    def drain(self) -> None:
        if self._status in ("starting", "ok"):  # unhealthy stays unhealthy
            self._status = "draining"

    def forget_voice(self, voice_id: str) -> None:
        self._forgotten_voices.append(voice_id)  # the engine thread, which owns the pool, frees them
        self._wake.set()

    def abort_all(self, message: str) -> None:
        self._abort_error = Busy(message)  # read by the engine thread, which alone ends sessions
        self._wake.set()

    def stats(self) -> EngineStats:
        now = time.monotonic()
        compile_stats = self.runner.compile_stats()  # the runner's own counters: no lock needed
        with self._lock:
            scheduler = self.scheduler
            cost = scheduler.step_cost()
            return EngineStats(
                active_sessions=scheduler.num_active,
                queued=scheduler.num_waiting,
                max_slots=scheduler.config.max_slots,
                max_queue=scheduler.config.max_queue,
                step_ms_avg=scheduler.mean_step_ms(),
                capacity_streams=scheduler.realtime_capacity(),
                streams_behind=scheduler.streams_behind(now),
                predicted_step_ms=scheduler.step_ms_estimate(max(1, scheduler.num_active)),
                step_fixed_ms=None if cost is None else cost.fixed_ms,
                step_per_stream_ms=None if cost is None else cost.per_stream_ms,
                side_work_ms_avg=scheduler.side_work_ms(),
                compile=compile_stats,
                adapters=self._adapter_stats(),
            )

    def _adapter_stats(self) -> dict:
        pool, bank = self.adapter_pool, self.adapter_bank
        return {
            "capacity": 0 if pool is None else pool.capacity,
            "loaded": 0 if pool is None else pool.loaded,
            "in_use": 0 if pool is None else pool.in_use,
            "loads": 0 if pool is None else pool.loads,
            "max_rank": None if bank is None else bank.max_rank,
            "bytes_per_adapter": None if bank is None else bank.nbytes_per_adapter,
            "merged_voice": None if self.merged_voice is None else self.merged_voice[0],
        }

    # ---- fine-tuned voices ---------------------------------------------------------------------------
    def _merge_voice(self, model, voice_id: str) -> None:
        if self.voices is None:
            raise CsmstreamError("--merge-voice needs a voice library")
        voice = self.voices.get(voice_id)
        if voice.adapter_dir is None:
            raise BadRequest(f"voice {voice_id!r} has no fine-tuned adapter to merge")
        merge_into_weights(load_adapter(voice.adapter_dir, model), model)
        self.merged_voice = (voice.voice_id, voice.revision)
        log.info("merged the adapter of voice %r into the weights", voice_id)

    def _check_adapter_served(self, voice) -> None:
        """BadRequest, before any queueing, for a fine-tuned voice this server cannot speak: none served, or an
        adapter that does not fit the model or the bank (read from its header: no tensor data)."""
        if voice is None or voice.adapter_dir is None:
            return
        if self.adapter_pool is not None:
            layout = read_adapter_layout(voice.adapter_dir)
            check_layout(layout, self.checkpoint.model, f"voice {voice.voice_id!r}")
            try:
                self.adapter_bank.check(layout.rank, layout.shapes)
            except ValueError as exc:
                raise AdapterError(
                    f"voice {voice.voice_id!r}: {exc}; raise --max-lora-rank to serve it"
                ) from None
            return
        if self.merged_voice is not None:
            if self.merged_voice == (voice.voice_id, voice.revision):
                return
            raise BadRequest(
                f"this server merged voice {self.merged_voice[0]!r} into its weights and serves no other "
                f"fine-tuned voice ({voice.voice_id!r} is one)"
            )
        raise BadRequest(
            f"voice {voice.voice_id!r} is fine-tuned, and this server holds no adapters (--max-adapters 0)"
        )

    def _acquire_adapter(self, session: Session, voice) -> int:
        """The bank index the session speaks through (0: the base weights), loading the adapter if needed."""
        if voice is None or voice.adapter_dir is None or self.adapter_pool is None:
            return 0  # a merged voice speaks through the (merged) base weights
        key = (voice.voice_id, voice.revision)
        index = self.adapter_pool.acquire(key, lambda: self._load_adapter(voice))
        session.extra["adapter_key"] = key
        return index

    def _load_adapter(self, voice) -> LoraWeights:
        adapter = load_adapter(
            voice.adapter_dir, self.checkpoint.model
        )  # checked at submit; files may change
        try:
            self.adapter_bank.check(adapter.rank, adapter.weights)
        except ValueError as exc:
            raise AdapterError(
                f"voice {voice.voice_id!r}: {exc}; raise --max-lora-rank to serve it"
            ) from None
        log.info("loaded the adapter of voice %r (rank %d)", voice.voice_id, adapter.rank)
        return adapter

    def _validated(self, request: SynthesisRequest) -> SynthesisRequest:
        text = request.text.strip() if isinstance(request.text, str) else ""
        if not text:
            raise BadRequest("text is empty: give some words to speak")
        if len(text) > self.max_text_chars:
            raise TextTooLong(f"text has {len(text)} characters; the limit is {self.max_text_chars}")
        check_max_seconds(request.max_seconds)
        if request.speaker is not None and not (0 <= request.speaker < 1000):
            raise BadRequest("speaker must be an integer in [0, 1000)")
        # the text must leave room to be spoken in one window (at a normal rate); longer texts are split into
        # units by the caller (server/unit_chains.py), never cut short here
        text_rows = len(self.prompts.tokenizer.segment_ids(request.speaker or 0, text))
        needed_frames = math.ceil(expected_seconds(text) * 1000.0 / FRAME_MS)
        if text_rows + needed_frames > self.runner.max_rows:
            raise TextTooLong(
                f"the text takes {text_rows} rows and about {needed_frames} frames of speech, more than the "
                f"{self.runner.max_rows} rows of one utterance; split it into shorter parts"
            )
        return request

    def _frame_limit(self, request: SynthesisRequest) -> int:
        """The most frames this request may make: its runaway bound (engine/speech_length.py), or less when
        `max_seconds` (the client's, else the operator's `default_max_seconds`) says so."""
        seconds = runaway_seconds(request.text)
        cap = request.max_seconds if request.max_seconds is not None else self.default_max_seconds
        if cap is not None:
            seconds = min(seconds, cap)
        return max(1, math.ceil(seconds * 1000.0 / FRAME_MS))

    def _request_cancel(self, session: Session) -> None:
        session.cancel_requested = True  # read by the engine thread on its next iteration
        self._wake.set()

    # ---- engine thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        torch.set_grad_enabled(False)
        try:
            self._warm_up()
        except Exception as exc:
            log.exception("warm-up failed")
            self._become_unhealthy(f"warm-up failed: {type(exc).__name__}: {exc}")
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

    def _warm_up(self) -> None:
        """Build every step shape and seed the scheduler's cost curve, before any session runs."""
        t0 = time.perf_counter()
        measured = self.runner.warm_up(progress=lambda line: log.info("warm-up: %s", line))
        with self._lock:
            for batch_size, step_ms in measured:
                self.scheduler.on_step(batch_size, step_ms)
        if self._status == "starting":
            self._status = "ok"
        log.info(
            "engine ready after %.1f s of warm-up: %s",
            time.perf_counter() - t0,
            ", ".join(f"{ms:.1f} ms/step at batch {b}" for b, ms in measured),
        )

    def _iterate(self) -> bool:
        now = time.monotonic()
        # 0. a drain that ran out of time: everything left ends with its error (see `abort_all`)
        if self._abort_error is not None:
            with self._lock:
                leftovers = self.scheduler.running + self.scheduler.waiting
            for session in leftovers:
                self._finish(session, "error", error=self._abort_error)
        # 0b. deleted voices: their adapters leave the device (those still speaking stay until they finish)
        while self._forgotten_voices:
            voice_id = self._forgotten_voices.popleft()
            if self.adapter_pool is not None and self.adapter_pool.forget(voice_id):
                log.info("unloaded the adapter of deleted voice %r", voice_id)
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
        side_t0 = time.perf_counter()
        for session in admitted:
            self._guarded(session, self._start_session)
        if admitted:
            self._report_side_work(side_t0)
        # 3. one prefill chunk, one batched step
        with self._lock:
            plan = self.scheduler.plan(time.monotonic())
        side_t0 = time.perf_counter()
        for chunk in plan.prefills:
            self._guarded(chunk.session, lambda s, chunk=chunk: self._prefill(chunk))
        if plan.prefills:
            self._report_side_work(side_t0)
        if plan.decode:
            self._step(plan.decode)
        return bool(admitted or cancelled or not plan.is_empty)

    def _report_side_work(self, since: float) -> None:
        """Building prompts (encoding reference and context audio) and prefilling delay every decoding
        stream's next frame as much as the step does: the scheduler counts them against the frame budget."""
        side_ms = (time.perf_counter() - since) * 1000.0
        with self._lock:
            self.scheduler.on_side_work(side_ms)

    def _guarded(self, session: Session, work) -> bool:
        """Run one session's work; a failure ends that session only. True when it succeeded."""
        if session.extra.get("finished"):
            return False  # ended earlier in this iteration (e.g. when the engine turned unhealthy)
        try:
            work(session)
        except CsmstreamError as exc:
            self._finish(session, "error", error=exc)
        except Exception as exc:
            log.exception("request %s failed", session.request_id)
            self._finish(
                session, "error", error=CsmstreamError(f"internal error: {type(exc).__name__}: {exc}")
            )
            self._note_failure(exc)
            return False
        return True

    def _start_session(self, session: Session) -> None:
        request = session.request
        sampling = (request.sampling or SamplingParams()).with_seed()
        voice = session.extra.get("voice")
        # the prompt leaves the frames this request may make free: context and references give way for them
        frame_limit = self._frame_limit(request)
        prompt = self.prompts.build(
            request, voice, reserve_rows=frame_limit
        )  # tokens/mask (T, 33), prefix_rows
        session.extra["prompt"] = prompt
        session.prompt_rows = prompt.num_rows
        session.max_frames = max(0, min(frame_limit, self.runner.max_rows - prompt.num_rows))
        session.extra.update(pcm=[], pending_frames=0, seq=0, codes=[], sampling=sampling)
        adapter_index = self._acquire_adapter(session, voice)  # released in _finish
        self.runner.start_slot(session.slot, sampling, adapter_index)
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
        except Exception as exc:
            # A failed batched step cannot be pinned on one request: run each alone (the runner restored
            # every row's state, so a retry makes the same frame); only those that fail alone end, with an
            # error. A device that fails whoever runs on it is caught by `_note_failure`.
            log.exception("batched step of %d sessions failed; retrying each alone", len(sessions))
            self._note_failure(exc)
            for session in sessions:
                if self._status == "unhealthy":
                    return
                if self._guarded(session, lambda s: self._take_frame(s, self._run_step([s]), 0)):
                    self._consecutive_failures = 0
            return
        self._consecutive_failures = 0
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
        pending = session.extra["pending_frames"]
        listener_buffer_ms = ms_per_frame = None
        if session.first_audio_at_s is not None and session.request.adaptive_chunks:
            now = time.monotonic()
            listener_buffer_ms = session.lead_ms(now) - pending * FRAME_MS  # sent and not yet played
            ms_per_frame = (
                (now - (session.started_at_s or session.submitted_at_s)) * 1000.0 / session.num_frames
            )
        schedule = session.request.chunk_schedule_frames
        if chunk_is_due(pending, session.extra["seq"], schedule, listener_buffer_ms, ms_per_frame):
            self._emit_chunk(session)
        if session.num_frames >= session.max_frames:
            self._finish(session, "length")

    # ---- health --------------------------------------------------------------------------------------
    def _note_failure(self, exc: Exception) -> None:
        """Device work failed. Persistent failure (or an error that leaves the device unusable) is fatal."""
        self._consecutive_failures += 1
        sticky = any(marker in str(exc) for marker in STICKY_DEVICE_ERRORS)
        if sticky or self._consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            self._become_unhealthy(
                f"device work failed {self._consecutive_failures} times in a row "
                f"(last: {type(exc).__name__}: {exc})"
            )

    def _become_unhealthy(self, reason: str) -> None:
        """Refuse new work, end every session with an error, stop the loop and tell the server. Once."""
        if self._status == "unhealthy":
            return
        self._status = "unhealthy"
        log.critical("speech engine unhealthy: %s", reason)
        with self._lock:
            sessions = self.scheduler.running + self.scheduler.waiting
        error = CsmstreamError("the speech engine failed (device error); this request was ended, retry later")
        for session in sessions:
            self._finish(session, "error", error=error)
        self._stopping.set()
        if self.on_fatal is not None:
            self.on_fatal(reason)

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
        adapter_key = session.extra.pop("adapter_key", None)
        if adapter_key is not None:
            self.adapter_pool.release(adapter_key)
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
