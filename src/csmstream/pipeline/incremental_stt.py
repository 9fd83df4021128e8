"""Transcription while the user speaks, so that when the turn ends only its tail is left to recognise.

One `IncrementalTranscription` per spoken turn. While the user speaks, the growing turn is re-decoded every
`interval_ms` (one decode at a time, on a worker thread; the recognizer's lock serialises connections).
Words on which two consecutive decodes agree are committed and announced as deltas (a decode of a turn
cut mid-word guesses the last word; the next one, with more audio, corrects it).

When the user falls silent, the turn as it would be committed if this silence ended it (up to where the
silence began, plus what has arrived of the tail padding) is decoded at once: a *speculative* decode, keyed
by the sample where the silence began. If that silence does end the turn, the turn is committed as exactly
that audio, so its transcript is already there or on its way; if the user speaks on, it is forgotten. That transcript is also what the
semantic end-of-turn decider (`turn_end.py`) reads.

The final transcript is a decode of the whole committed turn, so it is the whole-turn transcript; the
short-window decode (`short_window.py`) is what makes it cheap enough to run several times per turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from csmstream.pipeline.stt import Transcriber

log = logging.getLogger(__name__)

PARTIAL_INTERVAL_MS = 500  # new speech between two decodes while the user speaks
MIN_PARTIAL_MS = 400  # no partial decode of less speech than this (Whisper guesses wildly)
# A partial decode that already covers the speech up to a silence and this much of it serves as that silence's
# speculative decode (the turn is then committed as the audio it decoded), instead of queueing another. The
# VAD's silence starts while the last word still decays: with 32 ms, tiny.en heard "a cup of tea" as "a couple
# of t" (which then reads as a fragment); the speculative decode itself starts with ~96 ms of it.
MIN_ADOPTED_TAIL_MS = 80


def word_key(word: str) -> str:
    """A word as compared between decodes: case and punctuation do not count."""
    return re.sub(r"[^a-z0-9']+", "", word.lower())


def stable_prefix(previous: list[str], current: list[str]) -> list[str]:
    """The words of `current` on which `previous` agrees, from the start."""
    count = 0
    for old, new in zip(previous, current, strict=False):
        if word_key(old) != word_key(new):
            break
        count += 1
    return current[:count]


@dataclass(frozen=True)
class Decoded:
    """One decode's text, and Whisper's mean log-probability per token when the recognizer gives it."""

    text: str
    avg_logprob: float | None = None


async def transcribe_once(stt: Transcriber, pcm: np.ndarray, sample_rate: int) -> Decoded:
    """One decode: the recognizer's fast short-window path when it has one, else its ordinary one."""
    fast = getattr(stt, "transcribe_window_detailed", None)
    if fast is not None:
        heard = await fast(pcm, sample_rate)
        return Decoded(heard.text, heard.avg_logprob)
    return Decoded(await stt.transcribe(pcm, sample_rate))


