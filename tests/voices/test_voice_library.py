from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from voice_helpers import make_builtin_dir, segment, tone

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.errors import BadRequest, CsmstreamError, UnknownVoice
from csmstream.voices import storage
from csmstream.voices.library import VoiceLibrary


@pytest.fixture
def library(tmp_path: Path) -> VoiceLibrary:
    return VoiceLibrary(tmp_path / "user", builtin_dir=make_builtin_dir(tmp_path))


def test_create_list_get_delete_round_trip(library: VoiceLibrary, tmp_path: Path) -> None:
    stereo_16k = np.stack([tone(1.5, 16_000), tone(1.5, 16_000)], axis=1)  # (S, 2) at 16 kHz
    voice = library.create(
        "ana", "Ana", 3, [(stereo_16k, 16_000, "  Hello,\n  world. "), segment(2.0, "Second.")]
    )

    assert voice.voice_id == "ana" and voice.name == "Ana" and voice.speaker == 3 and not voice.builtin
    assert [s.text for s in voice.segments] == ["Hello, world.", "Second."]
    assert voice.segments[0].audio.shape == (int(1.5 * SAMPLE_RATE),), "converted to 24 kHz mono"
    assert voice.segments[0].audio.dtype == np.float32
    assert not voice.segments[0].audio.flags.writeable, "shared audio must be read-only"
    assert voice.reference_seconds == pytest.approx(3.5, abs=1e-3)

    infos = {info.id: info for info in library.list()}
    assert set(infos) == {"default", "calm", "ana"}
    assert infos["ana"].num_segments == 2 and infos["ana"].builtin is False
    assert infos["ana"].revision == voice.revision and infos["ana"].created_at
    assert infos["ana"].to_dict()["reference_seconds"] == pytest.approx(3.5, abs=1e-3)

    # a second library on the same folder (another process, the CLI) reads the same voice back exactly
    loaded = VoiceLibrary(tmp_path / "user", builtin_dir=None).get("ana")
    assert loaded.revision == voice.revision
    for a, b in zip(loaded.segments, voice.segments, strict=True):
        np.testing.assert_array_equal(a.audio, b.audio)

    on_disk = sorted(p.name for p in (tmp_path / "user" / "ana").iterdir())
    assert on_disk == ["segment_0.wav", "segment_1.wav", "voice.json"]
    assert sf.info(tmp_path / "user" / "ana" / "segment_0.wav").samplerate == SAMPLE_RATE

    library.delete("ana")
    with pytest.raises(UnknownVoice):
        library.get("ana")
    assert "ana" not in {info.id for info in library.list()}
    assert not (tmp_path / "user" / "ana").exists()
    with pytest.raises(UnknownVoice):
        library.delete("ana")


def test_ids_from_names_are_readable_and_unique(library: VoiceLibrary) -> None:
    first = library.create(None, "Ana María (calm)", 0, [segment()])
    second = library.create(None, "Ana María (calm)", 0, [segment()])
    assert first.voice_id == "ana-maria-calm"
    assert second.voice_id == "ana-maria-calm-2"
    assert library.create(None, "Calm", 0, [segment()]).voice_id == "calm-2", "built-in 'calm' is taken"


def test_an_id_that_exists_is_refused(library: VoiceLibrary) -> None:
    library.create("ana", "Ana", 0, [segment()])
    with pytest.raises(BadRequest, match="already exists"):
        library.create("ana", "Other", 1, [segment(text="other")])
    with pytest.raises(BadRequest, match="built-in"):
        library.create("default", "Mine", 0, [segment()])
    assert library.get("ana").name == "Ana", "the first voice is untouched"


@pytest.mark.parametrize(
    "bad_id", ["../x", "a/b", "", "x" * 65, "Upper", ".hidden", "-dash", "a b", "a.b", "é"]
)
def test_bad_ids_are_refused(library: VoiceLibrary, tmp_path: Path, bad_id: str) -> None:
    with pytest.raises(BadRequest, match="invalid voice id"):
        library.create(bad_id, "Name", 0, [segment()])
    with pytest.raises(UnknownVoice):
        library.get(bad_id)
    with pytest.raises(UnknownVoice):
        library.delete(bad_id)
    assert not (tmp_path / "x").exists(), "nothing escaped the library folder"
    user_dir = tmp_path / "user"
    assert not user_dir.exists() or list(user_dir.iterdir()) == [], "nothing was written"


