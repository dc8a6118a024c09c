"""Audio round trip: O'Neill's tunes played by the project's renderer, imported back as a corpus of recordings.

Each tune (music21's `oneills` corpus, spread over the collection) is exported to MIDI
(`export.score_to_midi`, repeats played out) and rendered to WAV (`audio.render_wav`, the shipped
piano SoundFont); the folder of WAVs is imported with `corpus import` (transcription in parallel,
cold cache) and every transcription is compared with the MIDI it came from, using mir_eval:
onsets alone (50 ms window) and notes with onset and pitch (offsets ignored), pitch within 50 cents
(the exact semitone) and within 100 cents. Goals (issue #16): onset F1 >= 0.9, and transcription
faster than real time on 2 cores.

Run from the repository root: .venv/bin/python benchmarks/audio_roundtrip.py [--tunes 50]
Needs the audio extra and tinysoundfont (`make test` installs both).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from tui_composer.music import audio
from tui_composer.music.export import parse_piece, score_to_midi
from tui_composer.services.parallel import worker_count
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import Workspace

ONSET_TOLERANCE = 0.05  # seconds, mir_eval's default


def note_arrays(notes: list[audio.TranscribedNote]) -> tuple[np.ndarray, np.ndarray]:
    """mir_eval's (intervals, Hz); a zero-length note (a grace note) gets 1 ms so that it is valid."""
    intervals = np.array([[n.onset, max(n.offset, n.onset + 0.001)] for n in notes]).reshape(-1, 2)
    return intervals, 440.0 * 2 ** ((np.array([n.pitch for n in notes], float) - 69) / 12)


def scores(reference: list[audio.TranscribedNote], estimate: list[audio.TranscribedNote]) -> dict[str, float]:
    import mir_eval

    ref_intervals, ref_pitches = note_arrays(reference)
    est_intervals, est_pitches = note_arrays(estimate)
    onset = mir_eval.transcription.onset_precision_recall_f1(
        ref_intervals, est_intervals, onset_tolerance=ONSET_TOLERANCE
    )
    result = {"onset_p": onset[0], "onset_r": onset[1], "onset_f1": onset[2]}
    for cents in (50, 100):
        note = mir_eval.transcription.precision_recall_f1_overlap(
            ref_intervals, ref_pitches, est_intervals, est_pitches, pitch_tolerance=cents, offset_ratio=None
        )
        result[f"note{cents}_f1"] = note[2]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tunes", type=int, default=50)
    args = parser.parse_args()
    problem = audio.transcription_problem() or audio.rendering_problem()
    if problem:
        raise SystemExit(problem)
    with tempfile.TemporaryDirectory(prefix="audio-roundtrip-") as folder:
        root = Path(folder)
        studio = Studio(Workspace(root / "ws").ensure())
        tunes = studio.catalogue.get("oneills").pieces
        chosen = tunes[:: max(1, len(tunes) // args.tunes)][: args.tunes]
        recordings = root / "recordings"
        references = root / "midi"
        recordings.mkdir()
        references.mkdir()
        started = time.perf_counter()
        names: dict[str, str] = {}
        for number, tune in enumerate(chosen, start=1):
            name = f"{number:03d}"
            score_to_midi(parse_piece(tune), references / f"{name}.mid")
            audio.render_wav(references / f"{name}.mid", recordings / f"{name}.wav")
            names[name] = f"{tune.key} {tune.title}"
        seconds_audio = sum(audio.read_recording(p).file_seconds for p in sorted(recordings.glob("*.wav")))
        print(
            f"rendered {len(chosen)} tunes ({seconds_audio / 60:.1f} minutes of audio) "
            f"in {time.perf_counter() - started:.0f} s"
        )
        started = time.perf_counter()
        report = studio.catalogue.import_path(recordings, "roundtrip")
        import_seconds = time.perf_counter() - started
        for item in report.skipped:
            print(f"  skipped {item.item}: {item.reason}")
        corpus = studio.catalogue.get("roundtrip")
        rows = []
        for piece in sorted(corpus.pieces, key=lambda p: p.key):
            name = piece.key.removesuffix(".wav.mid")
            reference = audio.midi_notes_seconds(references / f"{name}.mid")
            row = scores(reference, audio.midi_notes_seconds(piece.path))
            rows.append(row)
            print(
                f"  {name} {names[name][:40]:40} notes {len(reference):4d}  onset F1 {row['onset_f1']:.3f}  "
                f"note F1 {row['note50_f1']:.3f} (50 cents) {row['note100_f1']:.3f} (100 cents)"
            )
        mean = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]} if rows else {}
        speed = seconds_audio / import_seconds
        print(
            f"transcribed {report.kept} of {len(chosen)} recordings in {import_seconds:.1f} s on {worker_count()} cores"
        )
        print(
            f"onset P {mean.get('onset_p', 0):.3f} R {mean.get('onset_r', 0):.3f} F1 {mean.get('onset_f1', 0):.3f} "
            f"(goal >= 0.9: {'ok' if mean.get('onset_f1', 0) >= 0.9 else 'MISSED'}); note F1 with pitch "
            f"{mean.get('note50_f1', 0):.3f} (50 cents), {mean.get('note100_f1', 0):.3f} (100 cents)"
        )
        print(
            f"speed: {speed:.1f} seconds of audio per second, import included "
            f"(goal faster than real time: {'ok' if speed > 1 else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
