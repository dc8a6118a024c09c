"""The example model plugin (examples/tui-composer-gru), installed as a user installs it, keeps the contract.

It is pip-installed into a temporary site (`plugin_site`), found through its `tui_composer` entry point,
and run through the conformance kit with every built-in encoder, as its author would from their tests.
"""

from __future__ import annotations

import ast
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from tui_composer.plugin.host import GROUP, PluginHost
from tui_composer.plugin.specs import Origin
from tui_composer.testing import TUNES, check_model

EXAMPLE = ROOT / "examples" / "tui-composer-gru"
# Small: the kit's whole run stays within seconds of CPU time.
SMALL = {"units": 16, "layers": 1, "dropout": 0.1, "streams": 4, "steps": 32, "learning_rate": 0.01}


@pytest.fixture
def gru_host(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    """A host that loaded only the installed example, through its entry point."""
    monkeypatch.syspath_prepend(str(plugin_site))  # undone after the test: nothing leaks into other tests
    found = [ep for ep in entry_points(group=GROUP) if ep.dist is not None and ep.dist.name == "tui-composer-gru"]
    assert [ep.name for ep in found] == ["gru"]
    host = PluginHost()
    host.load_entry_points(found)
    return host


def test_the_installed_example_keeps_the_contract_with_every_built_in_encoder(
    gru_host: PluginHost, installed_host: PluginHost, plugin_site: Path, tmp_path: Path
) -> None:
    pytest.importorskip("keras")
    spec = gru_host.registry.models["gru"]
    assert spec.origin == Origin("gru", "tui-composer-gru", "0.1.0")
    model_class = spec.model_class()
    assert Path(sys.modules[model_class.__module__].__file__ or "").is_relative_to(plugin_site)  # the installed copy
    encoders = [installed_host.registry.encoders[name] for name in ("abc", "midi-events", "piano-roll")]
    done = check_model(spec, SMALL, encoders=encoders, workdir=tmp_path)
    per_kind = [f"{kind}: {check}" for kind in ("tokens", "frames") for check in ("units", "epoch", "samples", "seed")]
    assert set(done) == {
        *per_kind,
        "tokens: constraint",
        "tokens: files",
        "frames: files",
        "abc: decodes and writes MIDI",
        "midi-events: decodes and writes MIDI",
        "piano-roll: decodes and writes MIDI",
    }


def test_the_example_is_listed_with_its_distribution_and_parameters(plugin_site: Path, tmp_path: Path) -> None:
    # test_cli checks that this listing, with every example installed, imports no TensorFlow.
    listing = json.loads(run_cli("plugins", "--json", site=plugin_site, home=tmp_path).stdout)
    assert {p["name"]: p["status"] for p in listing["plugins"]}["gru"] == "ok"
    model = listing["models"]["gru"]
    assert (model["plugin"], model["distribution"], model["version"]) == ("gru", "tui-composer-gru", "0.1.0")
    assert [p["name"] for p in model["params"]] == ["streams", "steps", "learning_rate", "units", "layers", "dropout"]
    assert model["takes"] == ["tokens", "frames"]


@pytest.mark.slow
def test_the_example_trains_and_samples_from_the_command_line(plugin_site: Path, tmp_path: Path) -> None:
    tunes = tmp_path / "kit.abc"
    tunes.write_text("\n".join(TUNES), encoding="utf-8")
    home = tmp_path / "home"
    run_cli("corpus", "import", str(tunes), "--name", "kit", site=plugin_site, home=home)
    sets = [arg for pair in SMALL.items() for arg in ("--set", "=".join(map(str, pair)))]
    train = ("train", "--corpus", "kit", "--encoder", "abc", "--model", "gru", "--epochs", "2", "--name", "g")
    run_cli(*train, *sets, site=plugin_site, home=home)
    status = json.loads((home / "runs" / "g" / "status.json").read_text(encoding="utf-8"))
    assert (status["state"], status["epoch"]) == ("finished", 2)
    sampled = run_cli("sample", "g", "-n", "2", "--max-length", "80", "--json", site=plugin_site, home=home)
    samples = json.loads(sampled.stdout)
    assert [s["number"] for s in samples] == [1, 2]
    assert all(Path(s["abc_path"]).read_text(encoding="utf-8").startswith("X:") for s in samples)


def test_the_example_model_fits_in_sixty_lines_and_imports_only_the_api() -> None:
    model = EXAMPLE / "tui_composer_gru" / "model.py"
    assert len(model.read_text(encoding="utf-8").splitlines()) <= 60
    for path in sorted((EXAMPLE / "tui_composer_gru").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        modules += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        assert {m for m in modules if m.startswith("tui_composer")} <= {"tui_composer.api"}, path.name
