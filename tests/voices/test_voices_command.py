from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import soundfile as sf
from voice_helpers import tone

from csmstream.cli import main
from csmstream.commands import voices as voices_command
from csmstream.voices.library import VoiceLibrary


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    path = tmp_path / "me.wav"
    sf.write(path, tone(1.5, 44_100), 44_100)
    return path


def test_local_add_list_delete(tmp_path: Path, wav: Path, capsys) -> None:
    library_dir = tmp_path / "lib"
    assert (
        main(
            [
                "voices",
                "--voices-dir",
                str(library_dir),
                "add",
                str(wav),
                "-t",
                "Hello there.",
                "--name",
                "Me",
            ]
        )
        == 0
    )
    assert "added voice 'me'" in capsys.readouterr().out
    voice = VoiceLibrary(library_dir, builtin_dir=None).get("me")
    assert voice.segments[0].text == "Hello there." and voice.reference_seconds == pytest.approx(
        1.5, abs=1e-3
    )

    assert main(["voices", "list", "--voices-dir", str(library_dir), "--json"]) == 0
    listed = {v["id"]: v for v in json.loads(capsys.readouterr().out)}
    assert listed["me"]["builtin"] is False and listed["default"]["builtin"] is True

    assert main(["voices", "list", "--voices-dir", str(library_dir)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:2] == ["ID", "NAME"] and "me" in table and "built-in" in table

    assert main(["voices", "delete", "me", "--voices-dir", str(library_dir)]) == 0
    assert not VoiceLibrary(library_dir, builtin_dir=None).has("me")


def test_local_errors_are_clear_messages(tmp_path: Path, wav: Path, capsys) -> None:
    library_dir = str(tmp_path / "lib")
    cases = [
        (["add", str(wav), "-t", "x", "--id", "../evil"], "invalid voice id"),
        (["add", str(tmp_path / "missing.wav"), "-t", "x"], "no such audio file"),
        (["add", str(wav), str(wav), "-t", "only one"], "one per recording"),
        (["delete", "default"], "built in"),
        (["delete", "nobody"], "unknown voice 'nobody'"),
    ]
    for argv, message in cases:
        assert main(["voices", "--voices-dir", library_dir, *argv]) == 1, argv
        assert message in capsys.readouterr().err
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio at all")
    assert main(["voices", "--voices-dir", library_dir, "add", str(not_audio), "-t", "x"]) == 1
    assert "notes.wav" in capsys.readouterr().err, "an unreadable file is named"


class FakeServer:
    """Answers the voices API the way the server documents it, and records what the client sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "GET" and request.url.path == "/v1/voices":
            return httpx.Response(200, json={"voices": [{"id": "default", "name": "Joe", "builtin": True}]})
        if request.method == "POST" and request.url.path == "/v1/voices":
            return httpx.Response(200, json={"id": "me", "speaker": 2, "reference_seconds": 1.5})
        if request.method == "DELETE" and request.url.path == "/v1/voices/default":
            return httpx.Response(
                400, json={"error": {"code": "bad_request", "message": "default is built in"}}
            )
        return httpx.Response(404, json={"detail": "not found"})


@pytest.fixture
def server(monkeypatch) -> FakeServer:
    fake = FakeServer()
    monkeypatch.setattr(
        voices_command, "make_http_client", lambda: httpx.Client(transport=httpx.MockTransport(fake))
    )
    return fake


def test_server_list_add_delete(server: FakeServer, wav: Path, capsys) -> None:
    url = "http://127.0.0.1:8000/"
    assert main(["voices", "list", "--server", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "default"
    assert server.requests[-1].url == "http://127.0.0.1:8000/v1/voices"

    argv = ["voices", "--server", url, "add", str(wav), "-t", "Hello there.", "--id", "me", "--speaker", "2"]
    assert main(argv) == 0
    assert "added voice 'me' (speaker 2, 1.5 s" in capsys.readouterr().out
    sent = server.requests[-1]
    body = sent.read()
    assert sent.headers["content-type"].startswith("multipart/form-data")
    for field, value in [("voice_id", b"me"), ("speaker", b"2"), ("transcript", b"Hello there.")]:
        assert f'name="{field}"'.encode() in body and value in body
    assert b'name="audio"; filename="me.wav"' in body and wav.read_bytes() in body, "the file is sent as is"

    assert main(["voices", "--server", url, "add", str(wav), str(wav), "-t", "a", "-t", "b"]) == 1
    assert "one recording per voice" in capsys.readouterr().err

    assert main(["voices", "--server", url, "add", str(wav), "--id", "me2"]) == 0  # no transcript
    body = server.requests[-1].read()
    assert b'name="voice_id"' in body and b'name="transcript"' not in body, "the server transcribes it"
    capsys.readouterr()
    assert main(["voices", "delete", "default", "--server", url]) == 1
    assert "default is built in" in capsys.readouterr().err
    assert server.requests[-1].method == "DELETE"
    assert main(["voices", "delete", "ghost", "--server", url]) == 1
    assert "not found" in capsys.readouterr().err


def test_server_unreachable_and_bad_options(wav: Path, capsys) -> None:
    assert main(["voices", "list", "--server", "http://127.0.0.1:9"]) == 1
    assert "cannot reach the server" in capsys.readouterr().err
    assert main(["voices", "list", "--server", "localhost:8000"]) == 1
    assert "http://" in capsys.readouterr().err
    assert main(["voices", "list", "--server", "http://x", "--voices-dir", "/tmp"]) == 1
    assert "either --server or --voices-dir" in capsys.readouterr().err
    assert main(["voices"]) == 2
