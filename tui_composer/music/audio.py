"""Audio in and out: recordings transcribed to MIDI pieces, and MIDI rendered to WAV.

In: `transcribe_recordings` turns .wav, .flac, .ogg and .mp3 files into MIDI files (written with mido)
with a sidecar JSON naming the source file and the transcription settings. The default method is
monophonic: librosa's pYIN pitch track, split into notes at librosa's detected onsets (a repeated
pitch needs one) and where the pitch moves to another semitone. `method="cqt"` is a simple polyphonic
option: the peaks of a constant-Q spectrum at each onset (best on plucked or struck chords, weak on
octaves). Each file is read up to `MAX_AUDIO_SECONDS` (the rest is left out and the sidecar says so),
analysed in blocks of `BLOCK_SECONDS` so memory stays bounded, in parallel and under a timeout; the
results are cached in the workspace by the file's content and the settings.

Out: `render_midi` plays a MIDI file through TinySoundFont with the project's own piano-like
SoundFont (`tui_composer.music.soundfont`); the audio lasts exactly as long as the MIDI file.

librosa, soundfile and tinysoundfont come with the `audio` extra and are imported only here, inside
the functions that need them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import itertools
import json
import os
import shutil
import stat
import wave
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tui_composer.plugin.contract import EncodeError, Piece
from tui_composer.services.parallel import Outcome, map_bounded, pool_context
from tui_composer.services.workspace import read_json, write_atomic, write_json

if TYPE_CHECKING:
    import mido

# librosa's pYIN runs numba code compiled on first use. Compiled for this CPU's own model, llvmlite 0.50
# segfaults on some hosts (a fresh install here crashed where a warm cache hid it); generic code is safe.
os.environ.setdefault("NUMBA_CPU_NAME", "generic")

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
MAX_AUDIO_SECONDS = 600.0  # per file: a longer recording is transcribed up to here
MIN_AUDIO_SECONDS = 0.5
BLOCK_SECONDS = 20.0  # pYIN slows down and its memory grows with its input: analyse 20 s at a time
TRANSCRIBE_TIMEOUT = 600.0  # per file, in its worker process
ANALYSIS_RATE = 22_050
OVERTONES = (12, 19, 24, 28, 31, 34, 36)  # semitones from a fundamental to its 2nd..8th partials
CQT_RISE_DB = 6.0  # cqt: a pitch struck at an onset is this much louder than just before it
SILENCE_DBFS = -60.0  # a recording whose loudest moment is quieter than this is silent
RENDER_RATE = 44_100
MAX_RENDER_SECONDS = 1800.0  # 30 minutes of 16-bit mono is 160 MB
SOUNDFONT = Path(__file__).parent / "soundfonts" / "tui-piano.sf2"
SIDECAR_SUFFIX = ".json"
DRUM_CHANNEL = 9
TICKS_PER_BEAT = 480
INSTALL_AUDIO = "install tui-composer[audio] (`pip install 'tui-composer[audio]'`, or `make run`)"
INSTALL_SYNTH = (
    "install the synthesizer with `pip install --no-deps tinysoundfont` (`make run` does; --no-deps leaves "
    "out PyAudio, which only live playback needs)"
)


class AudioError(Exception):
    """Audio that can't be read, transcribed or rendered; the message names the file and what to do."""


# --- availability --------------------------------------------------------------------------------------


def transcription_problem() -> str | None:
    """Why recordings can't be transcribed here (the `audio` extra is missing), or None."""
    missing = [name for name in ("librosa", "soundfile") if not _installed(name)]
    return f"audio needs {' and '.join(missing)}: {INSTALL_AUDIO}" if missing else None


def rendering_problem() -> str | None:
    """Why MIDI can't be rendered to audio here (no tinysoundfont, or the SoundFont is missing), or None."""
    if not _installed("tinysoundfont"):
        return f"rendering audio needs tinysoundfont: {INSTALL_SYNTH}"
    if not SOUNDFONT.is_file():
        return f"the SoundFont {SOUNDFONT} is missing: reinstall tui-composer"
    return None


