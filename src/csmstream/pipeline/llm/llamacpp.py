"""A GGUF model run inside this process by llama-cpp-python (an optional extra), on a worker thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from csmstream.pipeline.llm.base import ChatMessage, LLMBackend
from csmstream.pipeline.llm.errors import LLMError, LLMUnavailable

INSTALL_HINT = (
    "the embedded LLM needs llama-cpp-python: pip install llama-cpp-python "
    "(or point CSMSTREAM_LLM_BASE_URL at an OpenAI-compatible server instead)"
)
_END = object()  # marks the end of the token stream on the thread → loop queue


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp  # optional, heavy: imported only when an embedded model is used
    except ImportError as exc:
        raise LLMUnavailable(INSTALL_HINT) from exc
    return llama_cpp


# llama.cpp prompt formats for base-model GGUFs that carry no chat template, by `general.architecture`
_FORMAT_BY_ARCHITECTURE = (
    ("gemma", "gemma"),
    ("llama", "llama-3"),
    ("mistral", "mistral-instruct"),
    ("qwen", "chatml"),
)


class LlamaCppLLM(LLMBackend):
    """Runs `gguf_path_or_hub_id` with llama.cpp. A hub id is `owner/repo` or `owner/repo:file-glob.gguf`.

    The model loads on first use (or `load()`), on the worker thread. One llama.cpp context does one
    generation at a time, so concurrent conversations take turns (a lock), each streaming as it generates.
    """

    def __init__(
        self,
        gguf_path_or_hub_id: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        temperature: float = 0.7,
        max_tokens: int = 400,
        chat_format: str | None = None,
        seed: int | None = None,
    ) -> None:
        _import_llama_cpp()  # fail at construction, with the install hint, not at the first user turn
        self.source = str(gguf_path_or_hub_id)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.chat_format = chat_format
        self.seed = seed
        self.name = f"llama.cpp {self.source}"
        self._llama: Any = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    def load(self) -> None:
        """Load the model now (blocking); later calls return at once."""
        with self._load_lock:
            if self._llama is None:
                self._llama = self._load()

    def _load(self) -> Any:
        llama_cpp = _import_llama_cpp()
        kwargs: dict[str, Any] = {"n_ctx": self.n_ctx, "verbose": False}
        if self.n_threads is not None:
            kwargs["n_threads"] = self.n_threads
        if self.chat_format is not None:
            kwargs["chat_format"] = self.chat_format
        if self.seed is not None:
            kwargs["seed"] = self.seed
        path = Path(self.source).expanduser()
        try:
            if path.is_file():
                return self._with_chat_format(llama_cpp.Llama(model_path=str(path), **kwargs))
            if path.exists() or self.source.endswith(".gguf") or self.source.count("/") != 1:
                raise LLMUnavailable(f"no GGUF model file at {path}")
            repo_id, _, filename = self.source.partition(":")
            llama = llama_cpp.Llama.from_pretrained(repo_id=repo_id, filename=filename or "*.gguf", **kwargs)
            return self._with_chat_format(llama)
        except LLMError:
            raise
        except Exception as exc:  # llama.cpp reports a bad file / failed download as ValueError, OSError, ...
            raise LLMUnavailable(f"could not load the GGUF model {self.source}: {exc}") from exc

    def _with_chat_format(self, llama: Any) -> Any:
        """A GGUF without a chat template (a base model) would answer nothing through llama.cpp's default:
        pick the prompt format of its architecture instead."""
        metadata = getattr(llama, "metadata", {}) or {}
        if (
            self.chat_format is None
            and not metadata.get("tokenizer.chat_template")
            and llama.chat_handler is None
        ):
            architecture = str(metadata.get("general.architecture", ""))
            llama.chat_format = next(
                (fmt for prefix, fmt in _FORMAT_BY_ARCHITECTURE if architecture.startswith(prefix)), "chatml"
            )
        return llama

    async def stream_chat(
        self, messages: list[ChatMessage], *, cancel: asyncio.Event | None = None
    ) -> AsyncIterator[str]:
        if cancel is not None and cancel.is_set():
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()  # the thread cannot wait on an asyncio.Event
        worker = loop.run_in_executor(None, self._generate, messages, stop, loop, queue)
        cancel_watch = asyncio.create_task(_set_when(cancel, stop)) if cancel is not None else None
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                if stop.is_set():
                    break
                yield str(item)
        finally:
            stop.set()  # the consumer may leave early: tell the thread to stop at its next token
            if cancel_watch is not None:
                cancel_watch.cancel()
            await asyncio.shield(worker)  # the lock must be free before another generation starts

    def _generate(
        self,
        messages: list[ChatMessage],
        stop: threading.Event,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[object],
    ) -> None:
        """Worker thread: stream tokens into `queue` until done or `stop`; always ends with `_END`."""
        try:
            self.load()
            with self._generate_lock:
                stream = self._llama.create_chat_completion(
                    messages=messages, stream=True, temperature=self.temperature, max_tokens=self.max_tokens
                )
                try:
                    for chunk in stream:
                        if stop.is_set():
                            break
                        content = (chunk["choices"][0].get("delta") or {}).get("content")
                        if content:
                            loop.call_soon_threadsafe(queue.put_nowait, content)
                finally:
                    stream.close()
        except LLMError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        except Exception as exc:  # surface llama.cpp failures to the conversation as an LLMError
            loop.call_soon_threadsafe(queue.put_nowait, LLMError(f"the embedded LLM failed: {exc}"))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)


async def _set_when(cancel: asyncio.Event, stop: threading.Event) -> None:
    await cancel.wait()
    stop.set()
