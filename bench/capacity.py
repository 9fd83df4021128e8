"""Capacity of the server as shipped: how many listeners one `csmstream serve` keeps in real time, and what a
listener-hour costs from that.

    python bench/capacity.py [--size csm-1b | --model DIR] [--device auto] [--rates 0.5 1 2 4 8 16]
                             [--duration-s 20] [--seed 0] [--jitter-ms 200] [--ttfa-p95-ms 1000]
                             [--gpu-price-per-hour 0.805] [--users 50] [--budget-s S] [--warmup auto]
                             [--keep-env]
    python bench/capacity.py --size tiny                  # on a CPU: about 3 minutes
    python bench/capacity.py --size csm-1b --device cuda  # the real CSM-1B shape (random weights) on a GPU

It starts a real `csmstream serve --model DIR --engine csm --port 0` with every other setting at its default
(8 slots, a queue of 32, real-time admission, torch.compile on CUDA; `CSMSTREAM_*` variables are dropped
unless --keep-env), on a random-weight checkpoint of `--size` (bench/model_sizes.py; nothing is downloaded)
unless `--model` is given. Then, for each offered load L of `--rates` (concurrent streams on average),
utterances arrive as a Poisson process for `--duration-s` seconds at L / 7.5 arrivals per second (the first at
once): each draws an audio length uniform in 3..12 s (mean 7.5 s) and asks for exactly that (`max_seconds`:
random weights never end an utterance themselves) of a one-sentence text about that long at a normal rate (so
the server speaks it as one unit), over its own `/v1/tts/stream` WebSocket connection. Each client plays what
it receives in real time through a jitter buffer: playback starts once `--jitter-ms` of audio is buffered (or
the utterance is complete), then consumes audio in real time; when the buffer runs dry before the utterance is
complete, the listener hears an underrun, and playback waits for `--jitter-ms` again. The level ends when all
its streams have, then the next (higher) load runs, until the server saturates (a refusal, or fewer than half
of the streams on time) or `--budget-s` would be exceeded.

Columns, per offered load:
  load        offered load: arrival rate × mean audio length = concurrent streams on average
  arr/s       the arrival rate, utterances per second (load / 7.5 s)
  streams     utterances that arrived in the level (Poisson, so fewer at low loads)
  busy        refused with `error` `busy` (the queue was full); `err`: any other failure (error, timeout)
  no-underrun streams that completed and were heard without a single underrun
  on-time     of those, the streams whose TTFA was within --ttfa-p95-ms too
  TTFA p50/95 time to first audio: `synthesize` sent → first `audio_chunk` received (queue wait included)
  underruns   underruns heard, all streams together, and their total length (ms of silence mid-utterance)
  queued      streams that got `audio_status` `queued`; wait p50/max: queued → `started`, among those started
  active      sessions holding a slot (polled from /health every 250 ms): most and time-average
  RSS         the server process's largest resident memory (VmRSS in /proc/<pid>/status) during the level
  GPU         on CUDA, the largest device memory nvidia-smi shows for the server (or for the GPU, when the
              server's pid is not visible), polled every 2 s; `-` without CUDA or nvidia-smi

Then the largest load held in real time (≥ 95 % of streams without an underrun, no refusal, p95 TTFA within
--ttfa-p95-ms, every lower load held too) and, from it, the cost table beside the seed's (one model copy of
≈5 GB per user: 4 users per GPU, 13 GPUs for 50 users). The figures are only as good as the machine is quiet:
the clients run on the same machine as the server. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.append(str(BENCH_DIR.parent / "tests"))  # serve_process, which server_process builds on
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "server"))

from server_process import start_server  # noqa: E402

from csmstream.clients.loadtest.listener import Playback, play_back  # noqa: E402
from csmstream.clients.loadtest.stream import (  # noqa: E402
    StreamPlan,
    StreamRecord,
    run_stream_on_new_connection,
)
from model_sizes import describe_device, write_bench_checkpoint_elsewhere  # noqa: E402
from serving_configs import SHIPPED, drop_csmstream_env, serve_args  # noqa: E402

MIN_AUDIO_S, MAX_AUDIO_S = 3.0, 12.0
MEAN_AUDIO_S = (MIN_AUDIO_S + MAX_AUDIO_S) / 2
WORDS_PER_S = 2.5  # the text is about as long as the audio asked for
HEALTH_POLL_S = 0.25
GPU_POLL_S = 2.0
HELD_FRACTION = 0.95  # of streams without an underrun, for a load to count as held
SATURATED_FRACTION = 0.5  # fewer streams on time than this: stop raising the load
# The seed's serving: one model copy (≈5 GB) per user, 4 users per GPU, so 13 GPUs for 50 users.
SEED_GB_PER_USER = 5
SEED_USERS_PER_GPU = 4
DEFAULT_GPU_PRICE = 0.805  # USD per hour: AWS g6.xlarge (one NVIDIA L4, 24 GB), on demand, us-east-1
PARAGRAPH = (
    "Thanks for calling. I found your booking for two nights starting on Friday, and the room has a view of "
    "the harbour. Breakfast is served from seven until half past ten on the ground floor, and the pool is open "
    "all day. If you would like a late check out, I can ask the front desk for you. Is there anything else I "
    "can help you with before you arrive, such as parking, a taxi from the station, or a table for dinner?"
).split()


# ---- the offered load --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arrival:
    at_s: float  # since the level began
    audio_s: float  # the utterance's length, asked for with max_seconds
    seed: int
    text: str


def utterance_text(audio_s: float) -> str:
    """One sentence of about audio_s at a normal rate: the server speaks it as one unit (one engine request)."""
    num_words = max(4, round(WORDS_PER_S * audio_s))
    words = [PARAGRAPH[i % len(PARAGRAPH)].strip(".,?") for i in range(num_words)]
    return " ".join(words) + "."


def draw_arrivals(offered_load: float, duration_s: float, rng: np.random.Generator) -> list[Arrival]:
    """A Poisson process of rate offered_load / MEAN_AUDIO_S over duration_s, its first arrival at 0."""
    rate_per_s = offered_load / MEAN_AUDIO_S
    arrivals, at_s = [], 0.0
    while at_s < duration_s:
        audio_s = round(float(rng.uniform(MIN_AUDIO_S, MAX_AUDIO_S)), 2)
        seed = int(rng.integers(0, 2**31))
        arrivals.append(Arrival(at_s, audio_s, seed, utterance_text(audio_s)))
        at_s += float(rng.exponential(1.0 / rate_per_s))
    return arrivals


# ---- one listener (the stream and the jitter buffer are csmstream loadtest's) --------------------------------
@dataclass
class StreamResult:
    arrival: Arrival
    record: StreamRecord

    @property
    def outcome(self) -> str:
        """completion | busy | <other error code> | timeout | connection"""
        return "completion" if self.record.outcome == "completed" else self.record.error_code or "connection"

    @property
    def message(self) -> str:
        return self.record.message

    @property
    def chunks(self) -> list[tuple[float, float]]:  # (arrival time, audio seconds)
        return self.record.chunks

    @property
    def queued_s(self) -> float | None:
        return self.record.queued_s

    @property
    def ttfa_ms(self) -> float | None:
        return self.record.ttfa_ms

    @property
    def queue_wait_ms(self) -> float | None:
        return self.record.queue_wait_ms


async def listen(server_url: str, arrival: Arrival, timeout_s: float) -> StreamResult:
    """One listener: connect, ask for the utterance, note when each message comes, until the terminal one."""
    plan = StreamPlan(
        text=arrival.text,
        request_id="u",
        params={"seed": arrival.seed, "max_seconds": arrival.audio_s},
    )
    return StreamResult(arrival, await run_stream_on_new_connection(server_url, plan, timeout_s))


# ---- the server, watched ---------------------------------------------------------------------------------
def read_health(url: str, client: httpx.Client) -> dict:
    """/health's JSON whatever its status code (503 while starting, draining or unhealthy)."""
    return client.get(url + "/health").json()


