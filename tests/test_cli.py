"""The command line, run as a user runs it: in a fresh process, with plugins installed for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

NO_TENSORFLOW = (
    "import sys\n"
    "from tui_composer.cli.app import main\n"
    "try:\n    main({args!r})\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
    "heavy = sorted(m for m in ('tensorflow', 'keras', 'music21') if m in sys.modules)\n"
    "print('HEAVY', heavy)\n"
)


def test_help_and_plugin_listing_never_import_tensorflow(plugin_site: Path, tmp_path: Path) -> None:
    for args in (["--help"], ["plugins", "--json"], ["corpus", "list", "--json"], ["runs"]):
        result = run_cli_code(NO_TENSORFLOW.format(args=args), plugin_site, tmp_path)
        assert "HEAVY []" in result, (args, result)


def run_cli_code(code: str, site: Path, home: Path) -> str:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(site), "TUI_COMPOSER_HOME": str(home)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return result.stdout


def test_a_broken_plugin_shows_as_failed_and_the_rest_works(plugin_site: Path, tmp_path: Path) -> None:
    listing = json.loads(run_cli("plugins", "--json", site=plugin_site, home=tmp_path).stdout)
    plugins = {p["name"]: p for p in listing["plugins"]}
    broken = plugins["broken"]
    assert broken["status"] == "failed"
    assert broken["distribution"] == "tui-composer-broken" and broken["version"] == "0.0.1"
    assert "needs the package 'not-installed-anywhere'" in broken["errors"][0]
    assert plugins["intervals"]["status"] == "ok"
    assert plugins["bundled-corpora"]["status"] == "ok"
    assert "intervals" in listing["encoders"]
    corpora = json.loads(run_cli("corpus", "list", "--json", site=plugin_site, home=tmp_path).stdout)
    assert {c["name"]: c["pieces"] for c in corpora}["oneills"] == 2009
    table = run_cli("plugins", site=plugin_site, home=tmp_path).stdout
    assert "broken" in table and "failed" in table


def test_the_example_plugin_adds_an_encoder_and_a_command(plugin_site: Path, tmp_path: Path) -> None:
    listing = json.loads(run_cli("plugins", "--json", site=plugin_site, home=tmp_path).stdout)
    encoder = listing["encoders"]["intervals"]
    assert encoder["plugin"] == "intervals" and encoder["distribution"] == "tui-composer-intervals"
    assert [p["name"] for p in encoder["params"]] == ["start_pitch", "max_interval"]
    output = run_cli("intervals", "oneills", "--piece", "0", site=plugin_site, home=tmp_path).stdout
    header, tokens = output.splitlines()[:2]
    assert header == "0001-0050.abc#1: The Enchanted Valley"
    # G3-A (Bcd=e): the first note is a G of 3 sixteenths (0.75 quarters), then up a tone to A.
    assert tokens.split()[:3] == ["+0:0.75", "+2:0.25", "+1:0.25"]


def test_plugins_can_be_switched_off_by_environment(plugin_site: Path, tmp_path: Path) -> None:
    result = run_cli("plugins", "--json", site=plugin_site, home=tmp_path, extra_env={"TUI_COMPOSER_PLUGINS": ""})
    assert json.loads(result.stdout)["plugins"] == []
    result = run_cli(
        "corpus",
        "list",
        "--json",
        site=plugin_site,
        home=tmp_path,
        extra_env={"TUI_COMPOSER_PLUGINS": "bundled-corpora"},
    )
    assert [c["name"] for c in json.loads(result.stdout)] == ["bach-chorales", "essen", "oneills", "ryans"]


def test_corpus_import_and_show_report_skipped_items(tmp_path: Path) -> None:
    folder = tmp_path / "music"
    folder.mkdir()
    (folder / "good.abc").write_text("X:1\nT:Good\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|]\n")
    (folder / "empty.mid").write_bytes(b"")
    home = tmp_path / "home"
    output = run_cli("corpus", "import", str(folder), "--name", "mine", home=home).stdout
    assert "imported 1 pieces into corpus 'mine'" in output
    assert "empty.mid: empty file" in output
    shown = json.loads(run_cli("corpus", "show", "mine", "--json", home=home).stdout)
    assert shown["pieces"] == 1 and shown["skipped_items"] == [{"item": "empty.mid", "reason": "empty file"}]
    missing = run_cli("corpus", "show", "nope", home=home, check=False)
    assert missing.returncode == 1 and "no corpus named 'nope'" in missing.stderr


ROUND_TRIP = """
from tui_composer.services.studio import Studio
from tui_composer_intervals.encoder import IntervalEncoder
piece = Studio().catalogue.get("oneills").pieces[0]
encoder = IntervalEncoder(start_pitch=67)
reading = encoder.read(piece)
encoder.fit([reading])
ids = encoder.encode(reading)
restored = IntervalEncoder(start_pitch=67)
restored.load_state(encoder.state())
notes = [n for n in restored.decode(ids).flatten().notesAndRests]
print(len(reading), len(ids), restored.data_spec().size, len(set(reading)), notes[0].pitch.midi, notes[1].pitch.midi)
"""


def test_the_example_encoder_round_trips_through_its_vocabulary(plugin_site: Path, tmp_path: Path) -> None:
    output = run_cli_code(ROUND_TRIP, plugin_site, tmp_path).split()
    tokens, ids, size, symbols, first, second = (int(x) for x in output)
    assert ids == tokens + 2  # bos and eos around the readings
    assert size == symbols + 3  # the readings' symbols plus bos, eos and unk
    assert (first, second) == (67, 69)  # starts where asked, then up a tone as the tune does


def test_a_training_that_leads_its_session_lowers_the_session_too() -> None:
    """With Linux's autogroup the CPU is shared between sessions before niceness counts: a training the TUI
    started (a session of its own) must lower its session's niceness, or it takes a core from the TUI."""
    import json
    import os
    import subprocess
    import sys

    autogroup = Path("/proc/self/autogroup")
    if not autogroup.is_file() or not os.access(autogroup, os.W_OK):
        pytest.skip("no writable /proc/self/autogroup here (autogroup scheduling is Linux's)")
    # The file is empty for a process in no autogroup of its own (the init session, as in some CI runners),
    # so the probe prints the text before and after, and only a session's own group is read as a niceness.
    probe = (
        "import json; from pathlib import Path; from tui_composer.cli.train import lower_priority; "
        "group = Path('/proc/self/autogroup'); before = group.read_text(); "
        "lower_priority(); print(json.dumps([before, group.read_text()]))"
    )
    env = {**os.environ, "TUI_COMPOSER_TRAIN_NICENESS": "4"}
    led = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True,
                         start_new_session=True)  # fmt: skip
    before, after = json.loads(led.stdout)
    if "nice" not in before:
        pytest.skip(f"a new session gets no autogroup here (/proc/self/autogroup reads {before!r})")
    assert int(after.rsplit("nice", 1)[1]) - int(before.rsplit("nice", 1)[1]) == 4
    shell = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    before, after = json.loads(shell.stdout)
    assert before == after  # a `train` typed in a shell leaves the shell's session alone


