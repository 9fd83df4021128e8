"""Graceful shutdown: stop admitting, let the running streams finish, end what is left after a timeout.

`csmstream serve` starts a `Drain` on the first SIGTERM (commands/serve.py) and polls `ready_to_exit()` from
uvicorn's tick (every 0.1 s, on the event loop) until it says the server may stop:

1. the engine drains: `/health` says `draining` (503), new requests get `busy`; admitted and queued ones,
   and the later units of their texts, go on;
2. once the engine has been idle for `DRAIN_SETTLE_S` (so that the last chunks and the completions still on
   their way out reach the clients, and a text's next unit is not mistaken for the end), the server stops;
3. at the drain timeout, whatever still runs ends with an `error` (code `busy`) saying that the server is
   shutting down; the server stops once those errors have gone out.

Connections stay open until uvicorn shuts down after step 2 or 3: a WebSocket client then sees close code
1012 (service restart).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from csmstream.engine.base import SpeechEngine

logger = logging.getLogger(__name__)

DEFAULT_DRAIN_TIMEOUT_S = 30.0
# Engine idle this long = nothing left to deliver (it covers the gap between two units of one text too).
DRAIN_SETTLE_S = 1.0
# After the timeout's errors: the most we wait for the engine to end its streams before stopping anyway.
ABORT_GRACE_S = 5.0


class Drain:
    def __init__(
        self, engine: SpeechEngine, timeout_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.timeout_s = timeout_s
        self.deadline = clock() + timeout_s
        self._idle_since: float | None = None
        self._aborted_at: float | None = None
        engine.drain()
        logger.warning("draining: new requests are refused; running streams have %.0f s to finish", timeout_s)

    def hurry(self) -> None:
        """Stop waiting (a second SIGTERM): what still runs ends now, with the shutdown error."""
        self.deadline = min(self.deadline, self._clock())

    def ready_to_exit(self) -> bool:
        now = self._clock()
        stats = self._engine.stats()
        if stats.active_sessions == 0 and stats.queued == 0:
            if self._idle_since is None:
                self._idle_since = now
            return now - self._idle_since >= DRAIN_SETTLE_S
        self._idle_since = None
        if now >= self.deadline and self._aborted_at is None:
            self._aborted_at = now
            logger.warning(
                "drain timeout: ending %d running and %d queued streams", stats.active_sessions, stats.queued
            )
            self._engine.abort_all(
                f"the server is shutting down: this stream did not finish within the {self.timeout_s:g} s "
                "drain timeout; retry on another replica or after the restart"
            )
        return self._aborted_at is not None and now - self._aborted_at >= ABORT_GRACE_S
