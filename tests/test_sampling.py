"""The sampling service and `tui-composer sample`: files, seeds, primers, failures, read-only runs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pytest
from click.testing import CliRunner
from training_support import TUNES, tiny_corpus, tiny_request

from tui_composer.cli.app import cli
from tui_composer.plugin.contract import EncodeError, Piece, TokenEncoder
from tui_composer.plugin.host import PluginHost
from tui_composer.services.runs import Run, RunStore
from tui_composer.services.sampling import (
    SampleOptions,
    SamplingError,
    encode_primer,
    load_model,
    raw_text,
    sample_run,
    usual_length,
    write_sample,
)
from tui_composer.services.studio import Studio
from tui_composer.services.training import prepare_run, train_run
from tui_composer.services.workspace import Workspace

pytest.importorskip("keras")

PRIMER = "M:6/8\nL:1/8\nK:G\nGAB cBA|GAB c2d|edc BAG|\n"


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, installed_host: PluginHost) -> Studio:
    studio = Studio(Workspace(tmp_path_factory.mktemp("sampling") / "ws").ensure(), installed_host)
    studio.runs = RunStore(studio.workspace, bundled=None)  # type: ignore[misc]
    tiny_corpus(studio, tmp_path_factory.mktemp("tunes"))
    return studio


@pytest.fixture(scope="module")
def runs(studio: Studio) -> dict[str, Run]:
    """One tiny run per encoder, trained one epoch: abc (tokens), midi-events (tokens), piano-roll (frames)."""
    trained = {}
    for encoder in ("abc", "midi-events", "piano-roll"):
        run = prepare_run(studio, tiny_request(encoder=encoder, name=f"tiny-{encoder}", epochs=1))
        train_run(studio, run)
        trained[encoder] = run
    return trained


@pytest.mark.parametrize("encoder", ["abc", "midi-events", "piano-roll"])
def test_every_encoder_samples_abc_and_midi(studio: Studio, runs: dict[str, Run], encoder: str, tmp_path: Path) -> None:
    # A primer tune keeps the barely trained models' output playable; abc repairs a garbled tail.
    # Top-k 3 keeps an untrained piano roll from sounding half its keys at once (slow to convert).
    options = SampleOptions(n=2, max_length=120, seed=1, top_k=3, primer=PRIMER, out=tmp_path)
    samples = sample_run(studio, runs[encoder].name, options)
    assert [s.number for s in samples] == [1, 2]
    for s in samples:
        assert s.ok, s.error
        assert s.abc_path == tmp_path / f"{s.number:03d}.abc" and s.abc_path.read_text() == s.abc
        assert s.abc.startswith("X:")
        midi = mido.MidiFile(s.midi_path)
        assert any(m.type == "note_on" and m.velocity > 0 for track in midi.tracks for m in track)


def test_same_seed_same_samples_and_numbers_go_on(studio: Studio, runs: dict[str, Run], tmp_path: Path) -> None:
    options = SampleOptions(n=3, max_length=80, seed=5, out=tmp_path / "a")
    first = sample_run(studio, "tiny-abc", options)
    again = sample_run(studio, "tiny-abc", SampleOptions(n=3, max_length=80, seed=5, out=tmp_path / "b"))
    other = sample_run(studio, "tiny-abc", SampleOptions(n=3, max_length=80, seed=6, out=tmp_path / "b"))
    assert [s.abc for s in first] == [s.abc for s in again]
    assert [s.abc for s in first] != [s.abc for s in other]
    assert [s.number for s in other] == [4, 5, 6]  # earlier samples in the folder are kept
    assert len(list((tmp_path / "b").glob("*.abc"))) + len(list((tmp_path / "b").glob("*.txt"))) == 6


def test_the_abc_primer_starts_every_sample(studio: Studio, runs: dict[str, Run], tmp_path: Path) -> None:
    samples = sample_run(studio, "tiny-abc", SampleOptions(n=3, max_length=60, primer="M:6/8\nK:G\n", out=tmp_path))
    for s in samples:
        text = s.abc if s.abc is not None else s.text_path.read_text()  # type: ignore[union-attr]
        assert "X:1\nM:6/8\nK:G\n" in text
    with pytest.raises(SamplingError, match="never saw: '€'"):
        sample_run(studio, "tiny-abc", SampleOptions(n=1, primer="K:G\n€", out=tmp_path))


def test_a_frames_primer_is_the_encoders_reading_of_the_tune(runs: dict[str, Run], studio: Studio) -> None:
    encoder, data, _ = load_model(studio, runs["piano-roll"])
    frames = encode_primer(encoder, data, PRIMER)
    piece = Piece(key="p", title="p", format="abc", path=Path("p.abc"), text="X:1\n" + PRIMER)
    assert np.array_equal(frames, encoder.encode(encoder.read(piece)))
    assert frames.shape[1] == data.size and frames.any()
    with pytest.raises(SamplingError, match="not a tune this run's encoder can read"):
        encode_primer(encoder, data, "K:G\n")  # no notes


class NoteLetters(TokenEncoder):
    """The letters of a tune's notes, one character each: single-character symbols that are not ABC text."""

    name = "note-letters"

    def read(self, piece: Piece) -> list[str]:
        body = [line for line in (piece.text or "").splitlines() if not re.match(r"^[A-Za-z]:", line)]
        return [c for c in "".join(body) if c in "ABCDEFGabcdefg"]

    def decode(self, array: np.ndarray) -> Any:
        raise EncodeError("sample", "note letters are not music on their own")


