"""Synthesis parameters as the protocols receive them (JSON values of unknown type) → a checked
`SynthesisRequest`. Every protocol goes through here, so `temperature: -1` means the same error everywhere."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csmstream.engine.request import SynthesisRequest, check_max_seconds, new_request_id
from csmstream.errors import BadRequest
from csmstream.text.controls import has_lone_surrogate, strip_controls

MAX_TEMPERATURE = 5.0
MAX_TOPK = 2048  # the codebook size: a larger top-k is the same as no top-k
MAX_SEED = 2**63 - 1
MAX_REQUEST_ID_CHARS = 128


@dataclass(frozen=True)
class SynthesisParams:
    """Optional knobs; None means the engine's default."""

    temperature: float | None = None
    topk: int | None = None
    seed: int | None = None
    max_seconds: float | None = None
    greedy: bool | None = None  # extension: always take the most likely code (deterministic output)


def _number(fields: Mapping[str, Any], key: str) -> float | None:
    value = fields.get(key)
    if value is None:
        return None
    # bool is an int in Python; `true` is never a meaningful temperature
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"`{key}` must be a finite number, got {value!r}")
    return float(value)


def _integer(fields: Mapping[str, Any], key: str) -> int | None:
    value = fields.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"`{key}` must be an integer, got {value!r}")
    return value


def parse_params(fields: Mapping[str, Any]) -> SynthesisParams:
    """Read `temperature`, `topk`, `seed`, `max_seconds`, `greedy` from a JSON object; absent or null → default."""
    temperature = _number(fields, "temperature")
    if temperature is not None and not 0.0 < temperature <= MAX_TEMPERATURE:
        raise BadRequest(f"`temperature` must be in (0, {MAX_TEMPERATURE:g}], got {temperature:g}")
    topk = _integer(fields, "topk")
    if topk is not None and not 1 <= topk <= MAX_TOPK:
        raise BadRequest(f"`topk` must be between 1 and {MAX_TOPK}, got {topk}")
    seed = _integer(fields, "seed")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise BadRequest(f"`seed` must be between 0 and 2**63-1, got {seed}")
    max_seconds = _number(fields, "max_seconds")
    check_max_seconds(max_seconds)
    greedy = fields.get("greedy")
    if greedy is not None and not isinstance(greedy, bool):
        raise BadRequest(f"`greedy` must be true or false, got {greedy!r}")
    return SynthesisParams(
        temperature=temperature, topk=topk, seed=seed, max_seconds=max_seconds, greedy=greedy
    )


def clean_text(value: Any, key: str = "text") -> str:
    """Text from a client, as the engines may take it: a string without lone surrogates (refused) and
    without control characters other than tab and line breaks (removed). It may be empty (an incremental
    delta); `parse_text` is for a whole text."""
    if not isinstance(value, str):
        raise BadRequest(f"`{key}` must be a string, got {type(value).__name__}")
    if has_lone_surrogate(value):
        raise BadRequest(f"`{key}` contains a lone UTF-16 surrogate (\\ud800-\\udfff); send valid Unicode")
    return strip_controls(value)


def parse_text(value: Any, key: str = "text") -> str:
    """A whole text to speak: `clean_text`, and something must be left."""
    text = clean_text(value, key)
    if not text.strip():
        raise BadRequest(
            f"`{key}` is empty" + (" (after removing control characters)" if value.strip() else "")
        )
    return text


def parse_voice_id(value: Any, key: str = "voice_id") -> str | None:
    """None or "" → no voice (the engine's default speaker); the engine says whether an id exists."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"`{key}` must be a string, got {type(value).__name__}")
    return value


def parse_request_id(value: Any) -> str:
    """The client's id, or a new one."""
    if value is None:
        return new_request_id()
    if not isinstance(value, str) or not value or len(value) > MAX_REQUEST_ID_CHARS:
        raise BadRequest(
            f"`request_id` must be a non-empty string of at most {MAX_REQUEST_ID_CHARS} characters"
        )
    return value


def build_request(
    text: str, voice_id: str | None, params: SynthesisParams, request_id: str, context: tuple = ()
) -> SynthesisRequest:
    sampling = None
    overrides = {
        name: getattr(params, name)
        for name in ("temperature", "topk", "seed", "greedy")
        if getattr(params, name) is not None
    }
    if overrides:
        # imported here: the sampling module pulls in torch, which the engine-less unit tests need not load
        from csmstream.model.sampling import SamplingParams

        try:
            sampling = SamplingParams(**overrides)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"invalid sampling parameters: {exc}") from exc
    return SynthesisRequest(
        text=text,
        voice_id=voice_id,
        sampling=sampling,
        max_seconds=params.max_seconds,
        request_id=request_id,
        context=tuple(context),
    )