def _installed(module: str) -> bool:
    """Whether a module can be imported, without importing it (librosa alone takes seconds)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: blocked in sys.modules
        return False


def is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


# --- transcription settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TranscriptionSettings:
    """How recordings become notes; every field is saved in the sidecar and keys the cache."""

    method: str = "pyin"  # "pyin": one melody line; "cqt": chords, from constant-Q peaks at onsets
    lowest: str = "C2"  # the pitch range searched
    highest: str = "C7"
    frame_length: int = 2048  # samples at ANALYSIS_RATE (93 ms): two periods of the lowest pitch
    hop_length: int = 256  # 11.6 ms between frames
    pitch_resolution: float = 0.25  # semitones between the pitch tracker's candidate pitches
    min_note_seconds: float = 0.05  # shorter blips are dropped
    onset_delta: float = 0.07  # how far above its neighbourhood an onset must stand (librosa's peak picking)
    cqt_threshold_db: float = -30.0  # cqt: a peak this far below the frame's loudest is not a note
    max_seconds: float = MAX_AUDIO_SECONDS
    version: int = 1  # bump when the algorithm changes: cached transcriptions are redone

    METHODS = ("pyin", "cqt")

    def __post_init__(self) -> None:
        if self.method not in self.METHODS:
            raise ValueError(f"unknown transcription method {self.method!r}; expected one of {', '.join(self.METHODS)}")

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TranscribedNote:
    onset: float  # seconds
    offset: float
    pitch: int  # MIDI
    velocity: int


@dataclass(frozen=True)
class Recording:
    """Audio read for analysis: mono at ANALYSIS_RATE, and how much of the file it is."""

    samples: np.ndarray
    rate: int
    file_seconds: float
    truncated: bool


# --- reading audio --------------------------------------------------------------------------------------


def read_recording(path: Path, max_seconds: float = MAX_AUDIO_SECONDS, name: str | None = None) -> Recording:
    """The first `max_seconds` of an audio file, mixed to mono and resampled; AudioError says what is wrong."""
    import librosa
    import soundfile

    label = name or path.name
    try:
        with _open_regular(path, label) as handle, soundfile.SoundFile(handle) as audio:
            rate = audio.samplerate
            frames = audio.frames
            wanted = int(min(frames, max_seconds * rate)) if frames > 0 else int(max_seconds * rate)
            data = audio.read(frames=wanted, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        detail = str(error).split(":")[-1].strip() or type(error).__name__
        raise AudioError(f"{label}: not a readable audio file ({detail}); is it a real .wav/.flac/.ogg/.mp3?") from None
    mono = data.mean(axis=1) if len(data) else np.zeros(0, np.float32)
    file_seconds = frames / rate if frames > 0 else len(mono) / rate
    if rate != ANALYSIS_RATE and len(mono):
        mono = librosa.resample(mono, orig_sr=rate, target_sr=ANALYSIS_RATE)
    return Recording(np.ascontiguousarray(mono, np.float32), ANALYSIS_RATE, file_seconds, frames > len(data))


def _open_regular(path: Path, label: str) -> io.BufferedReader:
    """Open a regular file only: a FIFO put in a recording's place must not block a worker."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise AudioError(f"{label}: unreadable ({error.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise AudioError(f"{label}: not a regular file")
    return os.fdopen(fd, "rb")


def check_recording(recording: Recording, name: str) -> None:
    """Refuse a recording that is too short or silent, saying so."""
    seconds = len(recording.samples) / recording.rate
    if seconds < MIN_AUDIO_SECONDS:
        raise AudioError(f"{name}: too short ({seconds:.2f} s; a recording needs at least {MIN_AUDIO_SECONDS:g} s)")
    peak = float(np.max(np.abs(recording.samples)))
    if peak <= 0 or 20 * np.log10(peak) < SILENCE_DBFS:
        raise AudioError(f"{name}: silent (nothing louder than {SILENCE_DBFS:g} dBFS)")


# --- transcription --------------------------------------------------------------------------------------