def test_the_longest_valid_id_works(library: VoiceLibrary) -> None:
    voice_id = "a" * 64
    assert library.create(voice_id, "Long", 0, [segment()]).voice_id == voice_id
    assert library.get(voice_id).voice_id == voice_id


def test_unknown_voice_message_names_known_voices(library: VoiceLibrary) -> None:
    with pytest.raises(UnknownVoice) as caught:
        library.get("nobody")
    message = str(caught.value)
    assert "nobody" in message and "default" in message and "calm" in message
    assert caught.value.code == "unknown_voice"


def test_revision_follows_content(tmp_path: Path) -> None:
    library = VoiceLibrary(tmp_path / "a", builtin_dir=None)
    base = library.create("v1", "Voice", 0, [segment(1.0, "hello")])
    same = library.create("v2", "Voice", 0, [segment(1.0, "hello")])
    assert same.revision == base.revision, "same content, same revision (whatever the id)"
    changed = [
        library.create("t", "Voice", 0, [segment(1.0, "hello!")]),
        library.create("s", "Voice", 1, [segment(1.0, "hello")]),
        library.create("n", "Voice 2", 0, [segment(1.0, "hello")]),
        library.create("a", "Voice", 0, [segment(1.0, "hello", frequency_hz=221.0)]),
        library.create("m", "Voice", 0, [segment(1.0, "hello"), segment(1.0, "hello")]),
    ]
    revisions = {base.revision} | {voice.revision for voice in changed}
    assert len(revisions) == 1 + len(changed), "every change of content changes the revision"

    # delete + re-create under the same id: readers (and their caches) see the new revision
    reader = VoiceLibrary(tmp_path / "a", builtin_dir=None)
    assert reader.get("v1").revision == base.revision
    library.delete("v1")
    recreated = library.create("v1", "Voice", 0, [segment(1.0, "something else")])
    assert recreated.revision != base.revision
    assert reader.get("v1").revision == recreated.revision
    assert reader.get("v1").segments[0].text == "something else"


def test_builtin_voices_load_and_cannot_be_deleted(library: VoiceLibrary, tmp_path: Path) -> None:
    voice = library.get("default")
    assert voice.builtin and voice.speaker == 0 and voice.segments[0].text == "I am default."
    with pytest.raises(BadRequest, match="built in"):
        library.delete("default")
    assert library.get("default").revision == voice.revision
    assert library.default_voice_id == "default"
    # a user folder with a built-in id (copied by hand) never shadows the built-in voice
    storage.write_voice_dir(
        tmp_path / "user", "default", "Impostor", 5, voice.segments, "2020-01-01T00:00:00+00:00"
    )
    assert library.get("default").name == "Default"
    assert [info.id for info in library.list()].count("default") == 1


def test_shipped_voices_are_found_and_sound(tmp_path: Path) -> None:
    library = VoiceLibrary(tmp_path / "user")  # builtin_dir="auto": the repository's voices/
    assert library.builtin_dir is not None, "the shipped voices folder must be found from a source checkout"
    infos = {info.id: info for info in library.list()}
    assert "default" in infos and len([i for i in infos.values() if i.builtin]) >= 2
    for info in infos.values():
        voice = library.get(info.id)
        assert voice.builtin
        for seg in voice.segments:
            assert seg.text.strip(), "every shipped segment has a transcript"
            assert 0.5 <= seg.seconds <= 30.0
            assert float(np.sqrt(np.mean(seg.audio**2))) > 0.01, "shipped reference audio is not silent"
    with pytest.raises(BadRequest):
        library.delete("default")


def test_a_failed_write_leaves_no_half_voice(library: VoiceLibrary, tmp_path: Path, monkeypatch) -> None:
    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    # fail after the audio files are written, before the metadata: the worst moment for a half voice
    monkeypatch.setattr(storage, "_write_json", crash)
    with pytest.raises(OSError, match="simulated"):
        library.create("ana", "Ana", 0, [segment(), segment()])
    monkeypatch.undo()

    assert not (tmp_path / "user" / "ana").exists()
    assert [p.name for p in (tmp_path / "user").iterdir()] == [], "the temporary folder is cleaned up"
    with pytest.raises(UnknownVoice):
        library.get("ana")
    assert library.create("ana", "Ana", 0, [segment()]).voice_id == "ana", "the id is still free"


