"""`csmstream say --engine csm`: the local path runs the server's engine (one slot) on a tiny checkpoint."""

from __future__ import annotations

import re

import numpy as np
import soundfile as sf

from csmstream.cli import main
from csmstream.engine.request import FRAME_SAMPLES, SAMPLE_RATE


def say(tiny_checkpoint_dir, tmp_path, name: str, *extra: str) -> tuple[np.ndarray, np.ndarray]:
    wav, codes = tmp_path / f"{name}.wav", tmp_path / f"{name}.npy"
    argv = ["say", "Hello there.", "--model", str(tiny_checkpoint_dir), "--engine", "csm", "--seed", "7"]
    assert main([*argv, "-o", str(wav), "--dump-codes", str(codes), *extra]) == 0
    audio, sample_rate = sf.read(wav, dtype="float32")
    assert sample_rate == SAMPLE_RATE, f"the wav must be {SAMPLE_RATE} Hz, got {sample_rate}"
    return audio, np.load(codes)


def test_local_say_streams_the_same_audio_it_writes_whole(tiny_checkpoint_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CSMSTREAM_VOICES_DIR", str(tmp_path / "voices"))
    whole, whole_codes = say(tiny_checkpoint_dir, tmp_path, "whole", "--max-frames", "6")
    capsys.readouterr()
    streamed, streamed_codes = say(tiny_checkpoint_dir, tmp_path, "streamed", "--max-frames", "6", "--stream")
    err = capsys.readouterr().err

    assert whole_codes.shape == (6, 32), f"--max-frames 6 makes 6 frames of 32 codes, got {whole_codes.shape}"
    assert np.array_equal(whole_codes, streamed_codes), "the same seed must give the same codes"
    assert whole.shape == (6 * FRAME_SAMPLES,), f"one 1920-sample frame per code row, got {whole.shape}"
    assert np.array_equal(whole, streamed), "the streamed wav must equal the one written whole"
    chunk_frames = [int(n) for n in re.findall(r"chunk \d+: (\d+) frames", err)]
    assert chunk_frames == [2, 4], f"chunks follow the schedule 2, 4, ...: {err}"


def test_local_say_without_a_length_flag_stops_at_the_texts_bound(tiny_checkpoint_dir, tmp_path, monkeypatch):
    """Random weights never end by themselves: the runaway bound of the text ends them (3 s + 0.25 s a
    character: 6 s for "Hello there."), as on the server."""
    monkeypatch.setenv("CSMSTREAM_VOICES_DIR", str(tmp_path / "voices"))
    audio, codes = say(tiny_checkpoint_dir, tmp_path, "bounded")
    assert codes.shape[0] == 75, f"6 s = 75 frames for a 12-character text, got {codes.shape[0]}"
    assert audio.shape == (75 * FRAME_SAMPLES,)
