"""Voice conversation latency as a client sees it: a real `csmstream serve`, its `/v1/realtime`, the official
`openai` client.

    python bench/realtime_turns.py [--turns 8] [--instant-llm] [--eagerness auto] [--serve-args "..."]

`bench/conversation.py` times the conversation pipeline inside one process; this one times what a user runs:
`csmstream serve` with its defaults (piper voice, Whisper tiny.en, the end-of-turn model, the bundled LLM, or
with `--instant-llm` an OpenAI-compatible endpoint on loopback that writes a scripted answer at once, so only
the server's own stages count). One realtime connection in the GA shape (`client.realtime.connect()`,
`session.type: "realtime"`, `semantic_vad`, no barge-in so that each question waits for its answer); each
turn streams a question spoken by piper at 1× in 20 ms chunks, then silence, as a microphone would, until
`response.done`. Prints per turn and median / p95 over the turns, in ms after the end of the question's
speech: the server's stages from `response.done`'s `metadata` (`<stage>_ms`, counted from the silence the
VAD found), and `client: first audio`, from the last voiced sample sent to the first
`response.output_audio.delta` received. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shlex
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.append(str(BENCH_DIR.parent / "tests"))  # serve_process: a real server on loopback
from csmstream.pipeline.turn_timings import STAGES  # noqa: E402  (the stages `response.done` reports)
from serve_process import start_server  # noqa: E402
from spoken_questions import QUESTIONS, SAMPLE_RATE, pcm16, spoken  # noqa: E402

CHUNK_S = 0.02
INSTANT_ANSWER = "Sure. Here is a short answer, written all at once."


def start_instant_llm() -> str:
    """An OpenAI-compatible chat endpoint on loopback that streams a scripted answer at once. Returns its
    base URL."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat() -> StreamingResponse:
        def events():
            for word in INSTANT_ANSWER.split(" "):
                chunk = {"choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True, name="instant-llm").start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def one_turn(connection, audio: np.ndarray) -> dict[str, float]:  # noqa: ANN001
    """Stream one question (then silence) at 1× until `response.done`. Returns ms after the end of speech."""
    voiced = np.flatnonzero(np.abs(audio) > 0.02)
    voiced_end = int(voiced[-1]) + 1
    chunk = int(CHUNK_S * SAMPLE_RATE)
    stamps: dict[str, float] = {}
    done: asyncio.Future = asyncio.get_running_loop().create_future()

    async def read() -> None:
        async for event in connection:
            if event.type == "response.output_audio.delta" and "audio" not in stamps:
                stamps["audio"] = time.perf_counter()
            elif event.type == "response.done":
                done.set_result(event)
                return
            elif event.type == "error":
                done.set_exception(RuntimeError(f"server error: {event.error}"))
                return

    reader = asyncio.create_task(read())
    start = time.perf_counter()
    k = 0
    while not done.done():
        delay = start + k * CHUNK_S - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        i = k * chunk
        piece = audio[i : i + chunk] if i < len(audio) else np.zeros(chunk, dtype=np.float32)
        await connection.input_audio_buffer.append(audio=base64.b64encode(pcm16(piece)).decode())
        if "speech_end" not in stamps and i + chunk >= voiced_end:
            stamps["speech_end"] = time.perf_counter()
        k += 1
        if k * CHUNK_S > 60:
            raise TimeoutError("no response.done within 60 s")
    response_done = done.result()
    await reader
    metadata = response_done.response.metadata or {}
    figures = {stage: float(metadata[f"{stage}_ms"]) for stage in STAGES if f"{stage}_ms" in metadata}
    if "audio" in stamps:
        figures["client_first_audio"] = (stamps["audio"] - stamps["speech_end"]) * 1000
    return figures


async def run(base_url: str, args: argparse.Namespace) -> list[dict[str, float]]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        base_url=base_url + "/v1",
        api_key="unused",
        websocket_base_url=base_url.replace("http", "ws", 1) + "/v1",
    )
    lead = np.zeros(int(0.3 * SAMPLE_RATE), dtype=np.float32)
    questions = [np.concatenate([lead, spoken(QUESTIONS[n % len(QUESTIONS)])]) for n in range(args.turns)]
    results = []
    async with client.realtime.connect(model="csmstream") as connection:
        detection = {"type": "semantic_vad", "eagerness": args.eagerness, "interrupt_response": False}
        await connection.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": detection}}}
        )
        for n, audio in enumerate(questions):
            figures = await one_turn(connection, audio)
            results.append(figures)
            shown = "  ".join(f"{figures.get(s, float('nan')):6.0f}" for s in (*STAGES, "client_first_audio"))
            print(f"  turn {n + 1}: {shown}  {QUESTIONS[n % len(QUESTIONS)]}", flush=True)
            await asyncio.sleep(1.0)  # a breath between turns
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--instant-llm", action="store_true", help="a scripted answer, written at once")
    parser.add_argument("--eagerness", choices=["low", "medium", "high", "auto"], default="auto")
    parser.add_argument("--serve-args", default="", help="more `csmstream serve` flags")
    args = parser.parse_args()
    serve_args = shlex.split(args.serve_args)
    if args.instant_llm:
        serve_args += ["--llm-base-url", start_instant_llm(), "--llm-model", "scripted"]
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(serve_args, Path(tmp) / "voices")
        try:
            llm = "instant scripted LLM" if args.instant_llm else "the server's default LLM"
            print(
                f"csmstream serve {' '.join(serve_args)} at {server.url}; {llm}; semantic_vad ({args.eagerness})"
            )
            print("  columns: " + "  ".join((*STAGES, "client_first_audio")))
            results = asyncio.run(run(server.url, args))
        finally:
            server.stop()
    print(f"\nms after the end of speech, {len(results)} turns    median      p95")
    for stage in (*STAGES, "client_first_audio"):
        values = [r[stage] for r in results if stage in r]
        if values:
            label = "client: first audio" if stage == "client_first_audio" else stage
            print(f"{label:32s} {statistics.median(values):9.0f} {np.percentile(values, 95):8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
