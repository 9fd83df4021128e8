"""The two server configurations the benchmarks compare, built the same way in-process and as `csmstream serve`.

- `shipped`:        what `csmstream serve --model DIR --engine csm` runs: every `Settings` default (8 slots, a
                    queue of 32, real-time admission on, torch.compile on CUDA). A burst of n streams may queue.
- `admission off`:  one slot per stream, no queue, real-time admission off: every stream starts at once, the
                    raw throughput of the batched step (a configuration the server never runs by default).

`CSMSTREAM_*` variables in the environment would change the defaults, so the benchmarks drop them first
(`drop_csmstream_env`) and say which they dropped.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

SHIPPED = "shipped"
ADMISSION_OFF = "admission off"
CONFIGS = (SHIPPED, ADMISSION_OFF)


def drop_csmstream_env() -> list[str]:
    """Remove `CSMSTREAM_*` from this process's environment (and so from the servers it spawns)."""
    dropped = sorted(key for key in os.environ if key.startswith("CSMSTREAM_"))
    for key in dropped:
        del os.environ[key]
    if dropped:
        print(f"note: dropped {', '.join(dropped)} from the environment, to measure the defaults")
    return dropped


def engine_settings(config: str, model_dir: str, *, device: str, dtype: str, max_slots_off: int, **extra):
    """`Settings` for an in-process engine of `config`; `max_slots_off` is the slot count without admission."""
    from csmstream.config import Settings

    assert config in CONFIGS, f"unknown configuration {config!r}"
    values = {"model": model_dir, "engine": "csm", "device": device, "dtype": dtype, **extra}
    if config == ADMISSION_OFF:
        values.update(max_slots=max_slots_off, max_queue=0, realtime_admission=False)
    return Settings(**values)


def build_engine(config: str, model_dir: str, voices_dir: Path, **kwargs):
    """The engine `csmstream serve` would build for `config` (same factory, same settings)."""
    from csmstream.engine.factory import build_csm_engine
    from csmstream.voices.library import VoiceLibrary

    return build_csm_engine(engine_settings(config, model_dir, **kwargs), VoiceLibrary(voices_dir))


def serve_args(
    config: str, model_dir: str, *, device: str = "auto", dtype: str = "auto", max_slots_off: int = 8
) -> tuple[list[str], dict[str, str]]:
    """Flags and environment of `csmstream serve` for `config`. `auto` device/dtype are left out (defaults)."""
    assert config in CONFIGS, f"unknown configuration {config!r}"
    args = ["--engine", "csm", "--model", model_dir]
    if device != "auto":
        args += ["--device", device]
    if dtype != "auto":
        args += ["--dtype", dtype]
    env: dict[str, str] = {}
    if config == ADMISSION_OFF:
        args += ["--max-slots", str(max_slots_off), "--max-queue", "0"]
        env["CSMSTREAM_REALTIME_ADMISSION"] = "0"
    return args, env


async def wait_engine_ready(engine, timeout_s: float = 1800.0) -> float:
    """Seconds until the engine leaves `starting` (its warm-up: compiling, measuring step cost). Engines
    without a `status` are ready at once."""
    t0 = time.perf_counter()
    while getattr(engine, "status", "ok") == "starting" and time.perf_counter() - t0 < timeout_s:
        await asyncio.sleep(0.05)
    status = getattr(engine, "status", "ok")
    assert status == "ok", f"the engine is {status!r} after its start; its log says why"
    return time.perf_counter() - t0
