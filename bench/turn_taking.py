"""Turn-taking: does the server end the user's turn when they finish, and not when they pause to think?

    python bench/turn_taking.py [--modes server_vad semantic_vad] [--eagerness auto] [--silence-ms 500]
                                [--no-turn-model]

Held-out utterances spoken by piper (none of them is used by the tests): complete questions, and sentences
with a 600 ms pause inserted mid-sentence ("What is the capital of … Germany, do you know?"). Each goes
through a real `Conversation` (Silero VAD, Whisper tiny.en, the incremental transcription and the turn-end
decider, with the end-of-turn model as the server loads it unless --no-turn-model: rules alone) at 1× pace,
with room for an answer switched off. Per mode it prints:

  cut early    paused utterances that became two turns (the assistant would have answered half a question)
  too slow     complete utterances whose end was detected more than `--slow-ms` after the speech ended
  end wait     median / p95 of speech end → turn end for the complete utterances, ms

Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.pipeline import events as ev
from csmstream.pipeline.conversation import Conversation
from csmstream.pipeline.end_of_turn_model import load_end_of_turn_model
from csmstream.pipeline.session import SessionConfig, TurnDetection
from csmstream.pipeline.stt import load_stt
from csmstream.pipeline.vad_model import SileroVadModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spoken_questions import spoken  # noqa: E402

CHUNK_S = 0.02
PAUSE_S = 0.6
COMPLETE = (
    "Where is the nearest train station?",
    "Can you set a timer for ten minutes?",
    "What time is it in Tokyo right now?",
    "Do you like jazz music?",
    "How do I make a cup of tea?",
    "Who wrote the book Pride and Prejudice?",
    "Is it cold outside today?",
    "Tell me something interesting.",
)
PAUSED = (
    ("What is the capital of", "Germany, do you know?"),
    ("I would like to order", "a large pizza with mushrooms."),
    ("Can you remind me to call", "my sister tomorrow?"),
    ("So um", "what should I wear today?"),
    ("I was thinking about going to", "the beach this weekend."),
    ("Tell me about the history of", "the Roman empire."),
    ("My favourite colour is blue and", "I like green too."),
    ("How far is it from London to", "Paris by train?"),
)


class _NoLLM:
    name = "none"

    async def stream_chat(self, messages, *, cancel=None):  # noqa: ANN001
        return
        yield


class _NoEngine:
    name = "none"


def _voiced_end(audio: np.ndarray) -> int:
    return int(np.flatnonzero(np.abs(audio) > 0.02)[-1]) + 1


async def run_one(conversation: Conversation, events: asyncio.Queue, audio: np.ndarray) -> tuple[int, float]:
    """Feed one utterance (plus 1.6 s of silence) at 1×. Returns (turns, ms from the speech end to the last
    turn's end)."""
    speech_end_s = None
    voiced_end = _voiced_end(audio)
    stream = np.concatenate([audio, np.zeros(int(1.6 * SAMPLE_RATE), dtype=np.float32)])
    chunk = int(CHUNK_S * SAMPLE_RATE)
    start = time.perf_counter()
    stops: list[float] = []
    for k, i in enumerate(range(0, len(stream), chunk)):
        delay = start + k * CHUNK_S - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conversation.append_audio(stream[i : i + chunk])
        if speech_end_s is None and i + chunk >= voiced_end:
            speech_end_s = time.perf_counter()
        while not events.empty():
            event = events.get_nowait()
            if isinstance(event, ev.SpeechStopped):
                stops.append(time.perf_counter())
    assert speech_end_s is not None
    return len(stops), ((stops[-1] - speech_end_s) * 1000 if stops else float("nan"))


async def run_mode(args: argparse.Namespace, mode: str, stt, vad_model, turn_model, clips) -> None:  # noqa: ANN001
    detection = TurnDetection(
        type=mode,
        eagerness=args.eagerness,
        silence_duration_ms=args.silence_ms,
        create_response=False,
        interrupt_response=False,
    )
    conversation = Conversation(
        _NoEngine(),
        _NoLLM(),
        stt,
        config=SessionConfig(turn_detection=detection),
        vad_model=vad_model,
        end_of_turn_model=turn_model,
    )
    events: asyncio.Queue = asyncio.Queue()

    async def pump() -> None:
        async for event in conversation.events():
            events.put_nowait(event)

    pump_task = asyncio.create_task(pump())
    cut_early, too_slow, waits = 0, 0, []
    for kind, text, audio in clips:
        turns, wait_ms = await run_one(conversation, events, audio)
        if kind == "paused" and turns > 1:
            cut_early += 1
        if kind == "complete":
            waits.append(wait_ms)
            too_slow += wait_ms > args.slow_ms
        print(f"  {mode:12s} {kind:8s} turns={turns} end wait {wait_ms:6.0f} ms  {text}")
    await conversation.aclose()
    pump_task.cancel()
    num_paused = sum(kind == "paused" for kind, _, _ in clips)
    label = mode
    if mode == "semantic_vad":
        label += f" ({args.eagerness}, {'model + rules' if turn_model is not None else 'rules'})"
    summary = (
        f"{label:40s} cut early {cut_early}/{num_paused}   too slow {too_slow}/{len(waits)}   "
        f"end wait median {statistics.median(waits):5.0f} p95 {np.percentile(waits, 95):5.0f} ms"
    )
    args.summaries.append(summary)


async def main_async(args: argparse.Namespace) -> None:
    stt = load_stt()
    vad_model = SileroVadModel()
    turn_model = None if args.no_turn_model else load_end_of_turn_model()
    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), dtype=np.float32)
    clips = [("complete", text, spoken(text)) for text in COMPLETE]
    for head, tail in PAUSED:
        head_audio = spoken(head)
        head_audio = head_audio[: _voiced_end(head_audio)]  # the pause starts where the voice stops
        clips.append(("paused", f"{head} … {tail}", np.concatenate([head_audio, pause, spoken(tail)])))
    args.summaries = []
    for mode in args.modes:
        await run_mode(args, mode, stt, vad_model, turn_model, clips)
    print(
        f"\nturn taking, {len(COMPLETE)} complete + {len(PAUSED)} paused utterances, too slow = > {args.slow_ms} ms"
    )
    for summary in args.summaries:
        print(summary)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modes", nargs="+", default=["server_vad", "semantic_vad"])
    parser.add_argument("--eagerness", choices=["low", "medium", "high", "auto"], default="auto")
    parser.add_argument("--silence-ms", type=int, default=500, help="server_vad's silence")
    parser.add_argument("--slow-ms", type=float, default=800.0)
    parser.add_argument(
        "--no-turn-model", action="store_true", help="semantic_vad by rules alone (no end-of-turn model)"
    )
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