def test_a_crash_leftover_is_invisible_and_swept(tmp_path: Path) -> None:
    user_dir = tmp_path / "user"
    VoiceLibrary(user_dir, builtin_dir=None).create("ana", "Ana", 0, [segment()])
    # what a killed writer leaves: a hidden temporary folder, possibly with a complete-looking voice.json
    leftover = user_dir / ".tmp-bob-123"
    leftover.mkdir()
    (leftover / "voice.json").write_text(
        '{"voice_id": "bob", "segments": [{"file": "segment_0.wav", "text": "x"}]}'
    )
    library = VoiceLibrary(user_dir, builtin_dir=None)
    assert [info.id for info in library.list()] == ["ana"]
    with pytest.raises(UnknownVoice):
        library.get(".tmp-bob-123")
    assert leftover.exists(), "a young leftover may belong to a writer still at work"
    assert storage.sweep_leftovers(user_dir, now=leftover.stat().st_mtime + storage.STALE_SECONDS + 1) == 1
    assert not leftover.exists() and (user_dir / "ana").exists()


def test_a_damaged_voice_is_skipped_in_lists_and_reported_on_get(
    library: VoiceLibrary, tmp_path: Path
) -> None:
    library.create("ana", "Ana", 0, [segment()])
    library.create("bob", "Bob", 0, [segment()])
    (tmp_path / "user" / "bob" / "voice.json").write_text("{ not json")
    assert "bob" not in {info.id for info in library.list()}
    with pytest.raises(CsmstreamError, match="cannot be read"):
        library.get("bob")
    (tmp_path / "user" / "ana" / "segment_0.wav").unlink()
    with pytest.raises(CsmstreamError, match="missing"):
        VoiceLibrary(tmp_path / "user", builtin_dir=None).get("ana")


def test_concurrent_creates_from_threads(tmp_path: Path) -> None:
    library = VoiceLibrary(tmp_path / "user", builtin_dir=None)
    num_threads = 8
    barrier = threading.Barrier(num_threads)
    results: dict[str, list] = {"distinct": [], "same": [], "auto": [], "errors": []}

    def work(index: int) -> None:
        barrier.wait()
        try:
            results["distinct"].append(
                library.create(f"v{index}", f"V{index}", index, [segment(0.6)]).voice_id
            )
            try:
                results["same"].append(library.create("shared", "Shared", 0, [segment(0.6)]).voice_id)
            except BadRequest:
                pass
            results["auto"].append(library.create(None, "Auto", 0, [segment(0.6)]).voice_id)
        except Exception as exc:  # pragma: no cover - reported below
            results["errors"].append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(num_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results["errors"] == []
    assert sorted(results["distinct"]) == sorted(f"v{i}" for i in range(num_threads))
    assert results["same"] == ["shared"], "exactly one writer wins an id"
    assert len(set(results["auto"])) == num_threads, "generated ids never collide"
    assert len(VoiceLibrary(tmp_path / "user", builtin_dir=None).list()) == 2 * num_threads + 1


def test_readers_never_see_a_half_voice_while_writers_work(tmp_path: Path) -> None:
    library = VoiceLibrary(tmp_path / "user", builtin_dir=None)
    stop = threading.Event()
    problems: list[BaseException] = []

    def read_forever() -> None:
        reader = VoiceLibrary(tmp_path / "user", builtin_dir=None)  # its own cache, like another process
        while not stop.is_set():
            for voice_id in reader.ids():
                try:
                    voice = reader.get(voice_id)
                    assert len(voice.segments) == 2, f"{voice_id} has {len(voice.segments)} segments"
                except UnknownVoice:
                    pass  # deleted between ids() and get(): fine
                except BaseException as exc:
                    problems.append(exc)

    readers = [threading.Thread(target=read_forever) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for round_index in range(15):
            # the same few ids are created and deleted over and over, so readers meet every moment of a write
            voice_id = f"w{round_index % 3}"
            if library.has(voice_id):
                library.delete(voice_id)
            library.create(voice_id, "W", 0, [segment(0.6), segment(0.6, f"round {round_index}")])
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=30)
    assert problems == []