def wait_until_ready(url: str, timeout_s: float) -> dict:
    """/health once the engine has left `starting` (its own warm-up), or the last reading at the deadline."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=10) as client:
        while True:
            health = read_health(url, client)
            if health.get("status", "ok") != "starting" or time.monotonic() > deadline:
                return health
            time.sleep(0.1)


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        return None
    return None


def _nvidia_smi(query: str) -> str:
    return subprocess.run(
        ["nvidia-smi", query, "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout


def gpu_mib(pid: int) -> float | None:
    """Device memory nvidia-smi shows for `pid`, else for the whole GPU (a container may hide the pid)."""
    try:
        apps = _nvidia_smi("--query-compute-apps=pid,used_memory")
        for line in apps.splitlines():
            app_pid, used = (part.strip() for part in line.split(","))
            if app_pid == str(pid):
                return float(used)
        total = _nvidia_smi("--query-gpu=memory.used")
        return float(total.splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


class Watcher:
    """A thread that polls /health (active sessions), the server's RSS and, on CUDA, its GPU memory."""

    def __init__(self, url: str, pid: int, watch_gpu: bool):
        self.url, self.pid, self.watch_gpu = url, pid, watch_gpu
        self.active: list[int] = []
        self.max_rss_mib = 0.0
        self.max_gpu_mib: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="capacity-watcher")

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        next_gpu_s = 0.0
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    self.active.append(int(read_health(self.url, client)["active_sessions"]))
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                self.max_rss_mib = max(self.max_rss_mib, rss_mib(self.pid) or 0.0)
                if self.watch_gpu and time.monotonic() >= next_gpu_s:
                    used = gpu_mib(self.pid)
                    if used is not None:
                        self.max_gpu_mib = max(self.max_gpu_mib or 0.0, used)
                    next_gpu_s = time.monotonic() + GPU_POLL_S
                self._stop.wait(HEALTH_POLL_S)


