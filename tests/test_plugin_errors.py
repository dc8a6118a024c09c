"""Errors from plugin code name the spec, the plugin, its distribution and version (issue #13 item 6).

A misspelled factory fails `plugins --check` and is refused before a run folder exists; a plugin whose
hook raises is registered all or nothing; what a run needs from a failed plugin says so; an exception
in an encoder's read or decode, or in a model's train_epoch or sample, names where it came from, with
the traceback in the run's train.log and metrics.jsonl.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import zipfile
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner
from training_support import tiny_corpus, tiny_request
from tui_composer_plugins.abc.encoder import AbcEncoder

from tui_composer.api import (
    CorpusSpec,
    DataSpec,
    EncoderSpec,
    EpochProgress,
    Evaluation,
    Model,
    ModelSpec,
    Piece,
    SampleRequest,
    hookimpl,
)
from tui_composer.cli.app import cli
from tui_composer.plugin.host import PluginHost
from tui_composer.plugin.specs import PluginError
from tui_composer.services.runs import RunStore
from tui_composer.services.sampling import SampleOptions, sample_run
from tui_composer.services.studio import Studio
from tui_composer.services.training import TrainingError, encoder_spec, model_spec, prepare_run, train_run
from tui_composer.services.workspace import Workspace


def builtin_host(*names: str) -> PluginHost:
    host = PluginHost()
    host.load_entry_points([ep for ep in entry_points(group="tui_composer") if ep.name in names])
    return host


def spec_plugin(**hooks: Any) -> SimpleNamespace:
    return SimpleNamespace(**{name: hookimpl(function) for name, function in hooks.items()})


# --- misspelled factories ------------------------------------------------------------------------------------


def misspelled_plugin() -> SimpleNamespace:
    def register_encoders(register: Any) -> None:
        register(EncoderSpec(name="typo-encoder", description="", makes="tokens", factory="json:dumpz"))

    def register_models(register: Any) -> None:
        register(ModelSpec(name="fine-model", description="", factory="collections:OrderedDict"))

    return spec_plugin(register_encoders=register_encoders, register_models=register_models)


def test_plugins_check_lists_a_misspelled_factory_as_failed() -> None:
    host = PluginHost()
    host.register_module(misspelled_plugin(), name="typos", distribution="tui-composer-typos", version="1.2.3")
    listed = CliRunner().invoke(cli, ["plugins", "--json"], obj=host)
    assert json.loads(listed.output)["plugins"][0]["status"] == "ok"  # listing imports nothing

    result = CliRunner().invoke(cli, ["plugins", "--check", "--json"], obj=host)
    assert result.exit_code == 1
    report = json.loads(result.output)
    plugin = report["plugins"][0]
    assert plugin["status"] == "failed"
    assert plugin["errors"][0].startswith("encoder 'typo-encoder': its factory 'json:dumpz' can't be imported: ")
    assert "AttributeError" in plugin["errors"][0]
    assert report["encoders"] == {} and report["models"] == {}  # all or nothing: its good model goes too
    assert sorted(plugin["dropped"]) == ["encoder typo-encoder", "model fine-model"]


@pytest.mark.parametrize("imported", [False, True], ids=["unimported", "imported"])
def test_train_refuses_a_misspelled_factory_before_any_run_folder(
    workspace: Workspace, imported: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The message is the same whether or not another test imported the module first (CI found it was not).
    if imported:
        importlib.import_module("tui_composer_plugins.char_lstm.model")
    else:
        monkeypatch.delitem(sys.modules, "tui_composer_plugins.char_lstm.model", raising=False)

    def register_models(register: Any) -> None:
        register(ModelSpec(name="typo-lstm", description="", factory="tui_composer_plugins.char_lstm.model:CharLTSM"))

    host = builtin_host("abc", "bundled-corpora")
    host.register_module(spec_plugin(register_models=register_models), "typos", "tui-composer-typos", "1.2.3")
    studio = Studio(workspace, host)
    request = tiny_request("oneills", model="typo-lstm", model_params={}, name="never-made")
    with pytest.raises(TrainingError) as refused:
        prepare_run(studio, request)
    message = str(refused.value)
    assert "model 'typo-lstm' (plugin 'typos' from tui-composer-typos 1.2.3) can't be used" in message
    assert "module 'tui_composer_plugins.char_lstm.model' defines no 'CharLTSM'" in message
    assert "plugins --check" in message
    assert not any(workspace.runs_dir.iterdir())  # no run folder, failed or otherwise
    assert not (workspace.cache_dir / "encodings").exists()  # and the corpus was never read


# --- all or nothing ------------------------------------------------------------------------------------------


def half_broken_plugin() -> SimpleNamespace:
    def register_encoders(register: Any) -> None:
        register(EncoderSpec(name="half-encoder", description="", makes="tokens", factory="json:dumps"))

    def register_corpora(register: Any) -> None:
        raise RuntimeError("corpus files missing")

    def register_commands(cli: click.Group) -> None:
        @cli.command("half-command")
        def half_command() -> None:
            """Never reachable: its plugin failed."""

    return spec_plugin(
        register_encoders=register_encoders, register_corpora=register_corpora, register_commands=register_commands
    )


def test_a_plugin_whose_hook_raises_registers_nothing(workspace: Workspace) -> None:
    host = PluginHost()
    host.register_module(half_broken_plugin(), name="half", distribution="tui-composer-half", version="0.2.0")
    host.register_module(misspelled_plugin(), name="other")
    group = click.Group(commands={"train": click.Command("train")})
    host.add_commands(group)
    info = host.plugins["half"]
    assert info.status == "failed"
    assert info.errors == ["register_corpora raised RuntimeError: corpus files missing"]
    assert "half-encoder" not in host.registry.encoders  # before: the encoder stayed, the corpus vanished
    assert info.provides == [] and info.dropped == ["encoder half-encoder"]
    assert sorted(group.commands) == ["train"]  # its command is not added either
    assert host.plugins["other"].status == "ok" and "typo-encoder" in host.registry.encoders

    # What a run needs from the failed plugin says why it is not there.
    studio = Studio(workspace, host)
    with pytest.raises(TrainingError) as missing:
        encoder_spec(studio, "half-encoder")
    assert str(missing.value).startswith(
        "encoder 'half-encoder' comes from plugin 'half', which failed to load: "
        "register_corpora raised RuntimeError: corpus files missing; fix or reinstall it"
    )
    # A run's config names the plugin its model came from, so even an import failure is named.
    host.plugins["half"].dropped.clear()
    with pytest.raises(TrainingError, match="model 'gru' comes from plugin 'half', which failed to load"):
        model_spec(studio, "gru", plugin="half")
    with pytest.raises(TrainingError) as unknown:
        model_spec(studio, "gru")
    assert str(unknown.value) == (
        "no model named 'gru'; models: fine-model; plugins that failed to load: half (see `tui-composer plugins`)"
    )


def test_a_command_hook_that_raises_takes_its_commands_and_specs_with_it() -> None:
    def register_encoders(register: Any) -> None:
        register(EncoderSpec(name="cmd-encoder", description="", makes="tokens", factory="json:dumps"))

    def register_commands(cli: click.Group) -> None:
        cli.add_command(click.Command("first", help="added before the hook failed"))
        raise ValueError("second command broken")

    host = PluginHost()
    host.register_module(spec_plugin(register_encoders=register_encoders, register_commands=register_commands), "cmds")
    group = click.Group(commands={"train": click.Command("train")})
    host.add_commands(group)
    info = host.plugins["cmds"]
    assert info.status == "failed" and info.errors == ["register_commands raised ValueError: second command broken"]
    assert sorted(group.commands) == ["train"]
    assert "cmd-encoder" not in host.registry.encoders
    assert sorted(info.dropped) == ["command first", "encoder cmd-encoder"] and info.provides == []


def test_plugins_lists_commands_with_their_plugin() -> None:
    def register_commands(cli: click.Group) -> None:
        @cli.command("hello-tunes")
        def hello_tunes() -> None:
            """Say hello."""

    host = PluginHost()
    host.register_module(spec_plugin(register_commands=register_commands), "greeter", "tui-composer-greeter", "0.1.0")
    saved = dict(cli.commands)
    try:
        host.add_commands(cli)
        table = CliRunner().invoke(cli, ["plugins"], obj=host, terminal_width=200)
        as_json = CliRunner().invoke(cli, ["plugins", "--json"], obj=host)
    finally:
        cli.commands = saved
    assert table.exit_code == 0, table.output
    row = next(line for line in table.output.splitlines() if "greeter" in line)
    assert "tui-composer-greeter" in row and "command hello-tunes" in row
    assert json.loads(as_json.output)["commands"] == {"hello-tunes": {"plugin": "greeter"}}


# --- exceptions in read, decode, train_epoch and sample ------------------------------------------------------


class BuggyAbcEncoder(AbcEncoder):
    """The abc encoder with two bugs: a KeyError reading the polka, and one in every decode."""

    def read(self, piece: Piece) -> list[str]:
        if "Polka" in piece.title:
            return {"M:": ["2/4"]}["K:"]  # the bug: a key that is not there
        return super().read(piece)

    def decode(self, array: np.ndarray) -> Any:
        raise KeyError("no such pitch")


class CountingModel(Model):
    """Token counts (numpy only); `explode` makes train_epoch or sample divide by zero."""

    explode = ""

    def __init__(self, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> None:
        super().__init__(params, data, strategy)
        self.counts = np.ones(data.size)

    def train_epoch(self, sequences: Sequence[np.ndarray], epoch: int, progress: EpochProgress) -> float:
        if self.explode == "train_epoch":
            return 1 / 0
        self.counts += np.bincount(np.concatenate(sequences), minlength=self.data.size)
        return self.evaluate(sequences).loss

    def evaluate(self, sequences: Sequence[np.ndarray]) -> Evaluation:
        p = self.counts / self.counts.sum()
        loss = float(-np.log(p[np.concatenate(sequences)]).mean())
        return Evaluation(loss=loss, bits=loss / math.log(2))

    def save(self, path: Path) -> None:
        with zipfile.ZipFile(path, "w") as archive:  # a model file is a zip, as a .keras file is
            archive.writestr("counts.json", json.dumps(self.counts.tolist()))

    @classmethod
    def load(cls, path: Path, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> CountingModel:
        model = cls(params, data)
        with zipfile.ZipFile(path) as archive:
            model.counts = np.asarray(json.loads(archive.read("counts.json")))
        return model

    def sample(self, request: SampleRequest) -> list[np.ndarray]:
        if self.explode == "sample":
            return [np.array([1 / 0])]
        rng = np.random.default_rng(request.seed)
        return [rng.choice(self.data.size, 20, p=self.counts / self.counts.sum()) for _ in range(request.n)]


def buggy_plugin() -> SimpleNamespace:
    def register_encoders(register: Any) -> None:
        register(EncoderSpec(name="buggy-abc", description="", makes="tokens", factory=BuggyAbcEncoder))

    def register_models(register: Any) -> None:
        register(ModelSpec(name="counting", description="", factory=CountingModel, takes=("tokens",)))

    return spec_plugin(register_encoders=register_encoders, register_models=register_models)


NAMED = "(plugin 'buggy' from tui-composer-buggy 2.0.1)"


@pytest.fixture
def buggy_studio(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Studio:
    host = builtin_host("abc")
    host.register_module(buggy_plugin(), "buggy", "tui-composer-buggy", "2.0.1")
    studio = Studio(workspace, host)
    studio.runs = RunStore(workspace, bundled=None)  # type: ignore[misc] - only this workspace's runs
    tiny_corpus(studio, tmp_path)
    monkeypatch.setattr(CountingModel, "explode", "")
    return studio


def plugin_errors(run_path: Path) -> list[dict[str, Any]]:
    lines = (run_path / "metrics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["kind"] == "plugin_error"]


def test_an_exception_in_read_or_decode_names_the_encoder_and_its_plugin(buggy_studio: Studio) -> None:
    run = prepare_run(buggy_studio, tiny_request(encoder="buggy-abc", model="counting", model_params={}, epochs=1))
    assert train_run(buggy_studio, run)["state"] == "finished"  # one bad piece never stops the others
    log = run.log_path.read_text()
    assert f"plugin error: encoder 'buggy-abc' {NAMED}, read of piece tunes.abc#5" in log
    assert "Traceback (most recent call last)" in log and "in read" in log and "KeyError: 'K:'" in log
    (record,) = plugin_errors(run.path)
    assert record | {"traceback": ""} == {
        "kind": "plugin_error",
        "time": record["time"],
        "spec_kind": "encoder",
        "spec": "buggy-abc",
        "plugin": "buggy",
        "distribution": "tui-composer-buggy",
        "version": "2.0.1",
        "action": "read of piece tunes.abc#5",
        "error": "KeyError: 'K:'",
        "traceback": "",
    }

    samples = sample_run(buggy_studio, run.name, SampleOptions(n=1, max_length=20, constrain=False))
    error = samples[0].error or ""
    assert f"encoder 'buggy-abc' {NAMED} raised KeyError: 'no such pitch' in decode" in error


def test_an_exception_in_train_epoch_names_the_model_with_the_traceback_in_the_log(
    buggy_studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CountingModel, "explode", "train_epoch")
    run = prepare_run(buggy_studio, tiny_request(model="counting", model_params={}, epochs=1))
    with pytest.raises(PluginError) as raised:
        train_run(buggy_studio, run)
    message = str(raised.value)
    assert message.startswith(f"model 'counting' {NAMED} raised ZeroDivisionError: division by zero in train_epoch")
    assert f"the traceback is in {run.log_path}" in message
    assert "in train_epoch" in run.log_path.read_text() and "return 1 / 0" in run.log_path.read_text()
    assert [r["action"] for r in plugin_errors(run.path)] == ["train_epoch"]
    assert run.status()["state"] == "failed" and "model 'counting'" in run.status()["error"]


def test_an_exception_in_sample_names_the_model(buggy_studio: Studio, monkeypatch: pytest.MonkeyPatch) -> None:
    run = prepare_run(buggy_studio, tiny_request(model="counting", model_params={}, epochs=1))
    train_run(buggy_studio, run)
    monkeypatch.setattr(CountingModel, "explode", "sample")
    with pytest.raises(PluginError, match=r"model 'counting' \(plugin 'buggy' from tui-composer-buggy 2.0.1\) raised "):
        sample_run(buggy_studio, run.name, SampleOptions(n=1, max_length=20))
    assert [r["action"] for r in plugin_errors(run.path)] == ["sample"]


def test_a_corpus_hook_failing_later_leaves_no_corpus_behind() -> None:
    def register_corpora(register: Any) -> None:
        register(CorpusSpec(name="half-corpus", description="", licence="", pieces=list))
        raise OSError("second corpus missing")

    host = PluginHost()
    host.register_module(spec_plugin(register_corpora=register_corpora), "corpora-plugin")
    assert host.registry.corpora == {}
    assert host.plugins["corpora-plugin"].dropped == ["corpus half-corpus"]
