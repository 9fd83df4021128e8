"""Which engine runs: CSM when its weights can be had, else the piper CPU voice (`--engine auto`)."""

from __future__ import annotations

import logging

from csmstream.config import Settings
from csmstream.engine.base import SpeechEngine
from csmstream.errors import CheckpointError
from csmstream.model.lora_targets import parse_targets

log = logging.getLogger("csmstream")


def build_csm_engine(settings: Settings, voices) -> SpeechEngine:
    from csmstream.engine.csm_engine import CsmEngine
    from csmstream.model.checkpoint import load_checkpoint

    def load():  # runs on the engine's own thread (see CsmEngine)
        return load_checkpoint(settings.model, device=settings.device, dtype=settings.dtype)

    return CsmEngine(
        load,
        voices,
        max_slots=settings.max_slots,
        max_queue=settings.max_queue,
        max_rows=settings.max_seq_rows,
        prefill_chunk_rows=settings.prefill_chunk_rows,
        max_text_chars=settings.max_text_chars,
        default_max_seconds=settings.default_max_seconds,
        realtime_admission=settings.realtime_admission,
        compile=settings.compile,
        kv_buckets=settings.kv_buckets,
        model_name=settings.model,
        max_adapters=settings.max_adapters,
        max_lora_rank=settings.max_lora_rank,
        lora_targets=parse_targets(settings.lora_targets),
        merge_voice=settings.merge_voice or None,
    )


def build_piper_engine(settings: Settings, voices) -> SpeechEngine:
    from csmstream.engine.piper_engine import PiperEngine

    return PiperEngine(
        max_queue=settings.max_queue,
        max_text_chars=settings.max_text_chars,
        default_max_seconds=settings.default_max_seconds,
        voice_library=voices,
    )


def piper_fallback_reason(exc: Exception) -> str:
    """Why `--engine auto` speaks with piper: the first line of the checkpoint error."""
    return f"the CSM weights are not available ({str(exc).splitlines()[0]})"


def build_engine(settings: Settings, voices) -> SpeechEngine:
    """The engine `settings.engine` names; with `auto`, CSM if its checkpoint loads, else piper (logged)."""
    if settings.engine == "csm":
        return build_csm_engine(settings, voices)
    if settings.engine == "piper":
        log.info("engine: piper (asked for with --engine piper)")
        return build_piper_engine(settings, voices)
    try:
        engine = build_csm_engine(settings, voices)
    except CheckpointError as exc:
        log.warning("engine: piper, because %s", piper_fallback_reason(exc))
        return build_piper_engine(settings, voices)
    log.info("engine: csm (%s)", settings.model)
    return engine