def transcribe(recording: Recording, settings: TranscriptionSettings) -> tuple[list[TranscribedNote], float]:
    """The notes of a recording and its estimated tempo in beats per minute."""
    import librosa

    y = recording.samples / max(1e-9, float(np.max(np.abs(recording.samples))))  # levels relative to the peak
    sr = recording.rate
    hop = settings.hop_length
    envelope = blockwise(y, sr, hop, lambda block: librosa.onset.onset_strength(y=block, sr=sr, hop_length=hop))
    onsets = librosa.onset.onset_detect(
        onset_envelope=envelope, sr=sr, hop_length=hop, delta=settings.onset_delta, backtrack=False, units="frames"
    )
    loudness = _loudness(y, hop, len(envelope))
    if settings.method == "cqt":
        notes = _chord_notes(y, sr, onsets, loudness, settings)
    else:
        notes = _melody_notes(y, sr, onsets, loudness, settings)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=envelope, sr=sr, hop_length=hop))[0])
    return notes, float(np.clip(tempo if np.isfinite(tempo) and tempo > 0 else 120.0, 40.0, 240.0))


def blockwise(y: np.ndarray, sr: int, hop: int, analyse: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`analyse` (frames on the last axis, one per `hop`) over BLOCK_SECONDS at a time, stitched together.

    Each block is analysed with a second of its neighbours on both sides (a pitch track's smoothing and
    a spectrum's window need them), whose frames are then dropped: memory stays that of one block.
    """
    block = int(BLOCK_SECONDS * sr) // hop * hop
    context = sr // hop * hop
    frames = 1 + len(y) // hop
    parts = []
    for start in range(0, len(y), block):
        low = max(0, start - context)
        values = np.asarray(analyse(y[low : start + block + context]))
        first = (start - low) // hop
        parts.append(values[..., first : first + min(block // hop, frames - start // hop)])
    stitched = np.concatenate(parts, axis=-1)
    if stitched.shape[-1] < frames:  # the last block's analysis can stop a frame short
        pad = [(0, 0)] * (stitched.ndim - 1) + [(0, frames - stitched.shape[-1])]
        stitched = np.pad(stitched, pad, mode="edge")
    return stitched


def _loudness(y: np.ndarray, hop: int, frames: int) -> np.ndarray:
    """RMS level in dB per hop (0 dB: the recording's peak), without framing the whole signal."""
    whole = len(y) // hop * hop
    rms = np.sqrt(np.mean(np.square(y[:whole].reshape(-1, hop)), axis=1)) if whole else np.zeros(0)
    levels = 20 * np.log10(np.maximum(rms, 1e-5))
    return np.pad(levels, (0, max(0, frames - len(levels))), constant_values=-100.0)


def pitch_track(y: np.ndarray, sr: int, settings: TranscriptionSettings) -> np.ndarray:
    """pYIN's MIDI pitch per frame (NaN where unvoiced), a block at a time to bound memory."""
    import librosa

    def track(block: np.ndarray) -> np.ndarray:
        f0, _, _ = librosa.pyin(
            block,
            fmin=float(librosa.note_to_hz(settings.lowest)),
            fmax=float(librosa.note_to_hz(settings.highest)),
            sr=sr,
            frame_length=settings.frame_length,
            hop_length=settings.hop_length,
            resolution=settings.pitch_resolution,  # in semitones
        )
        return np.asarray(librosa.hz_to_midi(f0))

    return blockwise(y, sr, settings.hop_length, track)


def _melody_notes(
    y: np.ndarray, sr: int, onsets: np.ndarray, loudness: np.ndarray, settings: TranscriptionSettings
) -> list[TranscribedNote]:
    """One line of notes: cut at every onset and wherever the pitch moves to another semitone.

    pYIN's window reaches half a frame ahead, so its pitch changes come up to a frame early: a change
    that close to an onset is the onset's note, not a note of its own.
    """
    track = pitch_track(y, sr, settings)
    frames = len(track)
    semitones = _despeckle(np.where(np.isnan(track), -1, np.round(np.nan_to_num(track, nan=-1.0))).astype(int))
    near = settings.frame_length // settings.hop_length  # a frame's reach, in hops
    onset_frames = np.unique(np.clip(onsets, 0, frames - 1))
    changes = np.flatnonzero(semitones[1:] != semitones[:-1]) + 1
    if len(onset_frames):
        distance = np.min(np.abs(changes[:, None] - onset_frames[None, :]), axis=1) if len(changes) else changes
        changes = changes[distance > near]
    bounds = np.unique(np.concatenate([[0, frames], onset_frames, changes])).astype(int)
    struck = set(onset_frames.tolist())
    seconds = settings.hop_length / sr
    min_frames = max(1, round(settings.min_note_seconds / seconds))
    notes: list[TranscribedNote] = []
    for start, end in itertools.pairwise(bounds):
        voiced = semitones[start:end][semitones[start:end] >= 0]
        if len(voiced) < max(min_frames, (end - start) // 2):
            continue  # mostly unpitched: a rest, a breath, noise
        values, counts = np.unique(voiced, return_counts=True)
        pitch = int(values[np.argmax(counts)])
        last = start + int(np.flatnonzero(semitones[start:end] == pitch)[-1]) + 1
        if notes and notes[-1].pitch == pitch and start not in struck and notes[-1].offset >= start * seconds - 1e-9:
            notes[-1] = replace(notes[-1], offset=last * seconds)  # the same pitch, not struck again: held on
            continue
        notes.append(TranscribedNote(start * seconds, last * seconds, pitch, _velocity(loudness, start, last)))
    return notes


def _despeckle(semitones: np.ndarray, width: int = 2) -> np.ndarray:
    """Runs shorter than `width` frames take their left neighbour's pitch (pYIN flickers at note edges)."""
    cleaned = semitones.copy()
    change = np.flatnonzero(np.diff(cleaned)) + 1
    bounds = [0, *change.tolist(), len(cleaned)]
    for start, end in itertools.pairwise(bounds):
        if end - start < width and start > 0:
            cleaned[start:end] = cleaned[start - 1]
    return cleaned


def _chord_notes(
    y: np.ndarray, sr: int, onsets: np.ndarray, loudness: np.ndarray, settings: TranscriptionSettings
) -> list[TranscribedNote]:
    """Chords: at each onset, the semitones whose constant-Q energy peaks and rose with the attack
    (notes still ringing from before are not struck again; overtones of a louder new note are left out)."""
    import librosa

    low = int(librosa.note_to_midi(settings.lowest))
    high = int(librosa.note_to_midi(settings.highest))
    cqt = blockwise(
        y,
        sr,
        settings.hop_length,
        lambda block: np.abs(
            librosa.cqt(
                block, sr=sr, hop_length=settings.hop_length, fmin=librosa.midi_to_hz(low), n_bins=high - low + 1
            )
        ),
    )
    db = librosa.amplitude_to_db(cqt, ref=np.max)
    seconds = settings.hop_length / sr
    struck = [int(o) for o in onsets]
    if not struck or struck[0] > 3:
        struck.insert(0, 0)  # a chord at the very start has no rise for the onset detector to see
    notes: list[TranscribedNote] = []
    for start, end in itertools.pairwise([*struck, db.shape[1]]):
        if end - start < 2:
            continue
        spectrum = db[:, start + 1 : min(end, start + 6)].mean(axis=1)  # just after the attack
        before = db[:, max(0, start - 4) : max(0, start - 1)]
        rise = spectrum - (before.max(axis=1) if before.shape[1] else np.full(len(spectrum), -120.0))
        floor = max(float(spectrum.max()) + settings.cqt_threshold_db, -80.0)
        peaks = [
            b
            for b in range(len(spectrum))
            if spectrum[b] > floor
            and rise[b] > CQT_RISE_DB
            and spectrum[b] >= spectrum[max(0, b - 1)]
            and spectrum[b] >= spectrum[min(len(spectrum) - 1, b + 1)]
        ]
        chosen: list[int] = []
        for b in sorted(peaks, key=lambda b: -spectrum[b]):
            # a louder new note's 2nd to 8th partials (an octave, a twelfth, ...) are not notes of their own
            if not any(b - c in OVERTONES for c in chosen):
                chosen.append(b)
        for b in sorted(chosen):
            # the note lasts while its bin stays within 20 dB of its attack
            alive = np.flatnonzero(db[b, start:end] < spectrum[b] - 20)
            stop = start + (int(alive[alive > 2][0]) if np.any(alive > 2) else end - start)
            if (stop - start) * seconds >= settings.min_note_seconds:
                velocity = _velocity(loudness, start, stop)
                notes.append(TranscribedNote(start * seconds, stop * seconds, low + b, velocity))
    return notes


def _velocity(loudness: np.ndarray, start: int, end: int) -> int:
    """MIDI velocity from the note's loudest frame: 0 dB (the recording's peak) is 110, -40 dB is 30."""
    level = float(np.max(loudness[start : max(start + 1, min(end, len(loudness)))])) if len(loudness) else 0.0
    return int(np.clip(110 + 2 * level, 20, 127))


def notes_to_midi(notes: Sequence[TranscribedNote], tempo: float) -> mido.MidiFile:
    """A one-track MIDI file of the notes at their times; the tempo puts its beats on the recording's."""
    import mido

    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0))
    track.append(mido.Message("program_change", program=0, time=0))
    ticks_per_second = tempo / 60 * TICKS_PER_BEAT
    events = sorted(
        [(round(n.offset * ticks_per_second), 0, n.pitch, 0) for n in notes]
        + [(round(n.onset * ticks_per_second), 1, n.pitch, n.velocity) for n in notes]
    )  # at one tick the releases come before the strikes
    now = 0
    for tick, strike, pitch, velocity in events:
        kind = "note_on" if strike else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=velocity if strike else 0, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return midi


# --- one file, in a worker --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TranscriptionJob:
    """One recording to transcribe into `target` (a .mid in the cache; its sidecar goes beside it)."""

    key: str
    source: Path
    digest: str
    target: Path
    settings: TranscriptionSettings


def sidecar_path(midi_path: Path) -> Path:
    return midi_path.with_suffix(SIDECAR_SUFFIX)


def transcribe_job(job: TranscriptionJob) -> dict[str, Any]:
    """Read, check and transcribe one recording; write its MIDI and sidecar; EncodeError names the reason."""
    try:
        recording = read_recording(job.source, job.settings.max_seconds, job.key)
        check_recording(recording, job.key)
        notes, tempo = transcribe(recording, job.settings)
    except AudioError as error:
        raise EncodeError(job.key, str(error).removeprefix(f"{job.key}: ")) from None
    if not notes:
        low, high = job.settings.lowest, job.settings.highest
        raise EncodeError(job.key, f"no pitched notes found (noise, or pitches outside {low}..{high}?)")
    buffer = io.BytesIO()
    notes_to_midi(notes, tempo).save(file=buffer)
    analysed = len(recording.samples) / recording.rate
    sidecar = {
        "source": str(job.source),
        "source_file": job.source.name,
        "sha256": job.digest,
        "file_seconds": round(recording.file_seconds, 3),
        "transcribed_seconds": round(analysed, 3),
        "truncated": recording.truncated,
        "note": (
            f"only the first {job.settings.max_seconds:g} s were transcribed (MAX_AUDIO_SECONDS)"
            if recording.truncated
            else ""
        ),
        "notes": len(notes),
        "tempo_bpm": round(tempo, 2),
        "settings": asdict(job.settings),
        "librosa": importlib.metadata.version("librosa"),
    }
    write_atomic(job.target, buffer.getvalue())
    write_json(sidecar_path(job.target), sidecar)
    return sidecar


# --- many files, cached ------------------------------------------------------------------------------------


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def transcribe_recordings(
    recordings: Sequence[Piece], cache: Path, settings: TranscriptionSettings | None = None
) -> list[Outcome[Piece]]:
    """For each recording, a MIDI piece (keyed `KEY.mid`, its path in the cache) or the reason it was skipped.

    Transcriptions and skip reasons are cached under `cache` by the file's digest and the settings;
    the rest run in parallel, one file per worker, each under TRANSCRIBE_TIMEOUT.
    """
    settings = settings or TranscriptionSettings()
    problem = transcription_problem()
    if problem:
        return [Outcome(error=problem) for _ in recordings]
    outcomes: dict[int, Outcome[Piece]] = {}
    jobs: list[tuple[int, TranscriptionJob]] = []
    for index, recording in enumerate(recordings):
        try:
            digest = file_digest(recording.path)
        except OSError as error:
            outcomes[index] = Outcome(error=f"unreadable: {error.strerror}")
            continue
        target = cache / f"{digest[:32]}-{settings.key()}.mid"
        cached = read_json(sidecar_path(target))
        if isinstance(cached, dict) and cached.get("skipped"):
            outcomes[index] = Outcome(error=str(cached["skipped"]))
        elif isinstance(cached, dict) and target.is_file():
            outcomes[index] = Outcome(value=_transcribed_piece(recording, target))
        else:
            jobs.append((index, TranscriptionJob(recording.key, recording.path, digest, target, settings)))
    broken = compiled_once(settings) if jobs else None
    if broken:
        for index, _ in jobs:
            outcomes[index] = Outcome(error=broken)
        jobs = []
    results = map_bounded(transcribe_job, [job for _, job in jobs], timeout=TRANSCRIBE_TIMEOUT, chunk_size=1)
    for (index, job), result in zip(jobs, results, strict=True):
        if result.ok:
            outcomes[index] = Outcome(value=_transcribed_piece(recordings[index], job.target))
            continue
        reason = result.error or "failed"
        if reason.startswith("timed out"):
            reason = f"transcription {reason} (TRANSCRIBE_TIMEOUT); cut the recording into shorter files"
        elif not reason.startswith("worker failed"):
            write_json(sidecar_path(job.target), {"skipped": reason, "source": str(job.source)})  # cached too
        outcomes[index] = Outcome(error=reason)
    return [outcomes[index] for index in range(len(recordings))]


def compiled_once(settings: TranscriptionSettings) -> str | None:
    """Compile (or load) librosa's numba code in one process of its own before the workers start; None, or
    why transcription can't run here.

    Workers that compile the same numba gufunc at once can leave its two cache files from two processes, and
    every later load of them crashes the process (numba issue 10128: a fresh install's first import here,
    then every transcription "worker failed: BrokenProcessPool"). Compiled once first, the workers only load.
    In a process of its own, because a cache damaged before would crash this one too.
    """
    with ProcessPoolExecutor(1, mp_context=pool_context()) as pool:
        try:
            pool.submit(_transcribe_a_tone, settings).result(timeout=TRANSCRIBE_TIMEOUT)
        except Exception as error:  # noqa: BLE001 - the process crashed (or timed out): said for every file
            import librosa

            folder = Path(librosa.__file__).parent
            return (
                f"librosa's compiled code crashed on a test tone ({type(error).__name__}); its "
                f"numba cache may be damaged (numba issue 10128): delete the __pycache__ folders under {folder} "
                "or set NUMBA_CACHE_DIR to an empty folder, then import again"
            )
    return None


def _transcribe_a_tone(settings: TranscriptionSettings) -> int:
    rate = ANALYSIS_RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    notes, _ = transcribe(Recording(tone, rate, 1.0, False), settings)
    return len(notes)


def _transcribed_piece(recording: Piece, midi_path: Path) -> Piece:
    return Piece(key=f"{recording.key}.mid", title=recording.title, format="midi", path=midi_path)


def store_transcription(midi_path: Path, destination: Path, source: Path) -> None:
    """Copy a cached transcription and its sidecar into a corpus, the sidecar naming this `source`."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(midi_path, destination)
    sidecar = read_json(sidecar_path(midi_path)) or {}
    write_json(sidecar_path(destination), {**sidecar, "source": str(source), "source_file": source.name})


# --- rendering ------------------------------------------------------------------------------------------------


def render_midi(midi_path: Path, *, rate: int = RENDER_RATE, soundfont: Path = SOUNDFONT) -> np.ndarray:
    """The MIDI file played on the shipped piano: mono float32 samples, exactly as long as the MIDI file.

    Every channel plays the piano (drums on channel 10 are left out); program changes are ignored.
    AudioError names the file when it can't be read or is longer than MAX_RENDER_SECONDS.
    """
    import mido

    problem = rendering_problem()
    if problem:
        raise AudioError(problem)
    import tinysoundfont

    try:
        midi = mido.MidiFile(midi_path)
        length = midi.length
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as error:
        raise AudioError(f"{midi_path.name}: not a readable MIDI file ({error})") from None
    if length > MAX_RENDER_SECONDS:
        raise AudioError(
            f"{midi_path.name} lasts {length / 60:.0f} minutes; audio is rendered up to "
            f"{MAX_RENDER_SECONDS / 60:.0f} minutes (MAX_RENDER_SECONDS)"
        )
    synth = tinysoundfont.Synth(samplerate=rate)
    font = synth.sfload(str(soundfont))
    for channel in range(16):
        synth.program_select(channel, font, 0, 0)
    total = round(length * rate)
    stereo = np.zeros((total, 2), np.float32)
    position = 0
    clock = 0.0
    for message in midi:  # merged tracks, `time` in seconds since the previous message
        clock += message.time
        until = min(total, round(clock * rate))
        if until > position:
            stereo[position:until] = _generate(synth, until - position)
            position = until
        _play(synth, message)
    if total > position:
        stereo[position:] = _generate(synth, total - position)
    mono = stereo.mean(axis=1)
    fade = min(len(mono), rate // 100)  # 10 ms: a note still sounding at the end stops without a click
    if fade:
        mono[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    peak = float(np.max(np.abs(mono))) if len(mono) else 0.0
    return mono * (0.9 / peak) if peak > 0.9 else mono


def _generate(synth: Any, count: int) -> np.ndarray:
    return np.frombuffer(synth.generate_simple(count), np.float32).reshape(-1, 2)


def _play(synth: Any, message: Any) -> None:
    if message.is_meta or getattr(message, "channel", None) == DRUM_CHANNEL:
        return
    if message.type == "note_on" and message.velocity > 0:
        synth.noteon(message.channel, message.note, message.velocity)
    elif message.type in ("note_on", "note_off"):
        synth.noteoff(message.channel, message.note)
    elif message.type == "control_change":
        synth.control_change(message.channel, message.control, message.value)
    elif message.type == "pitchwheel":
        synth.pitchbend(message.channel, message.pitch + 8192)


def wav_bytes(samples: np.ndarray, rate: int = RENDER_RATE) -> bytes:
    """16-bit mono PCM WAV (the standard library's `wave`: no extra needed to write it)."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def render_wav(midi_path: Path, wav_path: Path, *, rate: int = RENDER_RATE) -> Path:
    """Render a MIDI file to a WAV file beside it (written atomically); AudioError says why not."""
    write_atomic(wav_path, wav_bytes(render_midi(midi_path, rate=rate), rate))
    return wav_path


def midi_notes_seconds(midi_path: Path) -> list[TranscribedNote]:
    """The notes of a MIDI file with times in seconds (the tempo map applied), drums left out."""
    import mido

    clock = 0.0
    sounding: dict[tuple[int, int], list[tuple[float, int]]] = {}
    notes: list[TranscribedNote] = []
    for message in mido.MidiFile(midi_path):
        clock += message.time
        if message.type not in ("note_on", "note_off") or message.channel == DRUM_CHANNEL:
            continue
        key = (message.channel, message.note)
        if message.type == "note_on" and message.velocity > 0:
            sounding.setdefault(key, []).append((clock, message.velocity))
        elif sounding.get(key):
            start, velocity = sounding[key].pop(0)
            notes.append(TranscribedNote(start, clock, message.note, velocity))
    return sorted(notes, key=lambda n: (n.onset, n.pitch))
