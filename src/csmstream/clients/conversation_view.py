"""What the person at the terminal sees and hears of a realtime conversation: server events in, lines of
text and audio playback out. No I/O of its own beyond the `out` stream and the player it is given, so
`chat` and `talk` share it and tests can drive it with scripted events.

States: `listening` (waiting for the user, or hearing them), `thinking` (the user's turn ended; no
answer audio yet), `speaking` (answer audio is arriving or still playing here).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, TextIO

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.clients.realtime import decode_audio

State = Literal["listening", "thinking", "speaking"]


class Player(Protocol):
    def play(self, pcm: Any) -> None: ...

    def clear(self) -> float: ...

    @property
    def pending_seconds(self) -> float: ...


class ConversationView:
    def __init__(
        self,
        out: TextIO,
        player: Player | None,
        *,
        show_states: bool,
        user_label: str = "you",
        assistant_label: str = "assistant",
    ) -> None:
        self.out = out
        self.player = player
        self.show_states = show_states
        self.user_label = user_label
        self.assistant_label = assistant_label
        self.state: State = "listening"
        self._announced: State | None = None  # the state last printed
        self.response_active = False  # between response.created and response.done
        self.response_id: str | None = None  # of the latest response.created
        self._muted = False  # the current answer was stopped here: its late deltas are dropped
        self.responses_requested = 0  # response.create sent by us, not yet answered by response.done
        self.audio_samples = 0  # assistant audio received (24 kHz), all responses
        self.interruptions = 0  # times the user's speech cut the assistant's audio off
        self.session: dict[str, Any] = {}
        self.last_error: str | None = None
        self._line_open = False  # an assistant text line is being written

    # --- what the client did -----------------------------------------------------------------------------

    def requested_response(self) -> None:
        self.responses_requested += 1

    @property
    def busy(self) -> bool:
        """An answer is on its way or still playing here."""
        return self.response_active or self.responses_requested > 0 or self.playing

    @property
    def audio_seconds(self) -> float:
        return self.audio_samples / SAMPLE_RATE

    @property
    def playing(self) -> bool:
        return self.player is not None and self.player.pending_seconds > 0

    def stop_playback(self) -> float:
        """Drop the assistant audio not yet played, and whatever of this answer still arrives; returns the
        seconds dropped."""
        self._muted = True
        self._end_line(" …")
        return self.player.clear() if self.player is not None else 0.0

    def tick(self) -> None:
        """Called every ~100 ms: notices that the last answer finished playing."""
        if self.state == "speaking" and not self.response_active and not self.playing:
            self._set_state("listening")

    # --- server events -----------------------------------------------------------------------------------

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        handler = getattr(self, "_on_" + kind.replace(".", "_"), None)
        if handler is not None:
            handler(event)

    def _on_session_created(self, event: dict[str, Any]) -> None:
        self.session = dict(event.get("session") or {})
        self._set_state("listening")

    def _on_session_updated(self, event: dict[str, Any]) -> None:
        self.session = dict(event.get("session") or {})

    def _on_input_audio_buffer_speech_started(self, event: dict[str, Any]) -> None:
        # Barge-in: the user talks over the answer. The server stops generating; what is already
        # buffered here must stop too, now, or the assistant keeps talking for seconds.
        if self.playing or self.response_active:
            if self.playing:
                self.interruptions += 1
            self.stop_playback()
        self._set_state("listening")

    def _on_input_audio_buffer_speech_stopped(self, event: dict[str, Any]) -> None:
        self._set_state("thinking")

    def _on_conversation_item_input_audio_transcription_completed(self, event: dict[str, Any]) -> None:
        transcript = str(event.get("transcript") or "").strip()
        self._end_line()
        self._print(
            f"{self.user_label}: {transcript}" if transcript else f"{self.user_label}: (no words heard)"
        )

    def _on_response_created(self, event: dict[str, Any]) -> None:
        self.response_active = True
        self._muted = False
        response = event.get("response") or {}
        self.response_id = response.get("id") if isinstance(response, dict) else None
        if self.state != "speaking" or not self.playing:
            self._set_state("thinking")

    def _stale(self, event: dict[str, Any]) -> bool:
        """A delta of an answer stopped here, or of an older response than the current one."""
        response_id = event.get("response_id")
        old = response_id is not None and self.response_id is not None and response_id != self.response_id
        return self._muted or old

    def _on_response_audio_transcript_delta(self, event: dict[str, Any]) -> None:
        if not self._stale(event):
            self._write_text(str(event.get("delta") or ""))

    def _on_response_text_delta(self, event: dict[str, Any]) -> None:
        self._on_response_audio_transcript_delta(event)

    def _on_response_audio_delta(self, event: dict[str, Any]) -> None:
        if self._stale(event):
            return
        pcm = decode_audio(str(event.get("delta") or ""))  # (S,) int16
        self.audio_samples += pcm.size
        if self.player is not None and pcm.size:
            self.player.play(pcm)
        self._set_state("speaking")

    def _on_response_done(self, event: dict[str, Any]) -> None:
        self.response_active = False
        self.responses_requested = max(0, self.responses_requested - 1)
        response = event.get("response") or {}
        status = response.get("status")
        if status == "cancelled":
            self._end_line(" …")
        elif status == "failed":
            self._end_line()
            details = response.get("status_details") or {}
            error = details.get("error") if isinstance(details, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            self._print(f"(the answer failed{': ' + message if message else ''})")
        else:
            self._end_line()
        self._set_state("speaking" if self.playing else "listening")

    def _on_error(self, event: dict[str, Any]) -> None:
        error = event.get("error") or {}
        message = str(error.get("message") or error.get("code") or "unknown error")
        self.last_error = message
        if not self.response_active and self.responses_requested > 0:
            self.responses_requested -= 1  # our response.create was refused: no response.done will come
        self._end_line()
        self._print(f"(server error: {message})")

    # --- the terminal ------------------------------------------------------------------------------------

    def _set_state(self, state: State) -> None:
        self.state = state
        self._announce()

    def _announce(self) -> None:
        # a state line never cuts an assistant line in two: it waits until the line ends
        if self.show_states and not self._line_open and self._announced != self.state:
            self._announced = self.state
            self._print(f"[{self.state}]")

    def _write_text(self, delta: str) -> None:
        if not delta:
            return
        if not self._line_open:
            self.out.write(f"{self.assistant_label}: ")
            self._line_open = True
            delta = delta.lstrip()
        self.out.write(delta)
        self.out.flush()

    def _end_line(self, suffix: str = "") -> None:
        if self._line_open:
            self.out.write(suffix + "\n")
            self.out.flush()
            self._line_open = False
            self._announce()

    def _print(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()
