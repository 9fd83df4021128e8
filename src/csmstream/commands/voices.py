"""`csmstream voices list|add|delete`: manage the voice library on this machine or on a running server.

csmstream voices list [--json]
csmstream voices add me.wav --transcript "What I say in me.wav" [--id me] [--name "Me"] [--speaker 0]
csmstream voices add a.wav b.wav --transcript "words of a" --transcript "words of b" --id me
csmstream voices add talk.wav --id me      # no transcript: the best 5-20 s of speech, transcribed by Whisper
csmstream voices add ref.wav -t "words of ref" --id brand --adapter my_lora/   # a fine-tuned voice
csmstream voices delete me
csmstream voices list --server http://127.0.0.1:8000      # the same, through the server's HTTP API
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from csmstream.errors import BadRequest, CsmstreamError

HTTP_TIMEOUT_SECONDS = 60.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    # The location options are accepted before or after the action (`voices --server U list` or `voices list
    # --server U`); SUPPRESS keeps the action's copy from overwriting a value given before it.
    location = argparse.ArgumentParser(add_help=False)
    _add_location_options(location, default=argparse.SUPPRESS)

    parser = subparsers.add_parser("voices", help="list, add or delete voices", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    _add_location_options(parser, default=None)
    actions = parser.add_subparsers(dest="voices_action", metavar="ACTION")

    list_parser = actions.add_parser("list", parents=[location], help="show the voices")
    list_parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    add = actions.add_parser("add", parents=[location], help="add a voice from reference recordings")
    add.add_argument(
        "audio",
        nargs="+",
        type=Path,
        help="recording(s) of the speaker: 0.5-30 s each with --transcript, any length without",
    )
    add.add_argument(
        "--transcript",
        "-t",
        action="append",
        help="exact words spoken in each recording, in the same order (repeat once per recording). "
        "Without it, the speech is found, cut into sentences and transcribed with Whisper, and the cleanest "
        "5-20 s are kept. A transcript must cover its whole file (a long recording with one transcript "
        "cannot be cut reliably): for long recordings, leave it out",
    )
    add.add_argument("--id", dest="voice_id", help="voice id (a-z, 0-9, _ -); default: made from the name")
    add.add_argument("--name", help="display name; default: the id")
    add.add_argument("--speaker", type=int, default=0, help="CSM speaker id (default 0)")
    add.add_argument(
        "--adapter",
        type=Path,
        metavar="DIR",
        help="a LoRA adapter in PEFT's format (adapter_config.json + adapter_model.safetensors), e.g. one "
        "trained with transformers + PEFT on sesame/csm-1b: the voice speaks through it (local library only; "
        "`csmstream finetune train` adds its voices itself)",
    )

    delete = actions.add_parser("delete", parents=[location], help="delete a voice you added")
    delete.add_argument("voice_id", help="id of the voice to delete")

    parser.set_defaults(func=run, voices_parser=parser)


def _add_location_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--voices-dir", type=Path, default=default, help="voice library folder (default: settings)"
    )
    parser.add_argument(
        "--server", default=default, metavar="URL", help="manage the voices of a running server"
    )


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "voices_action", None)
    if action is None:
        args.voices_parser.print_help()
        return 2
    if args.server and args.voices_dir:
        raise BadRequest("give either --server or --voices-dir, not both")
    backend: _Backend = _ServerBackend(args.server) if args.server else _LocalBackend(args.voices_dir)
    if action == "list":
        voices = backend.list()
        if args.json:
            print(json.dumps(voices, indent=2))
        else:
            _print_table(voices)
        return 0
    if action == "add":
        if args.adapter is not None:
            if args.server:
                raise BadRequest(
                    "--adapter adds to a local voice library only: run it with --voices-dir (or the settings' "
                    "library) on the server's machine; the server reads voices from disk as they appear"
                )
            backend.adapter_dir = args.adapter
        if args.transcript is None:
            info = backend.add_untranscribed(args.voice_id, args.name, args.speaker, list(args.audio))
        elif len(args.transcript) != len(args.audio):
            raise BadRequest(
                f"got {len(args.audio)} recording(s) but {len(args.transcript)} --transcript; give one per recording"
            )
        else:
            info = backend.add(
                args.voice_id, args.name, args.speaker, list(zip(args.audio, args.transcript, strict=True))
            )
        seconds = info.get("reference_seconds")
        length = f", {seconds:.1f} s of reference audio" if isinstance(seconds, int | float) else ""
        print(
            f"added voice {info.get('id', args.voice_id)!r} (speaker {info.get('speaker', args.speaker)}{length})"
        )
        return 0
    if action == "delete":
        backend.delete(args.voice_id)
        print(f"deleted voice {args.voice_id!r}")
        return 0
    raise BadRequest(f"unknown action {action!r}")  # argparse only lets the three above through


def _print_table(voices: list[dict[str, Any]]) -> None:
    if not voices:
        print("no voices")
        return
    rows = [["ID", "NAME", "SPEAKER", "SEGMENTS", "SECONDS", "KIND"]]
    for voice in voices:
        seconds = voice.get("reference_seconds")
        rows.append(
            [
                str(voice.get("id", "?")),
                str(voice.get("name", "")),
                str(voice.get("speaker", "")),
                str(voice.get("num_segments", "")),
                f"{seconds:.1f}" if isinstance(seconds, int | float) else "",
                "built-in" if voice.get("builtin") else ("fine-tuned" if voice.get("adapter") else "user"),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


class _Backend:
    def list(self) -> list[dict[str, Any]]: ...
    def add(
        self, voice_id: str | None, name: str | None, speaker: int, segments: list[tuple[Path, str]]
    ) -> dict: ...
    def add_untranscribed(
        self, voice_id: str | None, name: str | None, speaker: int, paths: list[Path]
    ) -> dict: ...
    def delete(self, voice_id: str) -> None: ...


class _LocalBackend(_Backend):
    def __init__(self, voices_dir: Path | None) -> None:
        from csmstream.voices.library import VoiceLibrary

        if voices_dir is None:
            from csmstream.config import Settings

            voices_dir = Settings().resolved_voices_dir()
        self.library = VoiceLibrary(voices_dir)
        self.adapter_dir: Path | None = None  # a LoRA adapter the added voice speaks through (--adapter)

    def list(self) -> list[dict[str, Any]]:
        return [info.to_dict() for info in self.library.list()]

    def add(
        self, voice_id: str | None, name: str | None, speaker: int, segments: list[tuple[Path, str]]
    ) -> dict:
        loaded = []
        for path, text in segments:
            samples, sample_rate = read_audio_file(path)
            loaded.append((samples, sample_rate, text))
        return (
            self.library.create(voice_id, name, speaker, loaded, adapter_dir=self.adapter_dir)
            .info()
            .to_dict()
        )

    def add_untranscribed(
        self, voice_id: str | None, name: str | None, speaker: int, paths: list[Path]
    ) -> dict:
        from csmstream.voices.clone import Recording, clone_segments

        recordings = []
        for path in paths:
            samples, sample_rate = read_audio_file(path)
            recordings.append(Recording(samples, sample_rate, path.name))
        if voice_id and self.library.has(voice_id):  # say so before minutes of work, not after
            raise BadRequest(
                f"a voice with id {voice_id!r} already exists; delete it first or pick another id"
            )
        segments = clone_segments(recordings, progress=sys.stderr.isatty())
        return (
            self.library.create(voice_id, name, speaker, segments, adapter_dir=self.adapter_dir)
            .info()
            .to_dict()
        )

    def delete(self, voice_id: str) -> None:
        self.library.delete(voice_id)


def read_audio_file(path: Path) -> tuple[Any, int]:
    """(samples (S,) or (S, C) float32, sample_rate) of an audio file, or a BadRequest naming the file."""
    if not path.is_file():
        raise BadRequest(f"no such audio file: {path}")
    try:
        from csmstream.audio.io import read_audio  # the team's reader knows more formats (mp3, ...)
    except ImportError:
        read_audio = None
    try:
        if read_audio is not None:
            samples, sample_rate = read_audio(path)
        else:
            import soundfile

            samples, sample_rate = soundfile.read(path, dtype="float32", always_2d=False)
    except CsmstreamError:
        raise
    except Exception as exc:
        raise BadRequest(f"cannot read audio file {path}: {exc}") from exc
    return samples, int(sample_rate)


class _ServerBackend(_Backend):
    """The same actions over HTTP: GET/POST/DELETE /v1/voices (POST as multipart form with the audio files)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise BadRequest(f"--server must be an http:// or https:// URL, got {url!r}")

    def list(self) -> list[dict[str, Any]]:
        body = self._request("GET", "/v1/voices")
        voices = body.get("voices", body.get("data")) if isinstance(body, dict) else body
        if not isinstance(voices, list):
            raise CsmstreamError(f"unexpected answer from {self.url}/v1/voices: {str(body)[:200]}")
        return voices

    def add(
        self, voice_id: str | None, name: str | None, speaker: int, segments: list[tuple[Path, str]]
    ) -> dict:
        if len(segments) != 1:
            raise BadRequest(
                "the server takes one recording per voice; give one audio file and one --transcript"
            )
        fields: dict[str, Any] = {"speaker": str(speaker)}
        if voice_id:
            fields["voice_id"] = voice_id
        if name:
            fields["name"] = name
        path, fields["transcript"] = segments[0]
        return self._upload(path, fields)

    def add_untranscribed(
        self, voice_id: str | None, name: str | None, speaker: int, paths: list[Path]
    ) -> dict:
        if len(paths) != 1:
            raise BadRequest("the server takes one recording per voice; give one audio file")
        fields: dict[str, Any] = {"speaker": str(speaker)}
        if voice_id:
            fields["voice_id"] = voice_id
        if name:
            fields["name"] = name
        return self._upload(paths[0], fields)  # no transcript: the server finds and transcribes the speech

    def _upload(self, path: Path, fields: dict[str, Any]) -> dict:
        if not path.is_file():
            raise BadRequest(f"no such audio file: {path}")
        files = {"audio": (path.name, path.read_bytes(), _mime_type(path))}
        body = self._request("POST", "/v1/voices", data=fields, files=files)
        return body if isinstance(body, dict) else {}

    def delete(self, voice_id: str) -> None:
        self._request("DELETE", f"/v1/voices/{quote(voice_id, safe='')}")

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            with make_http_client() as client:
                response = client.request(method, self.url + path, timeout=HTTP_TIMEOUT_SECONDS, **kwargs)
        except httpx.HTTPError as exc:
            raise CsmstreamError(f"cannot reach the server at {self.url}: {exc}") from exc
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if response.is_success:
            return body
        raise CsmstreamError(
            f"server refused ({response.status_code}): {_error_message(body, response.text)}"
        )


def make_http_client() -> Any:
    """The HTTP client (a function so tests can give it a mock transport)."""
    import httpx

    return httpx.Client()


def _error_message(body: Any, text: str) -> str:
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body.get("message")))
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if error is not None:
            return str(error)
    return text.strip()[:300] or "no details"


def _mime_type(path: Path) -> str:
    return {
        ".wav": "audio/wav",
        ".mp3": "audio/mpeg",
        ".flac": "audio/flac",
        ".ogg": "audio/ogg",
        ".opus": "audio/ogg",
        ".m4a": "audio/mp4",
    }.get(path.suffix.lower(), "application/octet-stream")


if __name__ == "__main__":  # python -m csmstream.commands.voices ...
    from csmstream.cli import main

    sys.exit(main(["voices", *sys.argv[1:]]))
