"""`tui-composer runs` at 80 columns (issue 15, deliver 7): whole run names; the rest wrapped, never cut."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli

LONG_RUN = "piano-roll-rnn-rbm-long-name-1121-0930"


def write_run(home: Path, name: str, *, corpus: str, encoder: str, model: str, state: str, epoch: int) -> None:
    folder = home / "runs" / name
    folder.mkdir(parents=True)
    config = {"name": name, "corpus": corpus, "encoder": encoder, "model": model, "epochs": 40,
              "created": "2026-11-21T03:37:47+00:00"}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    status = {"state": state, "epoch": epoch, "epochs": 40, "best_valid_loss": 1.0348, "pid": None}
    (folder / "status.json").write_text(json.dumps(status))


def runs_at(home: Path, columns: int) -> list[str]:
    env = {"COLUMNS": str(columns), "TZ": "UTC", "TUI_COMPOSER_PLUGINS": ""}
    return run_cli("runs", home=home, extra_env=env).stdout.splitlines()


def test_runs_reads_at_80_columns_with_whole_names(tmp_path: Path) -> None:
    write_run(tmp_path, "char-lstm-1121-093012", corpus="oneills", encoder="abc", model="char-lstm",
              state="finished", epoch=14)  # fmt: skip
    write_run(tmp_path, "midi-1121-0931", corpus="bach-chorales", encoder="midi-events", model="rnn-rbm",
              state="stopped", epoch=3)  # fmt: skip
    lines = runs_at(tmp_path, 80)
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert "…" not in "\n".join(lines)
    text = "\n".join(lines)
    for whole in ("char-lstm-1121-093012", "midi-1121-0931", "bach-chorales", "midi-events/rnn-rbm", "2026-11-21"):
        assert whole in text, (whole, text)
    first = next(line for line in lines if "char-lstm-1121-093012" in line)
    # A finished run lists the epochs it trained (it may stop before the 40 planned), a stopped one both.
    assert "finished" in first and " 14 " in first and "1.0348" in first
    assert " 3/40 " in next(line for line in lines if "midi-1121-0931" in line)
    # Wide enough: one column each, one line per run.
    wide = runs_at(tmp_path, 140)
    assert any("char-lstm-1121-093012" in line and "abc/char-lstm" in line and "03:37" in line for line in wide)


def test_a_very_long_run_name_gets_a_line_of_its_own(tmp_path: Path) -> None:
    write_run(tmp_path, LONG_RUN, corpus="bach-chorales", encoder="piano-roll", model="rnn-rbm",
              state="interrupted", epoch=2)  # fmt: skip
    lines = runs_at(tmp_path, 80)
    assert LONG_RUN in [line.strip() for line in lines]
    details = lines[[line.strip() for line in lines].index(LONG_RUN) + 1]
    assert details.strip().startswith("interrupted · epoch 2/40 · best 1.0348 · bach-chorales")
    assert all(len(line) <= 80 for line in lines)
