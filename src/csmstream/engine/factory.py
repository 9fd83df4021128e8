"""Which engine runs: CSM when its weights can be had, else the piper CPU voice (`--engine auto`)."""

from __future__ import annotations

import logging

from csmstream.config import Settings
from csmstream.engine.base import SpeechEngine
from csmstream.errors import CheckpointError

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
        model_name=settings.model,
        max_adapters=settings.max_adapters,
        max_lora_rank=settings.max_lora_rank,
        lora_targets=lora_targets(settings.lora_targets),
        merge_voice=settings.merge_voice or None,
    )


def lora_targets(text: str) -> tuple[str, ...]:
    """`q_proj,v_proj` → ("q_proj", "v_proj"); CsmstreamError for a name that is not an adaptable projection."""
    from csmstream.errors import CsmstreamError
    from csmstream.model.lora import ADAPTABLE

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in ADAPTABLE]
    if unknown or not names:
        raise CsmstreamError(f"lora targets {text!r}: choose among {', '.join(ADAPTABLE)}")
    return names


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