class IncrementalTranscription:
    """One turn's transcription as it is spoken. Lives on the event loop; decodes run on worker threads."""

    def __init__(
        self,
        stt: Transcriber,
        sample_rate: int,
        on_delta: Callable[[str], None],
        *,
        interval_ms: float = PARTIAL_INTERVAL_MS,
        on_decoded: Callable[[str], None] | None = None,
    ) -> None:
        self.stt = stt
        self.sample_rate = sample_rate
        self._on_delta = on_delta
        self._on_text = on_decoded  # every decode's text, partial or speculative (the end-of-turn scores)
        self._interval_samples = int(interval_ms * sample_rate / 1000)
        self._min_samples = int(MIN_PARTIAL_MS * sample_rate / 1000)
        self._last: asyncio.Task[Decoded] | None = None  # the newest decode: the next one waits for it
        self._partial_end = 0  # turn samples covered by the newest partial decode
        self._partial: tuple[int, asyncio.Task[Decoded]] | None = None  # its (end sample, decode)
        self._min_tail_samples = int(MIN_ADOPTED_TAIL_MS * sample_rate / 1000)
        self._previous_words: list[str] = []  # the newest decode's words
        self._committed: list[str] = []  # words announced as deltas
        # silence start sample → (end sample of the audio decoded, its decode)
        self._speculative: dict[int, tuple[int, asyncio.Task[Decoded]]] = {}
        self._closed = False

    @property
    def committed_text(self) -> str:
        return " ".join(self._committed)

    @property
    def busy(self) -> bool:
        return self._last is not None and not self._last.done()

    # ---- while the user speaks

    def partial(self, turn_audio: Callable[[], np.ndarray], num_samples: int, end_sample: int) -> None:
        """The turn is `num_samples` long (ending at stream sample `end_sample`) and still going: decode it
        again if it grew enough since the last decode and nothing is decoding. `turn_audio` cuts it out only
        when needed."""
        if self._closed or self.busy or num_samples < self._min_samples:
            return
        if num_samples - self._partial_end < self._interval_samples:
            return
        self._partial_end = num_samples
        self._last = self._start(turn_audio(), self._last)
        self._partial = (end_sample, self._last)

    def speculate(self, silence_start: int, end_sample: int, audio: np.ndarray) -> None:
        """The turn would be `audio` (ending at `end_sample`) if the silence that began at `silence_start`
        ends it."""
        if self._closed or silence_start in self._speculative:
            return
        for stale in [k for k in self._speculative if k != silence_start]:
            self._speculative.pop(stale)[1].cancel()  # the user spoke on after that silence
        partial = self._partial
        if (
            partial is not None
            and not partial[1].cancelled()
            and silence_start + self._min_tail_samples <= partial[0] <= end_sample
        ):  # the newest partial decode heard all of the speech before this silence: it is the turn
            self._speculative[silence_start] = partial
            return
        task = self._start(audio, self._last)
        self._speculative[silence_start] = (end_sample, task)
        self._last = task

    def speculated_end(self, silence_start: int) -> int | None:
        """Where the speculative decode for the silence at `silence_start` cut the turn (None: no such)."""
        entry = self._speculative.get(silence_start)
        return entry[0] if entry is not None and not entry[1].cancelled() else None

    def speculative(self, silence_start: int) -> Decoded | None:
        """The transcript of the turn as the silence at `silence_start` would end it, once decoded."""
        entry = self._speculative.get(silence_start)
        task = entry[1] if entry is not None else None
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    # ---- at the end of the turn

    async def final(self, audio: np.ndarray, silence_start: int | None = None) -> str:
        """The transcript of the committed turn `audio`: the speculative decode for the silence that ended it
        when there is one (the caller committed the same audio: `speculated_end`), else a decode now.
        Announces the words not yet announced, when they continue the ones that were."""
        entry = self._speculative.get(silence_start) if silence_start is not None else None
        task = entry[1] if entry is not None else None
        if task is None or task.cancelled():
            task = self._start(audio, self._last)
        self._last = task
        text = (await task).text
        words = text.split()
        if stable_prefix(self._committed, words) == words[: len(self._committed)]:
            self._announce(words[len(self._committed) :])
        self.close()
        return text

    def close(self) -> None:
        """Forget pending decodes (the turn ended, or was dropped)."""
        self._closed = True
        for _, task in self._speculative.values():
            if not task.done() and task is not self._last:
                task.cancel()

    # ---- decoding

    def _start(self, audio: np.ndarray, after: asyncio.Task[Decoded] | None) -> asyncio.Task[Decoded]:
        task = asyncio.get_running_loop().create_task(self._decode(audio, after))
        task.add_done_callback(self._on_decoded)
        return task

    async def _decode(self, audio: np.ndarray, after: asyncio.Task[Decoded] | None) -> Decoded:
        if after is not None and not after.done():
            with contextlib.suppress(BaseException):
                await asyncio.shield(after)
        started_s = time.perf_counter()
        decoded = await transcribe_once(self.stt, audio, self.sample_rate)
        log.debug(
            "decoded %.2f s of speech in %.0f ms: %r (mean log-prob %s)",
            len(audio) / self.sample_rate,
            (time.perf_counter() - started_s) * 1000,
            decoded.text,
            decoded.avg_logprob,
        )
        return decoded

    def _on_decoded(self, task: asyncio.Task[Decoded]) -> None:
        if self._closed or task.cancelled() or task.exception() is not None:
            return
        text = task.result().text
        if self._on_text is not None:
            self._on_text(text)
        words = text.split()
        agreed = stable_prefix(self._previous_words, words)
        self._previous_words = words
        if (
            len(agreed) > len(self._committed)
            and stable_prefix(self._committed, agreed) == agreed[: len(self._committed)]
        ):
            self._announce(agreed[len(self._committed) :])

    def _announce(self, words: list[str]) -> None:
        if not words:
            return
        delta = (" " if self._committed else "") + " ".join(words)
        self._committed.extend(words)
        self._on_delta(delta)
