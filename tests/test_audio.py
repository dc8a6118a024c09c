"""Audio in and out: recordings become MIDI pieces of a corpus, samples become WAV files.

Every recording here is synthesised by the test (plucked harmonic tones made with numpy, or MIDI played
by the project's own renderer); nothing is shipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import mido
import numpy as np
import pytest
from click.testing import CliRunner
from training_support import TINY_MODEL

from tui_composer.cli.app import cli
from tui_composer.music import audio
from tui_composer.plugin.host import PluginHost
from tui_composer.services.runs import RunStore
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import Workspace

RATE = 22_050
SCALE = [60, 62, 64, 65, 67, 69, 71, 72]  # C major, C4 to C5
NOTE_SECONDS = 0.4
TRANSCRIBE = audio.transcription_problem()
RENDER = audio.rendering_problem()
needs_transcription = pytest.mark.skipif(TRANSCRIBE is not None, reason=f"the audio extra is missing: {TRANSCRIBE}")
needs_rendering = pytest.mark.skipif(RENDER is not None, reason=f"no synthesizer: {RENDER}")


def plucked(pitches: list[int], seconds: float = NOTE_SECONDS, rate: int = RATE) -> np.ndarray:
    """One note after another, each a decaying sum of six harmonics with a 5 ms attack."""
    t = np.arange(round(seconds * rate)) / rate
    notes = []
    for pitch in pitches:
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        tone = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 7))
        notes.append(tone * np.exp(-t / 0.3) * np.minimum(1.0, t / 0.005))
    signal = np.concatenate(notes)
    return (0.5 * signal / np.max(np.abs(signal))).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    path.write_bytes(audio.wav_bytes(samples, rate))
    return path


def write_midi(path: Path, pitches: list[int], beats: float = 0.5) -> Path:
    """A one-track MIDI file at 120 bpm: each pitch `beats` long."""
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    ticks = round(beats * 480)
    for pitch in pitches:
        track.append(mido.Message("note_on", note=pitch, velocity=90, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=ticks))
    midi.save(path)
    return path


def wav_samples(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as reader:
        frames = reader.readframes(reader.getnframes())
        return np.frombuffer(frames, "<i2").astype(np.float32) / 32767, reader.getframerate()


# --- import: transcription, skips, cache -------------------------------------------------------------


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory, installed_host: PluginHost) -> tuple[Studio, dict[str, str]]:
    """A folder of synthesised recordings imported as a corpus: a scale, and files that must be skipped."""
    if TRANSCRIBE is not None:
        pytest.skip(f"the audio extra is missing: {TRANSCRIBE}")
    import soundfile

    root = tmp_path_factory.mktemp("audio")
    folder = root / "recordings"
    (folder / "takes").mkdir(parents=True)
    write_wav(folder / "takes" / "scale.wav", plucked(SCALE))
    soundfile.write(folder / "scale.flac", plucked(SCALE[::-1]), RATE)  # the scale down, as FLAC
    rng = np.random.default_rng(0)
    write_wav(folder / "noise.wav", (0.3 * rng.standard_normal(2 * RATE)).astype(np.float32))
    write_wav(folder / "short.wav", plucked([69], seconds=0.1))
    write_wav(folder / "silence.wav", np.zeros(RATE, np.float32))
    (folder / "corrupt.ogg").write_bytes(b"OggS" + bytes(rng.integers(0, 256, 4000, dtype=np.uint8)))
    (folder / "letter.mp3").write_text("Dear friend, this is not a recording.\n")
    studio = Studio(Workspace(root / "ws").ensure(), installed_host)
    report = studio.catalogue.import_path(folder, "takes")
    return studio, {s.item: s.reason for s in report.skipped}


@needs_transcription
def test_a_recorded_scale_transcribes_to_its_notes(imported: tuple[Studio, dict[str, str]]) -> None:
    studio, _ = imported
    corpus = studio.catalogue.get("takes")
    assert sorted(p.key for p in corpus.pieces) == ["scale.flac.mid", "takes/scale.wav.mid"]
    assert all(p.format == "midi" for p in corpus.pieces)  # the Corpora screen shows it as the MIDI piece it is
    for piece, expected in (
        (corpus.piece("takes/scale.wav.mid"), SCALE),
        (corpus.piece("scale.flac.mid"), SCALE[::-1]),
    ):
        notes = audio.midi_notes_seconds(piece.path)
        assert [n.pitch for n in notes] == expected
        onsets = np.array([n.onset for n in notes])
        assert np.max(np.abs(onsets - NOTE_SECONDS * np.arange(len(expected)))) < 0.05  # mir_eval's onset window


@needs_transcription
def test_each_transcription_keeps_its_source_and_settings(imported: tuple[Studio, dict[str, str]]) -> None:
    studio, _ = imported
    piece = studio.catalogue.get("takes").piece("takes/scale.wav.mid")
    sidecar = json.loads(piece.path.with_suffix(".json").read_text())
    assert sidecar["source_file"] == "scale.wav" and sidecar["source"].endswith("recordings/takes/scale.wav")
    assert sidecar["settings"]["method"] == "pyin" and sidecar["settings"]["max_seconds"] == audio.MAX_AUDIO_SECONDS
    assert sidecar["notes"] == len(SCALE) and sidecar["truncated"] is False
    assert sidecar["file_seconds"] == pytest.approx(len(SCALE) * NOTE_SECONDS, abs=0.01)


@needs_transcription
def test_noise_short_silent_corrupt_and_non_audio_files_are_skipped_with_reasons(
    imported: tuple[Studio, dict[str, str]],
) -> None:
    _, skipped = imported
    assert "no pitched notes found" in skipped["noise.wav"]
    assert "too short (0.10 s; a recording needs at least 0.5 s)" in skipped["short.wav"]
    assert "silent" in skipped["silence.wav"]
    assert "not a readable audio file" in skipped["corrupt.ogg"]
    assert "not a readable audio file" in skipped["letter.mp3"]
    assert all(reason.startswith("not transcribed: ") for reason in skipped.values())
    assert len(skipped) == 5


@needs_transcription
def test_transcriptions_are_cached_by_content_and_settings(imported: tuple[Studio, dict[str, str]]) -> None:
    studio, _ = imported
    cache = studio.workspace.cache_dir / "transcriptions"
    cached = sorted(cache.glob("*.mid"))
    assert len(cached) == 2 and len(list(cache.glob("*.json"))) == 7  # the scales' sidecars, and the 5 reasons
    marked = cached[0].with_suffix(".json")
    marked.write_text(json.dumps({**json.loads(marked.read_text()), "from_cache": True}))
    source = Path(json.loads(marked.read_text())["source"])
    studio.catalogue.import_path(source.parent, "again")  # read again from the cache: the mark comes along
    (piece,) = [p for p in studio.catalogue.get("again").pieces if p.key.endswith(source.name + ".mid")]
    assert json.loads(piece.path.with_suffix(".json").read_text())["from_cache"] is True
    assert piece.path.read_bytes() == cached[0].read_bytes()


def test_without_the_audio_extra_recordings_are_skipped_with_what_to_install(
    studio: Studio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "librosa", None)  # as if it were not installed
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_wav(folder / "tune.wav", plucked(SCALE[:3]))
    write_midi(folder / "tune.mid", SCALE[:3])
    report = studio.catalogue.import_path(folder, "mixed")
    assert report.kept == 1  # the MIDI file
    (skipped,) = report.skipped
    assert skipped.item == "tune.wav" and "install tui-composer[audio]" in skipped.reason


@needs_transcription
def test_a_long_recording_is_read_up_to_the_cap(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", plucked(SCALE))
    recording = audio.read_recording(path, max_seconds=1.0)
    assert recording.truncated and len(recording.samples) == RATE
    assert recording.file_seconds == pytest.approx(len(SCALE) * NOTE_SECONDS)
    assert not audio.read_recording(path).truncated


@pytest.mark.slow
@needs_transcription
def test_a_transcription_cut_at_the_cap_says_so(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", plucked(SCALE))
    settings = audio.TranscriptionSettings(max_seconds=1.0)
    job = audio.TranscriptionJob("long.wav", path, "digest", tmp_path / "long.mid", settings)
    sidecar = audio.transcribe_job(job)
    assert sidecar["truncated"] is True and sidecar["transcribed_seconds"] == pytest.approx(1.0, abs=0.01)
    assert "only the first 1 s were transcribed (MAX_AUDIO_SECONDS)" in sidecar["note"]
    assert [n.pitch for n in audio.midi_notes_seconds(tmp_path / "long.mid")] == SCALE[:3]


# --- rendering -----------------------------------------------------------------------------------------


@needs_rendering
def test_rendering_lasts_as_long_as_the_midi_and_plays_its_pitches(tmp_path: Path) -> None:
    midi_path = write_midi(tmp_path / "fifths.mid", [57, 64, 71], beats=1.0)
    wav = audio.render_wav(midi_path, tmp_path / "fifths.wav")
    samples, rate = wav_samples(wav)
    assert rate == audio.RENDER_RATE
    assert len(samples) == round(mido.MidiFile(midi_path).length * rate) == round(1.5 * rate)
    for index, pitch in enumerate([57, 64, 71]):
        note = samples[int((index * 0.5 + 0.05) * rate) : int((index * 0.5 + 0.45) * rate)]
        spectrum = np.abs(np.fft.rfft(note * np.hanning(len(note))))
        peak = np.fft.rfftfreq(len(note), 1 / rate)[np.argmax(spectrum)]
        assert abs(12 * np.log2(peak / 440) + 69 - pitch) < 0.5  # the loudest partial is the fundamental


def test_the_shipped_soundfont_is_the_one_the_generator_makes() -> None:
    from tui_composer.music.soundfont import build

    shipped = audio.SOUNDFONT.read_bytes()
    assert shipped == build() and len(shipped) < 300_000


def test_rendering_without_the_synthesizer_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tinysoundfont", None)
    problem = audio.rendering_problem()
    assert problem is not None and "pip install --no-deps tinysoundfont" in problem


@needs_rendering
def test_a_sample_exported_from_the_tui_gets_its_wav(tmp_path: Path) -> None:
    from tui_composer.services.sample_files import Sample
    from tui_composer.tui.screens.samples import export_audio, export_samples

    made = tmp_path / "run"
    made.mkdir()
    write_midi(made / "001.mid", SCALE[:4])
    (made / "001.abc").write_text("X:1\nL:1/8\nK:C\nCDEF|\n")
    sample = Sample.from_json(
        {"number": 1, "abc": "X:1", "abc_path": str(made / "001.abc"), "midi_path": str(made / "001.mid")}
    )
    assert export_samples([sample], tmp_path / "out") == [tmp_path / "out" / "001.abc", tmp_path / "out" / "001.mid"]
    written, problems = export_audio([sample], tmp_path / "out")
    assert written == [tmp_path / "out" / "001.wav"] and problems == []
    assert (made / "001.wav").is_file()  # rendered beside its MIDI, kept for the next export
    assert len(wav_samples(written[0])[0]) == round(mido.MidiFile(made / "001.mid").length * audio.RENDER_RATE)
    again = Sample.from_json({"number": 1, "abc_path": str(made / "001.abc"), "audio_path": str(made / "001.wav")})
    assert again.audio_path == made / "001.wav"


def test_nothing_audio_is_imported_by_the_core_modules() -> None:
    code = (
        "import sys, tui_composer.services.corpora, tui_composer.services.sampling, tui_composer.cli.app, "
        "tui_composer.music.audio, tui_composer.tui.screens.samples; "
        "print(sorted(m for m in ('librosa', 'soundfile', 'tinysoundfont', 'numba', 'scipy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@needs_rendering
def test_sample_audio_writes_a_wav_as_long_as_the_midi(tmp_path: Path) -> None:
    from tui_composer.services.sampling import Sample, write_sample_audio

    sample = Sample(number=1, length=8, midi_path=write_midi(tmp_path / "001.mid", SCALE))
    write_sample_audio(sample)
    assert sample.audio_path == tmp_path / "001.wav" and sample.ok
    samples, rate = wav_samples(sample.audio_path)
    assert len(samples) == round(mido.MidiFile(tmp_path / "001.mid").length * rate) == round(len(SCALE) * 0.25 * rate)
    assert np.sqrt(np.mean(samples**2)) > 0.01
    assert sample.to_json()["audio_path"] == str(tmp_path / "001.wav")
    without = Sample(number=2, length=8)  # no MIDI, no audio: nothing to play
    write_sample_audio(without)
    assert without.audio_path is None


def test_sample_audio_without_the_synthesizer_is_refused_before_sampling(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tinysoundfont", None)
    args = ["--workspace", str(studio.workspace.root), "sample", "any-run", "--audio"]
    result = CliRunner().invoke(cli, args, obj=studio.host)
    assert result.exit_code != 0 and "--audio: rendering audio needs tinysoundfont" in result.output


# --- an audio corpus end to end ---------------------------------------------------------------------------


@pytest.mark.slow
@needs_transcription
@needs_rendering
def test_an_audio_corpus_trains_and_samples_with_audio(tmp_path: Path, installed_host: PluginHost) -> None:
    pytest.importorskip("keras")
    from tui_composer.services.training import TrainingRequest, prepare_run, train_run

    folder = tmp_path / "tunes"
    folder.mkdir()
    # three short tunes, played by the project's own renderer: the way a user's recordings would sound
    for number, pitches in enumerate(([67, 69, 71, 72, 74, 72, 71, 69], [62, 66, 69, 74, 69, 66], [60, 64, 67, 72])):
        midi_path = write_midi(tmp_path / f"tune{number}.mid", pitches)
        audio.render_wav(midi_path, folder / f"tune{number}.wav")
    studio = Studio(Workspace(tmp_path / "ws").ensure(), installed_host)
    studio.runs = RunStore(studio.workspace, bundled=None)  # type: ignore[misc]
    report = studio.catalogue.import_path(folder, "recorded")
    assert report.kept == 3, report.skipped
    request = TrainingRequest(
        corpus="recorded", encoder="abc", model="char-lstm", model_params=TINY_MODEL, epochs=1, seed=3, name="heard"
    )
    train_run(studio, prepare_run(studio, request))
    out = tmp_path / "samples"
    args = ["--workspace", str(studio.workspace.root), "sample", "heard", "-n", "3", "--max-length", "150"]
    result = CliRunner().invoke(cli, [*args, "--seed", "2", "--audio", "--out", str(out), "--json"], obj=installed_host)
    assert result.exit_code == 0, result.output
    samples = json.loads(result.output)
    played = [s for s in samples if s["midi_path"]]
    assert played, samples
    for sample in played:
        wav = Path(sample["audio_path"])
        assert wav == out / f"{sample['number']:03d}.wav"
        samples_, rate = wav_samples(wav)
        assert len(samples_) == round(mido.MidiFile(sample["midi_path"]).length * rate)
        assert np.sqrt(np.mean(samples_**2)) > 0.01  # not silent


@pytest.mark.slow
@needs_transcription
@needs_rendering
def test_the_cqt_option_hears_chords(tmp_path: Path) -> None:
    chords = [[60, 64, 67], [65, 69, 72], [67, 71, 74], [60, 64, 67]]  # C, F, G, C: no doubled octaves
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    for chord in chords:
        track += [mido.Message("note_on", note=pitch, velocity=80, time=0) for pitch in chord]
        track += [
            mido.Message("note_off", note=pitch, velocity=0, time=720 if i == 0 else 0) for i, pitch in enumerate(chord)
        ]
    midi.save(tmp_path / "chords.mid")
    recording = audio.Recording(audio.render_midi(tmp_path / "chords.mid", rate=RATE), RATE, 6.0, False)
    notes, _ = audio.transcribe(recording, audio.TranscriptionSettings(method="cqt"))
    heard = [sorted(n.pitch for n in notes if abs(n.onset - 0.75 * i) < 0.05) for i in range(len(chords))]
    assert sum(len(set(h) & set(c)) for h, c in zip(heard, chords, strict=True)) >= 10  # of 12 notes
    assert sum(len(set(h) - set(c)) for h, c in zip(heard, chords, strict=True)) <= 3


@needs_rendering
def test_under_serve_export_delivers_the_files_to_the_browser(studio: Studio, tmp_path: Path) -> None:
    import asyncio

    from tui_composer.services.sample_files import Sample
    from tui_composer.tui.app import ComposerApp
    from tui_composer.tui.screens.samples import SamplesScreen

    delivered: list[tuple[Path, str]] = []

    class ServedApp(ComposerApp):
        """The app as textual-serve runs it; the browser's download is the one part left out."""

        CSS_PATH = str(Path(sys.modules[ComposerApp.__module__].__file__ or "").parent / "app.tcss")

        @property
        def is_web(self) -> bool:
            return True

        def deliver_binary(self, path_or_file: object, **options: object) -> str | None:  # type: ignore[override]
            delivered.append((Path(str(path_or_file)), str(options["mime_type"])))
            return "key"

    write_midi(tmp_path / "001.mid", SCALE[:3])
    (tmp_path / "001.abc").write_text("X:1\nL:1/8\nK:C\nCDE|\n")
    sample = Sample(1, abc="X:1\nL:1/8\nK:C\nCDE|\n", abc_path=tmp_path / "001.abc", midi_path=tmp_path / "001.mid")

    async def export() -> None:
        app = ServedApp(studio)
        async with app.run_test(size=(80, 24)) as pilot:
            await app.switch_mode("samples")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, SamplesScreen)
            screen._ask_export([sample], "sample 1")
            await app.workers.wait_for_complete()
            await pilot.pause()

    asyncio.run(export())
    assert delivered == [
        (tmp_path / "001.abc", "text/vnd.abc"),
        (tmp_path / "001.mid", "audio/midi"),
        (tmp_path / "001.wav", "audio/wav"),  # rendered for the browser, and kept beside the MIDI
    ]
    assert len(wav_samples(tmp_path / "001.wav")[0]) == round(mido.MidiFile(tmp_path / "001.mid").length * 44_100)
