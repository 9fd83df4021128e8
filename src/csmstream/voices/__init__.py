"""Voice library: a CSM speaker id plus reference segments (audio + transcript), stored on disk atomically."""

from csmstream.voices.library import DEFAULT_VOICE_ID, VoiceLibrary, default_builtin_dir
from csmstream.voices.validate import VoiceLimits
from csmstream.voices.voice import Voice, VoiceInfo, VoiceSegment

__all__ = [
    "DEFAULT_VOICE_ID",
    "Voice",
    "VoiceInfo",
    "VoiceLibrary",
    "VoiceLimits",
    "VoiceSegment",
    "default_builtin_dir",
]