# ---- one level of load -------------------------------------------------------------------------------------
@dataclass
class Level:
    offered_load: float
    results: list[StreamResult]
    playbacks: list[Playback | None]  # None for streams that did not complete
    active: list[int]
    max_rss_mib: float
    max_gpu_mib: float | None
    ttfa_limit_ms: float

    @property
    def num_streams(self) -> int:
        return len(self.results)

    @property
    def num_busy(self) -> int:
        return sum(r.outcome == "busy" for r in self.results)

    @property
    def num_failed(self) -> int:
        return sum(r.outcome not in ("completion", "busy") for r in self.results)

    @property
    def num_no_underrun(self) -> int:
        return sum(p is not None and p.underruns == 0 for p in self.playbacks)

    @property
    def num_on_time(self) -> int:
        return sum(
            p is not None and p.underruns == 0 and (r.ttfa_ms or 0.0) <= self.ttfa_limit_ms
            for r, p in zip(self.results, self.playbacks, strict=True)
        )

    @property
    def ttfas_ms(self) -> list[float]:
        return [r.ttfa_ms for r in self.results if r.ttfa_ms is not None]

    @property
    def num_queued(self) -> int:
        """Streams told `queued`, whether or not they started before the end (a timeout, say)."""
        return sum(r.queued_s is not None for r in self.results)

    @property
    def queue_waits_ms(self) -> list[float]:
        return [r.queue_wait_ms for r in self.results if r.queue_wait_ms is not None]

    def ttfa_ms(self, q: float) -> float:
        return float(np.percentile(self.ttfas_ms, q)) if self.ttfas_ms else float("nan")

    def held(self) -> tuple[bool, str]:
        """Whether this load was held in real time, and if not, why."""
        if self.num_busy or self.num_failed:
            return False, f"{self.num_busy} refused busy, {self.num_failed} failed"
        if self.num_no_underrun < HELD_FRACTION * self.num_streams:
            return False, f"only {self.num_no_underrun}/{self.num_streams} streams without an underrun"
        if not self.ttfa_ms(95) <= self.ttfa_limit_ms:
            return False, f"p95 TTFA {self.ttfa_ms(95):.0f} ms > {self.ttfa_limit_ms:.0f} ms"
        return True, "held"

    def saturated(self) -> bool:
        return self.num_busy > 0 or self.num_on_time < SATURATED_FRACTION * self.num_streams


