"""Writing a tiny random checkpoint in exactly the format of `sesame/csm-1b` (for tests and for trying things
without the real weights). Everything is deterministic in the seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from csmstream.codec.mimi import Mimi
from csmstream.codec.mimi_config import MimiConfig
from csmstream.codec.tiny import random_init_ as random_init_codec_
from csmstream.dev.tiny_model import build_tiny_model, count_parameters, tiny_csm_config
from csmstream.dev.tiny_tokenizer import build_tiny_tokenizer
from csmstream.model.checkpoint import save_checkpoint


@dataclass(frozen=True)
class TinyCheckpointInfo:
    path: Path
    model_parameters: int
    codec_parameters: int
    text_vocab_size: int


def write_tiny_checkpoint(directory: str | Path, seed: int = 0) -> TinyCheckpointInfo:
    """A random CSM (2-layer backbone and depth decoder, real vocabularies) + tiny Mimi + tiny tokenizer."""
    tokenizer = build_tiny_tokenizer()
    text_vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    special_ids = {
        "bos": tokenizer.token_to_id("<|begin_of_text|>"),
        "pad": tokenizer.token_to_id("<|AUDIO|>"),  # csm-1b pads with its audio token too
        "audio": tokenizer.token_to_id("<|AUDIO|>"),
        "audio_eos": tokenizer.token_to_id("<|audio_eos|>"),
    }
    config_dict = tiny_csm_config(text_vocab_size, special_ids)
    model = build_tiny_model(config_dict, seed=seed)
    codec = Mimi(MimiConfig.from_dict(config_dict["codec_config"])).eval()
    random_init_codec_(codec, seed=seed + 1)
    path = save_checkpoint(directory, config_dict, model, codec, tokenizer.to_str())
    return TinyCheckpointInfo(
        path=path,
        model_parameters=count_parameters(model),
        codec_parameters=count_parameters(codec),
        text_vocab_size=text_vocab_size,
    )
