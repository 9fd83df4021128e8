"""Frozen settings, read once from flags and `CSMSTREAM_*` environment variables, then passed down.

Nothing reads the environment after start-up: components take the values they need as arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from csmstream.model.lora_targets import ADAPTABLE

DEFAULT_MODEL = "sesame/csm-1b"


class Settings(BaseSettings):
    """Every knob of the server and the command line, with its default."""

    model_config = SettingsConfigDict(env_prefix="CSMSTREAM_", frozen=True, extra="ignore")

    # the model
    model: str = Field(DEFAULT_MODEL, description="local checkpoint directory or hub id")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    # the engine
    engine: Literal["auto", "csm", "piper"] = Field(
        "auto", description="auto: CSM when its weights are available, else the piper CPU voice"
    )
    max_slots: int = Field(8, ge=1, le=256, description="concurrent sessions sharing the model")
    max_queue: int = Field(32, ge=0, description="requests that may wait for a slot; more get `busy`")
    max_seq_rows: int = Field(2048, ge=64, description="rows of context + generated frames per slot")
    prefill_chunk_rows: int = Field(256, ge=8, description="prompt rows prefilled between two steps")
    compile: bool = Field(True, description="torch.compile / CUDA graphs on CUDA (set 0 to turn off)")
    kv_buckets: int = Field(
        5,
        ge=1,
        le=8,
        description="attention spans each compiled step shape is built for (max_seq_rows, half of it, ...): "
        "fewer shapes to compile at warm-up, more padded attention per step",
    )
    realtime_admission: bool = Field(
        True, description="queue a new stream when it would push the active ones below real time"
    )
    max_text_chars: int = Field(2000, ge=1)
    # fine-tuned voices (LoRA adapters, see model/lora.py)
    max_adapters: int = Field(
        4, ge=0, le=256, description="fine-tuned voices held on the device at once (0: serve none)"
    )
    max_lora_rank: int = Field(16, ge=1, le=512, description="the largest adapter rank served")
    lora_targets: str = Field(
        ",".join(ADAPTABLE),
        description="the projections adapters may change (comma-separated); fewer: a smaller bank",
    )
    merge_voice: str = Field(
        "",
        description="merge this fine-tuned voice's adapter into the weights (a server for that voice only)",
    )
    default_max_seconds: float | None = Field(
        None,
        gt=0,
        description=(
            "cap on the speech of one engine request (one unit of a long text) whose client set no "
            "max_seconds; none by default: texts are spoken whole (CSM stops a unit that never ends at a "
            "runaway bound from its text length, see engine/speech_length.py)"
        ),
    )

    # the server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    voices_dir: Path = Field(Path("~/.local/share/csmstream/voices"), description="user voice library")
    api_keys: str = Field("", description="comma-separated API keys; empty: no authentication")
    api_keys_file: Path | None = Field(None, description="a file with one API key per line")
    allowed_origins: str = Field(
        "",
        description=(
            "comma-separated browser origins allowed (CORS and WebSockets) besides loopback pages, this "
            "server's own pages and `public_url`; `*`: any page may use the server"
        ),
    )
    public_url: str = Field(
        "",
        description="the URL browsers reach this server at (e.g. https://speech.example.com), behind a proxy",
    )

    # the conversation
    llm_base_url: str = Field(
        "", description="OpenAI-compatible chat endpoint, e.g. http://localhost:11434/v1"
    )
    llm_model: str = ""
    llm_api_key: str = ""
    llm_gguf: str = Field("", description="embedded llama.cpp model: a GGUF file or hub id")
    default_llm: bool = Field(
        True,
        description="with no LLM configured, converse with the bundled small model (the llm-model extra)",
    )
    persona: str = Field("", description="system prompt; empty: the default persona (Maya)")
    stt_model: str = Field("", description="faster-whisper model dir or hub id; empty: the bundled tiny.en")
    turn_model: bool = Field(
        True,
        description="semantic_vad reads the words with the bundled small model (the llm extras); off: rules only",
    )

    def resolved_voices_dir(self) -> Path:
        return self.voices_dir.expanduser()
