"""The projections a LoRA adapter may change, by their module name's last part: one list for training,
serving and settings. No torch here, so the command line can use it without loading torch."""

from __future__ import annotations

from csmstream.errors import BadRequest

ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_TARGETS = ("gate_proj", "up_proj", "down_proj")
ADAPTABLE = ATTENTION_TARGETS + MLP_TARGETS  # of every block of the backbone and of the depth decoder


def parse_targets(text: str) -> tuple[str, ...]:
    """'q_proj, v_proj' → ('q_proj', 'v_proj'); 'all' → every adaptable projection. BadRequest for an empty
    list or a name that is not an adaptable projection."""
    if text.strip() == "all":
        return ADAPTABLE
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in ADAPTABLE]
    if unknown or not names:
        shown = ", ".join(unknown) if unknown else "nothing"
        raise BadRequest(f"LoRA targets: {shown} given; choose from {','.join(ADAPTABLE)} (or all)")
    return names