async def run_level(server, offered_load: float, args, rng, deadline_s: float, watch_gpu: bool) -> Level:
    """Let utterances arrive at `offered_load` for args.duration_s; wait for every one of them to end."""
    arrivals = draw_arrivals(offered_load, args.duration_s, rng)
    with Watcher(server.url, server.process.pid, watch_gpu) as watcher:
        t0 = time.perf_counter()
        tasks = []
        for arrival in arrivals:
            await asyncio.sleep(max(0.0, t0 + arrival.at_s - time.perf_counter()))
            # a stream may take long when the server is saturated, never past the run's budget
            timeout_s = min(30.0 + 5.0 * arrival.audio_s, max(5.0, deadline_s - time.perf_counter()))
            tasks.append(asyncio.create_task(listen(server.url, arrival, timeout_s)))
        results = list(await asyncio.gather(*tasks))
    playbacks = [
        play_back(r.chunks, args.jitter_ms / 1000.0) if r.outcome == "completion" else None for r in results
    ]
    return Level(
        offered_load,
        results,
        playbacks,
        watcher.active,
        watcher.max_rss_mib,
        watcher.max_gpu_mib,
        args.ttfa_p95_ms,
    )


async def warm_up(server, mode: str, max_slots: int, deadline_s: float) -> str:
    """Utterances at once so that nothing measured pays for a first step: `short`, 2 of 1 s; `full`, max_slots
    of 12 s (every batch size and attention span a compiled step is built for). Says what it did."""
    num_streams, audio_s = (max_slots, MAX_AUDIO_S) if mode == "full" else (2, 1.0)
    t0 = time.perf_counter()
    timeout_s = max(30.0, deadline_s - t0)
    arrivals = [Arrival(0.0, audio_s, i, utterance_text(audio_s)) for i in range(num_streams)]
    results = await asyncio.gather(*(listen(server.url, a, timeout_s) for a in arrivals))
    failed = [r for r in results if r.outcome != "completion"]
    note = f"; {len(failed)} failed: {failed[0].outcome} {failed[0].message}" if failed else ""
    return f"{num_streams} streams of {audio_s:g} s took {time.perf_counter() - t0:.1f} s{note}"


async def run_levels(server, args, deadline_s: float, gpu: bool, max_slots: int) -> list[Level]:
    """Warm up, then raise the offered load level by level until saturation, the last load or the budget."""
    mode = args.warmup if args.warmup != "auto" else ("full" if gpu else "short")
    print(f"warm-up ({mode}): {await warm_up(server, mode, max_slots, deadline_s)}")
    print(
        f"\n== capacity of the shipped configuration: Poisson arrivals for {args.duration_s:g} s per load, "
        f"utterances of {MIN_AUDIO_S:g}..{MAX_AUDIO_S:g} s, jitter buffer {args.jitter_ms:.0f} ms, seed {args.seed}"
    )
    print(HEADER, flush=True)
    levels: list[Level] = []
    for index, offered_load in enumerate(args.rates):
        expected_s = args.duration_s + MAX_AUDIO_S + 5.0  # the last arrival's utterance, played in real time
        if time.perf_counter() + expected_s > deadline_s:
            print(
                f"stopped before load {offered_load:g}: it would not end within --budget-s {args.budget_s:g}"
            )
            break
        rng = np.random.default_rng([args.seed, index])
        level = await run_level(server, offered_load, args, rng, deadline_s, gpu)
        levels.append(level)
        print(level_row(level), flush=True)
        if level.num_failed or level.num_busy:
            print(f"      {failures(level)}", flush=True)
        idle_timeout_s = max(1.0, min(60.0, deadline_s - time.perf_counter()))
        await asyncio.to_thread(server.wait_idle, idle_timeout_s)  # the next load starts on an idle server
        if level.saturated():
            print(f"stopped raising the load: saturated at {offered_load:g} ({level.held()[1]})")
            break
    return levels


# ---- printing ----------------------------------------------------------------------------------------------
def fmt_ms(value: float | None, width: int = 6) -> str:
    return f"{'-':>{width}}" if value is None or math.isnan(value) else f"{value:{width}.0f}"


HEADER = (
    f"{'load':>5} {'arr/s':>5} {'streams':>7} {'busy':>4} {'err':>3} {'no-underrun':>11} {'on-time':>7} "
    f"{'TTFA p50':>8} {'p95':>6} {'underruns':>9} {'(ms)':>7} {'queued':>6} {'wait p50':>8} {'max':>6} "
    f"{'active max':>10} {'mean':>5} {'RSS MiB':>8} {'GPU MiB':>8}"
)


