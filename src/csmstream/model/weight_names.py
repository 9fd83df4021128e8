"""Weight names: the transformers `CsmForConditionalGeneration` checkpoint format ↔ our `CsmModel`.

One table, read in both directions. `{i}` stands for a layer number. Mimi weights (`codec_model.*`)
are not in here: the codec keeps transformers' names.
"""

from __future__ import annotations

import re

CODEC_PREFIX = "codec_model."

# (their name, our name)
_LAYER_NAMES = [
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.q_proj.weight", "attention.q_proj.weight"),
    ("self_attn.k_proj.weight", "attention.k_proj.weight"),
    ("self_attn.v_proj.weight", "attention.v_proj.weight"),
    ("self_attn.o_proj.weight", "attention.o_proj.weight"),
    ("post_attention_layernorm.weight", "mlp_norm.weight"),
    ("mlp.gate_proj.weight", "mlp.gate_proj.weight"),
    ("mlp.up_proj.weight", "mlp.up_proj.weight"),
    ("mlp.down_proj.weight", "mlp.down_proj.weight"),
]

NAME_TABLE: list[tuple[str, str]] = [
    ("embed_text_tokens.weight", "text_embeddings.weight"),
    ("backbone_model.embed_tokens.embed_audio_tokens.weight", "audio_embeddings.weight"),
    ("backbone_model.norm.weight", "backbone.norm.weight"),
    ("lm_head.weight", "codebook0_head.weight"),
    ("depth_decoder.model.embed_tokens.weight", "depth_audio_embeddings.weight"),
    ("depth_decoder.model.inputs_embeds_projector.weight", "projection.weight"),
    ("depth_decoder.model.norm.weight", "depth_decoder.norm.weight"),
    ("depth_decoder.codebooks_head.weight", "audio_head"),
    *[(f"backbone_model.layers.{{i}}.{t}", f"backbone.layers.{{i}}.{o}") for t, o in _LAYER_NAMES],
    *[(f"depth_decoder.model.layers.{{i}}.{t}", f"depth_decoder.layers.{{i}}.{o}") for t, o in _LAYER_NAMES],
]

# the two names of the shared audio embeddings when `tie_codebooks_embeddings` is set
TIED_NAMES = ("audio_embeddings.weight", "depth_audio_embeddings.weight")


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(pattern).replace(re.escape("{i}"), r"(\d+)") + "$")


_THEIRS_TO_OURS = [(_compile(theirs), ours) for theirs, ours in NAME_TABLE]
_OURS_TO_THEIRS = [(_compile(ours), theirs) for theirs, ours in NAME_TABLE]


def _translate(name: str, table: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, target in table:
        match = pattern.match(name)
        if match:
            return target.replace("{i}", match.group(1)) if match.groups() else target
    return None


def ours_from_theirs(name: str) -> str | None:
    """Our parameter name for a transformers checkpoint name; None when the name is not a CSM weight."""
    return _translate(name, _THEIRS_TO_OURS)


def theirs_from_ours(name: str) -> str:
    """The transformers checkpoint name of one of our parameters."""
    theirs = _translate(name, _OURS_TO_THEIRS)
    assert theirs is not None, f"no transformers name for our parameter {name!r}: extend NAME_TABLE"
    return theirs