def test_a_primer_is_the_encoders_to_make_not_a_guess_from_its_symbols() -> None:
    # Every symbol is one character, but this is no ABC encoder: the primer is read as a tune.
    letters = NoteLetters()
    letters.fit([list("GABcBAd")])
    primer = encode_primer(letters, letters.data_spec(), "M:6/8\nK:G\nGAB cBA|")
    assert letters.fitted_vocabulary().decode(primer) == list("GABcBA")
    assert raw_text(letters, primer) == "G A B c B A"
    # The abc encoder continues the characters themselves, after the X:1 line every tune began with.
    from tui_composer_plugins.abc.encoder import AbcEncoder

    abc = AbcEncoder()
    abc.fit([list("X:1\nM:6/8\nK:G\nGAB cBA|\n")])
    ids = encode_primer(abc, abc.data_spec(), "M:6/8\nK:G\nGA")
    assert raw_text(abc, ids) == abc.text(ids) == "X:1\nM:6/8\nK:G\nGA"
    with pytest.raises(SamplingError, match="--primer: the primer holds characters the model never saw: 'z'"):
        encode_primer(abc, abc.data_spec(), "K:G\nz")
    from tui_composer_plugins.piano_roll.encoder import PianoRollEncoder

    assert raw_text(PianoRollEncoder(), np.eye(3, dtype=np.uint8)) == "100\n010\n001"  # frames: rows of 0 and 1


def test_a_sample_that_cannot_be_converted_is_kept_with_the_reason(
    studio: Studio, runs: dict[str, Run], tmp_path: Path
) -> None:
    encoder, _, _ = load_model(studio, runs["abc"])
    tune = encoder.encode(encoder.read(Piece("t", "t", "abc", Path("t.abc"), TUNES[0].format(n=1))))[1:-1]
    garbage = encoder.encode(list("|||:::]]]"))[1:-1]
    good, bad = write_sample(encoder, tune, tmp_path, 1), write_sample(encoder, garbage, tmp_path, 2)
    assert good.ok and good.midi_path is not None and good.abc is not None and "GAB cBA" in good.abc
    assert not bad.ok and bad.midi_path is None and "could not be written as MIDI" in (bad.error or "")
    assert bad.abc_path is not None and "% tui-composer: could not be written as MIDI" in bad.abc_path.read_text()