def level_row(level: Level) -> str:
    waits = level.queue_waits_ms
    underruns = sum(p.underruns for p in level.playbacks if p is not None)
    underrun_ms = sum(p.underrun_ms for p in level.playbacks if p is not None)
    active_mean = float(np.mean(level.active)) if level.active else float("nan")
    return (
        f"{level.offered_load:5g} {level.offered_load / MEAN_AUDIO_S:5.2f} {level.num_streams:7d} "
        f"{level.num_busy:4d} {level.num_failed:3d} "
        f"{level.num_no_underrun:5d}/{level.num_streams:<5d} {level.num_on_time:7d} "
        f"{fmt_ms(level.ttfa_ms(50), 8)} {fmt_ms(level.ttfa_ms(95))} {underruns:9d} {underrun_ms:7.0f} "
        f"{level.num_queued:6d} {fmt_ms(float(np.median(waits)) if waits else None, 8)} "
        f"{fmt_ms(max(waits) if waits else None)} {max(level.active, default=0):10d} {active_mean:5.1f} "
        f"{level.max_rss_mib:8.0f} {fmt_ms(level.max_gpu_mib, 8)}"
    )


def failures(level: Level) -> str:
    """What the streams that did not complete ended with, and the first one's message."""
    failed = [r for r in level.results if r.outcome != "completion"]
    outcomes = sorted({r.outcome for r in failed})
    counts = ", ".join(f"{sum(r.outcome == o for r in failed)} {o}" for o in outcomes)
    first = next((r.message for r in failed if r.message), "")
    return f"not completed: {counts}" + (f" (first: {first[:160]})" if first else "")


def largest_held(levels: list[Level]) -> tuple[float, str]:
    """The largest load held with every lower load held too; and why the next one was not."""
    if not levels:
        return 0.0, "no load was run"
    held_load, why_not = 0.0, "every load run was held: the capacity is at least this"
    for level in sorted(levels, key=lambda lv: lv.offered_load):
        ok, reason = level.held()
        if not ok:
            why_not = f"load {level.offered_load:g} was not held: {reason}"
            break
        held_load = level.offered_load
    return held_load, why_not


def print_cost(users_per_unit: float, args, device: str, on_gpu: bool) -> None:
    """The seed's cost table redone from the measured capacity, beside the seed's own figures."""
    unit = "GPU" if on_gpu else "machine"
    price = args.gpu_price_per_hour
    price_note = " (AWS g6.xlarge, one NVIDIA L4 24 GB, on demand)" if price == DEFAULT_GPU_PRICE else ""
    print(
        f"\n== cost for {args.users} users (each a stream playing all the time) at {price:.3f} USD per "
        f"{unit}-hour{price_note}"
    )
    columns = (f"users per {unit}", f"{unit}s for {args.users}", "USD per user-hour")
    print(f"{'':56} {columns[0]:>16} {columns[1]:>16} {columns[2]:>18}")
    rows = [
        (f"seed: one model copy (≈{SEED_GB_PER_USER} GB) per user, per GPU", SEED_USERS_PER_GPU),
        (f"csmstream as shipped, measured on {device}", users_per_unit),
    ]
    for label, per_unit in rows:
        if per_unit <= 0:
            print(f"{label:56} {'0':>16} {'-':>16} {'-':>18}   (no load was held)")
            continue
        units = math.ceil(args.users / per_unit)
        print(f"{label:56} {per_unit:16g} {units:16d} {units * price / args.users:18.3f}")
    print(f"formulas: users per {unit} = the largest offered load held in real time (concurrent streams)")
    print(f"          {unit}s for N users = ceil(N / users per {unit})")
    print(f"          USD per user-hour = {unit}s for N users × price per {unit}-hour / N")
    if on_gpu and price == DEFAULT_GPU_PRICE and "L4" not in device:
        print(
            f"note: the price is an L4's, the capacity is {device}'s: pass --gpu-price-per-hour of that GPU"
        )
    if not on_gpu:
        print("note: measured on a CPU, so per machine, priced at --gpu-price-per-hour")


