"""The local sound card, through `sounddevice` (PortAudio), which is optional: without it, or without a
device, the commands say so once and carry on without sound where they can.

Install with `pip install 'csmstream[audio-device]'`; on Linux PortAudio itself comes from the system
(`apt-get install libportaudio2`). `CSMSTREAM_NO_AUDIO=1` turns the sound card off (headless runs, tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from csmstream.clients.errors import NoAudioDevice

NO_AUDIO_ENV = "CSMSTREAM_NO_AUDIO"
INSTALL_HINT = "pip install 'csmstream[audio-device]'"
PORTAUDIO_HINT = "install PortAudio (Debian/Ubuntu: apt-get install libportaudio2)"


@dataclass(frozen=True)
class DeviceChoice:
    name: str
    sample_rate: int  # what the device runs at: ours when it takes it, else its default (we resample)


def audio_disabled(environ: Mapping[str, str]) -> bool:
    """True when the environment asks for no sound card (`CSMSTREAM_NO_AUDIO` set to anything but 0/empty)."""
    return environ.get(NO_AUDIO_ENV, "").strip().lower() not in ("", "0", "false", "no")


def load_sounddevice() -> Any:
    """The `sounddevice` module; `NoAudioDevice` saying what to install when it or PortAudio is missing."""
    try:
        import sounddevice
    except ImportError:
        raise NoAudioDevice(f"the sound card needs the sounddevice package ({INSTALL_HINT})") from None
    except OSError as exc:  # sounddevice is there but cannot load the PortAudio library
        raise NoAudioDevice(f"the PortAudio library is missing ({exc}); {PORTAUDIO_HINT}") from None
    return sounddevice


def choose_device(kind: Literal["input", "output"], sample_rate: int) -> DeviceChoice:
    """The default input or output device, at `sample_rate` if it accepts it (mono int16)."""
    sd = load_sounddevice()
    label = "microphone" if kind == "input" else "sound output device"
    try:
        info = sd.query_devices(kind=kind)
    except Exception as exc:  # PortAudioError / ValueError: no default device of that kind
        raise NoAudioDevice(f"no {label} found ({exc})") from None
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    try:
        check(samplerate=sample_rate, channels=1, dtype="int16")
        device_rate = sample_rate
    except Exception:
        device_rate = int(info["default_samplerate"])
        try:
            check(samplerate=device_rate, channels=1, dtype="int16")
        except Exception as exc:
            raise NoAudioDevice(f"the {label} {info['name']!r} refuses mono 16-bit audio ({exc})") from None
    return DeviceChoice(name=str(info["name"]), sample_rate=device_rate)
