"""`tui-composer check`: parses, writes MIDI, bars on the meter, and novelty against a run's corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from training_support import tiny_corpus

from tui_composer.cli.app import cli
from tui_composer.music.checking import (
    COPY_BARS,
    NoveltyIndex,
    bar_problems,
    check_abc_file,
    check_abc_text,
    ngram_hashes,
    run_novelty_index,
)
from tui_composer.services.studio import Studio

NEW_TUNE = "X:9\nT:New\nM:6/8\nL:1/8\nK:G\nB2B dBG|c2e dBG|A2B c2A|B3 G3|]\n"


def test_bars_longer_or_shorter_than_the_meter_are_reported() -> None:
    assert bar_problems("X:1\nM:2/4\nL:1/8\nK:G\nG|GABc|d2 e2 f|g4|fedc|B2|]\n")[0].number == 3
    problems = bar_problems("X:1\nM:2/4\nL:1/8\nK:G\nGABc|d2|e2 f2|g4|\n")
    assert [(p.number, p.duration, p.expected) for p in problems] == [(2, 1.0, 2.0)]


def test_pickups_last_bars_and_bars_at_repeats_may_be_short() -> None:
    tune = "X:1\nM:2/4\nL:1/8\nK:G\nG|GABc|d2 e2|f2 :|g|a2 b2|1 c'4:|2 c'2||\n"
    assert bar_problems(tune) == []


def test_each_tune_of_a_file_gets_its_verdict_and_a_bad_one_stops_nothing(tmp_path: Path) -> None:
    text = NEW_TUNE + "\nX:10\nT:Broken\nM:4/4\nL:1/8\nK:G\nGABc [CEG|\n\n" + NEW_TUNE.replace("X:9", "X:11")
    path = tmp_path / "samples.abc"
    path.write_text(text, encoding="utf-8")
    results = check_abc_file(path)
    assert [r.number for r in results] == [1, 2, 3]
    assert results[0].ok and results[2].ok
    assert not results[1].parses and "chord" in (results[1].error or "")
    assert results[0].novelty is None  # no run, no novelty


def test_ngram_hashes_are_positional_and_deterministic() -> None:
    events = np.arange(20, dtype=np.int64)
    hashes = ngram_hashes(events, 8)
    assert len(hashes) == 13
    assert len(set(hashes.tolist())) == 13
    assert np.array_equal(ngram_hashes(events, 8), hashes)


def test_check_flags_a_pasted_training_tune_as_a_copy_even_transposed(studio: Studio, tmp_path: Path) -> None:
    corpus = tiny_corpus(studio, tmp_path)
    run = studio.runs.create({"corpus": corpus, "encoder": "abc", "model": "char-lstm"}, name="checked")
    training = studio.catalogue.get(corpus).splits()["train"][0].text or ""
    transposed = _up_an_octave(training)
    path = tmp_path / "samples.abc"
    path.write_text(training + "\n" + NEW_TUNE + "\n" + transposed, encoding="utf-8")

    results = check_abc_file(path, studio, run.name)
    copied, new, moved = results
    assert copied.copy and copied.novelty is not None and copied.novelty.shared_bars >= COPY_BARS
    assert not new.copy and new.novelty is not None and new.novelty.shared_bars < COPY_BARS
    assert moved.copy  # intervals and durations: a transposed copy is still a copy

    # the index is built once per corpus and cached in the workspace
    cached = list((studio.workspace.cache_dir / "novelty").glob("*.npz"))
    assert len(cached) == 1
    assert isinstance(run_novelty_index(studio, run.name), NoveltyIndex)


def _up_an_octave(tune: str) -> str:
    """The tune an octave higher: C -> c, c -> c' (the tiny tunes have no octave marks)."""
    header, _, body = tune.partition("K:")
    key, _, notes = body.partition("\n")
    shifted = "".join(c.lower() if c in "ABCDEFG" else c + "'" if c in "abcdefg" else c for c in notes)
    return header + "K:" + key + "\n" + shifted


def test_the_check_command_prints_json(studio: Studio, tmp_path: Path) -> None:
    path = tmp_path / "one.abc"
    path.write_text(NEW_TUNE, encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["--workspace", str(studio.workspace.root), "check", str(path), "--json"], obj=studio.host
    )
    assert result.exit_code == 0, result.output
    (verdict,) = json.loads(result.output)
    assert verdict["parses"] and verdict["writes_midi"] and verdict["ok"] and verdict["bad_bars"] == []


def test_check_abc_text_reads_text_without_x_as_one_tune() -> None:
    (result,) = check_abc_text("M:6/8\nL:1/8\nK:G\nGAB cBA|\n")
    assert result.parses
