"""The optional sound card: what the commands say without one, and (where sounddevice and PortAudio are
installed) playback and capture on ALSA's null device, which needs no hardware."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from csmstream.clients.errors import NoAudioDevice
from csmstream.clients.player import open_player
from csmstream.clients.sound_device import audio_disabled, load_sounddevice

ALSA_CONF = Path("/usr/share/alsa/alsa.conf")


def sounddevice_problem() -> str | None:
    try:
        load_sounddevice()
    except NoAudioDevice as exc:
        return str(exc)
    return None


def test_audio_disabled_values():
    assert audio_disabled({"CSMSTREAM_NO_AUDIO": "1"}) and audio_disabled({"CSMSTREAM_NO_AUDIO": "yes"})
    assert not audio_disabled({}) and not audio_disabled({"CSMSTREAM_NO_AUDIO": "0"})


def test_open_player_reports_why_there_is_no_sound():
    player, why_not = open_player(disabled=True)
    assert player is None and "CSMSTREAM_NO_AUDIO" in why_not
    problem = sounddevice_problem()
    if problem is None:
        pytest.skip(
            "sounddevice and PortAudio are installed here: the missing-library message cannot be seen"
        )
    player, why_not = open_player(disabled=False)
    assert player is None and why_not == problem
    assert "sounddevice" in why_not or "PortAudio" in why_not, "the message says what to install"


NULL_DEVICE_SCRIPT = textwrap.dedent(
    """
    import asyncio
    import numpy as np
    from csmstream.clients.microphone import Microphone
    from csmstream.clients.player import StreamPlayer

    async def main():
        player = StreamPlayer()
        player.play(np.full(4800, 1000, dtype=np.int16))
        await player.drain(timeout_s=10)
        assert player.buffer.played_samples == 4800, player.buffer.played_samples
        player.play(np.full(48000, 1000, dtype=np.int16))
        player.clear()
        assert player.pending_seconds == 0
        player.close()
        mic = Microphone()
        mic.start()
        blocks = [await mic.read() for _ in range(5)]
        mic.close()
        assert all(b.dtype == np.int16 and b.shape == (960,) for b in blocks), [b.shape for b in blocks]
        print("null device ok")

    asyncio.run(main())
    """
)


def test_player_and_microphone_on_the_alsa_null_device(tmp_path):
    problem = sounddevice_problem()
    if problem is not None:
        pytest.skip(f"no sounddevice/PortAudio here: {problem}")
    if not ALSA_CONF.is_file() or not sys.platform.startswith("linux"):
        pytest.skip("needs ALSA's configuration to define a null device")
    conf = tmp_path / "asound.conf"
    conf.write_text(f"<{ALSA_CONF}>\npcm.!default {{\n    type null\n}}\n")
    env = {**os.environ, "ALSA_CONFIG_PATH": str(conf)}
    env.pop("CSMSTREAM_NO_AUDIO", None)
    result = subprocess.run(
        [sys.executable, "-c", NULL_DEVICE_SCRIPT], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0 and "null device ok" in result.stdout, result.stderr[-2000:]