# ---- the run -----------------------------------------------------------------------------------------------
def print_summary(levels: list[Level], args, device: str, gpu: bool, max_slots: int) -> None:
    held_load, why_not = largest_held(levels)
    print(
        f"\n== held in real time: ≥ {HELD_FRACTION:.0%} of streams without an underrun (jitter buffer "
        f"{args.jitter_ms:.0f} ms), no refusal, p95 TTFA ≤ {args.ttfa_p95_ms:.0f} ms, every lower load held too"
    )
    print(f"largest offered load held: {held_load:g} concurrent streams ({why_not})")
    if any(max(level.active, default=0) >= max_slots for level in levels):
        print(
            f"note: a load filled all {max_slots} slots of the shipped configuration: --max-slots sets how "
            "many streams run at once (more slots hold more only while the batched step stays under 80 ms)"
        )
    print_cost(held_load, args, device, gpu)


# ---- the run -----------------------------------------------------------------------------------------------
def on_cuda(device: str) -> bool:
    import torch

    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size", default="csm-1b", help="tiny | small | csm-1b (random weights), unless --model"
    )
    parser.add_argument("--model", default=None, help="a checkpoint directory to serve instead")
    parser.add_argument(
        "--rates",
        nargs="+",
        type=float,
        default=[0.5, 1, 2, 4, 8, 16],
        help="offered loads, rising: concurrent streams on average (= arrivals per second × 7.5 s)",
    )
    parser.add_argument("--duration-s", type=float, default=20.0, help="seconds of arrivals per load")
    parser.add_argument("--seed", type=int, default=0, help="seeds the arrivals, lengths and sampling")
    parser.add_argument(
        "--device", default="auto", help="auto | cpu | cuda | cuda:N (given to serve unless auto)"
    )
    parser.add_argument(
        "--jitter-ms", type=float, default=200.0, help="audio buffered before playback starts"
    )
    parser.add_argument("--ttfa-p95-ms", type=float, default=1000.0, help="p95 TTFA a held load stays within")
    parser.add_argument("--gpu-price-per-hour", type=float, default=DEFAULT_GPU_PRICE, help="USD")
    parser.add_argument("--users", type=int, default=50, help="users to size the cost table for")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="wall-clock budget: no load starts that would end after it",
    )
    parser.add_argument(
        "--warmup",
        choices=["auto", "short", "full"],
        default="auto",
        help="short: 2 streams of 1 s; full: max_slots streams of 12 s at once (auto: full on CUDA)",
    )
    parser.add_argument(
        "--keep-env",
        action="store_true",
        help="keep CSMSTREAM_* variables for the server (then it may not run the shipped defaults)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    run_start_s = time.perf_counter()
    deadline_s = run_start_s + (args.budget_s or 1e9)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout` must not leave the server running
    if args.keep_env:
        kept = sorted(key for key in os.environ if key.startswith("CSMSTREAM_"))
        print(
            f"note: --keep-env: {', '.join(kept) or 'no CSMSTREAM_* variable'} kept: maybe not the shipped defaults"
        )
    else:
        drop_csmstream_env()
    import torch

    gpu = on_cuda(args.device)
    device = describe_device() if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"device: {device}; torch {torch.__version__}; nvidia-smi: {'yes' if shutil.which('nvidia-smi') else 'no'}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model_dir = args.model or str(write_bench_checkpoint_elsewhere(Path(tmp) / args.size, args.size))
        if not args.model:
            print(
                f"checkpoint: random weights of size {args.size}, written in {time.perf_counter() - t0:.1f} s"
            )
        flags, env = serve_args(SHIPPED, model_dir, device=args.device)
        t0 = time.perf_counter()
        server = start_server(flags, Path(tmp) / "voices", env=env, startup_timeout_s=1800.0)
        try:
            health = wait_until_ready(server.url, max(30.0, deadline_s - time.perf_counter()))
            max_slots = int(health.get("max_slots") or 8)
            print(
                f"server: csmstream serve {' '.join(flags)} (pid {server.process.pid}); ready after "
                f"{time.perf_counter() - t0:.1f} s; status {health.get('status', 'ok')}, max_slots {max_slots}, "
                f"max_queue {health.get('max_queue')}"
                + (
                    f", capacity_streams {health['capacity_streams']} (the engine's own estimate)"
                    if health.get("capacity_streams") is not None
                    else ""
                )
            )
            levels = asyncio.run(run_levels(server, args, deadline_s, gpu, max_slots))
        finally:
            server.stop()
    print_summary(levels, args, device, gpu, max_slots)
    print(f"\ntotal {time.perf_counter() - run_start_s:.0f} s")


if __name__ == "__main__":
    main()