def test_a_read_only_run_samples_into_the_workspace(studio: Studio, runs: dict[str, Run], tmp_path: Path) -> None:
    bundled = tmp_path / "pretrained"
    shutil.copytree(runs["abc"].path, bundled / "shipped", ignore=shutil.ignore_patterns("checkpoints", "samples"))
    store = RunStore(studio.workspace, bundled=bundled)
    reader = Studio(studio.workspace, studio.host)
    reader.runs = store  # type: ignore[misc]
    samples = sample_run(reader, "shipped", SampleOptions(n=1, max_length=40))
    written = samples[0].abc_path or samples[0].text_path
    assert written is not None and written.parent == studio.workspace.root / "samples" / "shipped"
    assert not (bundled / "shipped" / "samples").exists()


def test_sampling_errors_name_the_run_or_option(studio: Studio, runs: dict[str, Run]) -> None:
    with pytest.raises(SamplingError, match="no run named 'missing'"):
        sample_run(studio, "missing", SampleOptions())
    with pytest.raises(SamplingError, match="--temperature 0 is not valid"):
        sample_run(studio, "tiny-abc", SampleOptions(temperature=0))
    fresh = prepare_run(studio, tiny_request(name="untrained"))
    with pytest.raises(SamplingError, match="run 'untrained' has no model yet"):
        sample_run(studio, fresh.name, SampleOptions())


def test_cli_sample_prints_json(studio: Studio, runs: dict[str, Run], tmp_path: Path) -> None:
    args = ["--workspace", str(studio.workspace.root), "sample", "tiny-abc", "-n", "2", "--max-length", "40"]
    result = CliRunner().invoke(cli, [*args, "--json", "--out", str(tmp_path)], obj=studio.host)
    assert result.exit_code == 0, result.output
    listed: list[dict[str, Any]] = json.loads(result.output)
    assert [s["number"] for s in listed] == [1, 2]
    for s in listed:
        assert set(s) >= {"abc", "abc_path", "midi_path", "text_path", "error", "ok"}
        assert Path(s["abc_path"] or s["text_path"]).parent == tmp_path
    result = CliRunner().invoke(cli, [*args[:3], "no-such-run"], obj=studio.host)
    assert result.exit_code == 1 and "no run named 'no-such-run'" in result.output


def test_a_frames_run_samples_pieces_as_long_as_its_training_pieces(
    studio: Studio, runs: dict[str, Run], tmp_path: Path
) -> None:
    # Frames have no end-of-tune: at the old 1,000-frame default, chorales of 16 bars ran on for 62 and drifted
    # into clusters. With no --max-length a frames run samples its training pieces' median length.
    run = runs["piano-roll"]
    encoder, _, _ = load_model(studio, run)
    train = studio.catalogue.get("tiny").splits()["train"]
    lengths = sorted(len(encoder.encode(encoder.read(piece))) for piece in train)
    median = int(np.median(lengths))
    assert 0 < median < 1000
    assert usual_length(run) == median
    samples = sample_run(studio, run.name, SampleOptions(n=2, seed=1, top_k=3, primer=PRIMER, out=tmp_path))
    assert [s.length for s in samples] == [median, median]
    # Asked for, a length is kept; a tokens run, or a frames run trained before the median was kept, gets 1000.
    asked = sample_run(studio, run.name, SampleOptions(n=1, max_length=40, top_k=3, out=tmp_path))
    assert asked[0].length == 40
    assert usual_length(runs["abc"]) == 1000
    old = tmp_path / "old"
    shutil.copytree(run.path, old, ignore=shutil.ignore_patterns("checkpoints", "samples"))
    records = [json.loads(line) for line in (old / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("median_length", None)
    (old / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert usual_length(Run(old)) == 1000


def test_a_length_beyond_the_caps_is_refused_once_the_runs_own_is_known(
    studio: Studio, runs: dict[str, Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUI_COMPOSER_MAX_LENGTH", "5")
    with pytest.raises(SamplingError, match=r"--max-length \d+ is above the cap of 5 .*TUI_COMPOSER_MAX_LENGTH"):
        sample_run(studio, runs["piano-roll"].name, SampleOptions(n=1))