def test_a_training_process_yields_the_cpu_to_interactive_work(tmp_path: Path) -> None:
    """`train` in a process of its own adds TUI_COMPOSER_TRAIN_NICENESS (default 10) to its niceness, so the TUI
    stays quick while it trains on every core; a bad value is refused before any work."""
    import os
    import subprocess
    import sys

    probe = (
        "import os; from tui_composer.cli.train import lower_priority; "
        "before = os.nice(0); lower_priority(); print(os.nice(0) - before)"
    )
    for env, added in (
        ({}, "10"),
        ({"TUI_COMPOSER_TRAIN_NICENESS": "0"}, "0"),
        ({"TUI_COMPOSER_TRAIN_NICENESS": "3"}, "3"),
    ):
        niceness = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env={**os.environ, **env}, check=True
        )
        assert niceness.stdout.strip() == added, env
    train = ["train", "--corpus", "oneills", "--encoder", "abc", "--model", "char-lstm", "--epochs", "1"]
    refused = run_cli(*train, home=tmp_path, extra_env={"TUI_COMPOSER_TRAIN_NICENESS": "high"}, check=False)
    assert refused.returncode == 1
    assert "TUI_COMPOSER_TRAIN_NICENESS='high' is not a niceness; use 0 (unchanged) to 19" in refused.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run was made
