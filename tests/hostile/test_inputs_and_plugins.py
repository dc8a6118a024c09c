"""Hostile input and hostile plugins (issue #12 items 2, 5 and 6).

Input is checked before any work starts: NaN and infinity, contradictory encoder parameters, seeds,
output folders, names with a newline, damaged or code-carrying `.keras` files, sampling sizes past their
caps. A plugin can't take the process down: one that exits, interrupts, prints to stdout, hangs or
names a command like a built-in is recorded and the rest keeps working.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import pytest
from click.testing import CliRunner
from training_support import tiny_corpus, tiny_request
from tui_composer_plugins.char_lstm import PRETRAINED as BUNDLED_RUNS  # the run the char-lstm plugin ships

from tui_composer.api import EncoderSpec, ModelSpec, Param, ParamError, hookimpl
from tui_composer.cli.app import cli
from tui_composer.plugin.host import GROUP, PLUGIN_TIMEOUT, PluginHost, plugin_timeout
from tui_composer.plugin.specs import ModelFileError
from tui_composer.services.sampling import MAX_LENGTH, MAX_SAMPLES, SampleOptions, SamplingError, sample_run
from tui_composer.services.studio import Studio
from tui_composer.services.training import MAX_SEED, TrainingError, TrainingRequest, prepare_run, train_run
from tui_composer.services.workspace import WorkspaceError, check_name, write_json

NOT_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"]
SHIPPED = "oneills-default"


def invoke(host: PluginHost, workspace: Path, *args: str) -> Any:
    """`tui-composer --workspace W ARGS` in this process, with the given plugin host."""
    return CliRunner().invoke(cli, ["--workspace", str(workspace), *args], obj=host)


def run_folders(studio: Studio) -> list[str]:
    runs_dir = studio.workspace.runs_dir
    return sorted(p.name for p in runs_dir.iterdir()) if runs_dir.is_dir() else []


# --- 1. NaN and infinity -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", NOT_FINITE)
def test_a_float_parameter_refuses_nan_and_infinity(text: str) -> None:
    dropout = Param("dropout", float, 0.2, "dropout", min=0.0, max=0.9)
    unbounded = Param("scale", float, 1.0, "any float")
    for param in (dropout, unbounded):
        with pytest.raises(ParamError) as caught:
            param.parse(text)
        assert f"{param.name}={text!r} is not valid" in str(caught.value)
        assert "not NaN or infinity" in str(caught.value)
    assert dropout.parse("0.5") == 0.5


def test_set_and_encoder_set_refuse_nan_before_a_run_folder_exists(studio: Studio) -> None:
    workspace = studio.workspace.root
    base = ["train", "--corpus", "oneills", "--encoder", "abc", "--model", "char-lstm"]
    result = invoke(studio.host, workspace, *base, "--set", "learning_rate=nan")
    assert result.exit_code == 1, result.output
    assert "model 'char-lstm': learning_rate='nan' is not valid" in result.output
    assert "Traceback" not in result.output
    # No built-in encoder has a float parameter: one of our own goes through the same --encoder-set path.
    host = PluginHost()
    host.register_module(_float_encoder_plugin(), name="floaty")
    host.register_module(_model_plugin(), name="models")
    request = TrainingRequest(corpus="none", encoder="floaty", model="plain", encoder_params={"swing": "inf"})
    with pytest.raises(TrainingError, match=r"encoder 'floaty': swing='inf' is not valid.*not NaN or infinity"):
        prepare_run(Studio(studio.workspace, host), request)
    assert run_folders(studio) == []


@pytest.mark.parametrize("text", ["nan", "inf"])
def test_time_limit_refuses_nan_and_infinity(studio: Studio, text: str) -> None:
    args = ["train", "--corpus", "oneills", "--encoder", "abc", "--model", "char-lstm", "--time-limit", text]
    result = invoke(studio.host, studio.workspace.root, *args)
    assert result.exit_code == 1, result.output
    assert f"--time-limit {text} is not valid: expected a finite number of minutes above 0" in result.output
    assert run_folders(studio) == []


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_temperature_refuses_nan_and_infinity(studio: Studio, text: str) -> None:
    with pytest.raises(SamplingError, match=rf"--temperature {text} is not valid: expected a finite number above 0"):
        sample_run(studio, SHIPPED, SampleOptions(temperature=float(text)))


def test_write_json_refuses_nan_so_no_strict_parser_fails(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    for value in (math.nan, math.inf):
        with pytest.raises(ValueError, match=r"status\.json was not written: Out of range float"):
            write_json(path, {"loss": value})
    assert not path.exists()
    write_json(path, {"loss": None})
    assert json.loads(path.read_text(), parse_constant=_refuse_constant) == {"loss": None}


def _refuse_constant(name: str) -> Any:
    raise AssertionError(f"not strict JSON: {name}")


# --- 2. parameters that contradict each other ------------------------------------------------------------------


def test_piano_roll_low_above_high_is_refused_naming_both_keys(studio: Studio) -> None:
    request = TrainingRequest(
        corpus="bach-chorales", encoder="piano-roll", model="rbm", encoder_params={"low": "100", "high": "20"}
    )
    with pytest.raises(TrainingError) as caught:
        prepare_run(studio, request)
    assert str(caught.value) == "encoder 'piano-roll': low=100 is above high=20: the roll needs low <= high"
    assert run_folders(studio) == []
    one_pitch = TrainingRequest(
        corpus="bach-chorales", encoder="piano-roll", model="rbm", encoder_params={"low": "60", "high": "60"}
    )
    assert prepare_run(studio, one_pitch).config["encoder_params"]["low"] == 60


def test_a_model_spec_check_is_called_with_the_resolved_parameters(studio: Studio) -> None:
    seen: list[Mapping[str, Any]] = []

    def window_fits(params: Mapping[str, Any]) -> str | None:
        seen.append(dict(params))
        return f"hop={params['hop']} is above window={params['window']}" if params["hop"] > params["window"] else None

    def broken(params: Mapping[str, Any]) -> str | None:
        raise KeyError("typo")

    for check, expected in ((window_fits, "model 'plain': hop=9 is above window=4"), (broken, "check failed")):
        host = PluginHost()
        host.register_module(_float_encoder_plugin(), name="floaty")
        host.register_module(_model_plugin(check), name="models")
        request = TrainingRequest(corpus="none", encoder="floaty", model="plain", model_params={"hop": "9"})
        with pytest.raises(TrainingError, match=expected):
            prepare_run(Studio(studio.workspace, host), request)
    assert seen == [{"window": 4, "hop": 9}]  # ints, defaults filled in


def _float_encoder_plugin() -> SimpleNamespace:
    @hookimpl
    def register_encoders(register: Callable[[Any], None]) -> None:
        params = (Param("swing", float, 0.5, "swing ratio", min=0.0, max=1.0),)
        register(EncoderSpec(name="floaty", description="", makes="tokens", factory="x:Y", params=params))

    return SimpleNamespace(register_encoders=register_encoders)


def _model_plugin(check: Callable[[Mapping[str, Any]], str | None] | None = None) -> SimpleNamespace:
    @hookimpl
    def register_models(register: Callable[[Any], None]) -> None:
        params = (Param("window", int, 4, "steps", min=1, max=64), Param("hop", int, 1, "steps", min=1, max=64))
        register(ModelSpec(name="plain", description="", factory="x:Y", params=params, check=check))

    return SimpleNamespace(register_models=register_models)


# --- 3. seeds and output folders -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", ["-1", str(MAX_SEED + 1)])
def test_a_seed_out_of_range_is_refused_by_train_and_sample(studio: Studio, seed: str) -> None:
    expected = f"--seed {seed} is not valid: expected an integer in [0, {MAX_SEED}]"
    train = ["train", "--corpus", "oneills", "--encoder", "abc", "--model", "char-lstm", "--seed", seed]
    for args in (train, ["sample", SHIPPED, "--seed", seed]):
        result = invoke(studio.host, studio.workspace.root, *args)
        assert result.exit_code == 1, result.output
        assert expected in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert run_folders(studio) == []


def test_an_out_folder_that_cannot_be_written_is_refused_before_sampling(studio: Studio, tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    with pytest.raises(SamplingError, match=f"--out {a_file} can't be a folder: {a_file} is a file"):
        sample_run(studio, SHIPPED, SampleOptions(out=a_file))
    inside = a_file / "samples"
    result = invoke(studio.host, studio.workspace.root, "sample", SHIPPED, "--out", str(inside))
    assert result.exit_code == 1, result.output
    assert f"--out {inside} can't be a folder: {a_file} is a file; choose another folder" in result.output
    if os.geteuid() != 0:  # root writes anywhere: only a user sees the permission check
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(SamplingError, match=r"can't be created: .*locked is not writable"):
            sample_run(studio, SHIPPED, SampleOptions(out=locked / "samples"))


# --- 4. names with a trailing newline ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nl\n", "nl\r\n", "ok\nrm", "\nnl"])
def test_run_and_corpus_names_with_a_newline_are_refused(studio: Studio, name: str, tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="is not allowed"):
        check_name(name, "run")
    with pytest.raises(WorkspaceError, match=r"run name .* is not allowed"):
        studio.runs.create({"corpus": "c"}, name)
    tune = tmp_path / "tune.abc"
    tune.write_text("X:1\nM:6/8\nL:1/8\nK:G\nGAB cBA|]\n")
    with pytest.raises(WorkspaceError, match=r"corpus name .* is not allowed"):
        studio.catalogue.import_path(tune, name)
    assert run_folders(studio) == []
    assert not any("\n" in p.name for p in studio.workspace.corpora_dir.iterdir())


# --- 5. model files that are damaged or carry code -----------------------------------------------------------------


def shipped_run_with_model(studio: Studio, name: str, model: bytes | Path) -> Path:
    """A copy of the shipped run's metadata in the workspace, with `model` as its model.keras."""
    folder = studio.workspace.runs_dir / name
    folder.mkdir(parents=True)
    for file in ("config.json", "encoder.json", "status.json"):
        shutil.copyfile(BUNDLED_RUNS / SHIPPED / file, folder / file)
    if isinstance(model, Path):
        shutil.copyfile(model, folder / "model.keras")
    else:
        (folder / "model.keras").write_bytes(model)
    return folder / "model.keras"


class Gadget:
    """Unpickling this runs code: the kind of file a model folder must never execute."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_damaged_and_pickled_model_files_are_named_and_never_executed(studio: Studio, tmp_path: Path) -> None:
    marker = tmp_path / "gadget-ran"
    real = (BUNDLED_RUNS / SHIPPED / "model.keras").read_bytes()
    cases = {
        "truncated": real[: len(real) // 2],
        "garbage": b"PK\x03\x04 not really a zip",
        "pickled": pickle.dumps(Gadget(marker)),
    }
    for name, content in cases.items():
        path = shipped_run_with_model(studio, name, content)
        with pytest.raises(ModelFileError) as caught:
            sample_run(studio, name, SampleOptions(n=1, out=tmp_path / "out"))
        message = str(caught.value)
        assert message.startswith(f"{path} is not a Keras model (a .keras file is a zip archive)"), message
        assert "restore the file from a backup, or train the run again" in message
    result = invoke(studio.host, studio.workspace.root, "sample", "garbage", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "garbage/model.keras is not a Keras model" in result.output
    assert not marker.exists()


def test_a_model_file_with_a_gadget_or_a_lambda_is_refused_by_safe_mode(studio: Studio, tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    marker = tmp_path / "gadget-ran"
    gadget = tmp_path / "gadget.keras"
    with zipfile.ZipFile(gadget, "w") as archive:  # a config that names a function to call instead of a layer
        archive.writestr("metadata.json", json.dumps({"keras_version": keras.__version__}))
        config = {"module": "pathlib", "class_name": "Path.touch", "config": {"self": str(marker)}}
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"")
    path = shipped_run_with_model(studio, "gadget", gadget)
    with pytest.raises(ModelFileError, match=f"{path} could not be loaded by model 'char-lstm': TypeError"):
        sample_run(studio, "gadget", SampleOptions(n=1, out=tmp_path / "out"))
    assert not marker.exists()

    lambda_model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])
    lambda_model.save(tmp_path / "lambda.keras")
    path = shipped_run_with_model(studio, "lambda", tmp_path / "lambda.keras")
    with pytest.raises(ModelFileError) as caught:
        sample_run(studio, "lambda", SampleOptions(n=1, out=tmp_path / "out"))
    assert str(caught.value) == (
        f"{path} could not be loaded by model 'char-lstm': it holds Python code (a Lambda layer or a custom "
        "function) that Keras safe mode refuses to run, and tui-composer never runs code from a model file; "
        "restore the file from a backup, or train the run again"
    )


def test_resuming_from_a_damaged_checkpoint_names_the_file(studio: Studio, tmp_path: Path) -> None:
    pytest.importorskip("keras")
    tiny_corpus(studio, tmp_path)
    run = prepare_run(studio, tiny_request(name="damaged"))
    last = run.checkpoints_dir / "last.keras"
    last.parent.mkdir(parents=True, exist_ok=True)
    last.write_bytes(b"half a checkpoint")
    state = {"epoch": 1, "best_valid_loss": 1.0, "best_epoch": 1, "bad_epochs": 0, "seed": 3}
    write_json(run.checkpoints_dir / "training.json", state)
    with pytest.raises((TrainingError, WorkspaceError)) as caught:  # the resume may try older checkpoints first
        train_run(studio, run, resume=True)
    assert f"{last} is not a Keras model" in str(caught.value)
    assert f"{last} is not a Keras model" in run.raw_status()["error"]


# --- 6. sampling caps -----------------------------------------------------------------------------------------


def test_sampling_sizes_past_their_caps_are_refused_naming_the_cap(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = {
        SampleOptions(n=1_000_000): f"-n 1000000 is above the cap of {MAX_SAMPLES:,} samples per command; "
        "ask for fewer, or raise the cap with TUI_COMPOSER_MAX_SAMPLES=1000000",
        SampleOptions(max_length=1_000_000_000): f"--max-length 1000000000 is above the cap of {MAX_LENGTH:,} "
        "tokens or frames per sample; ask for less, or raise the cap with TUI_COMPOSER_MAX_LENGTH=1000000000",
        SampleOptions(n=1000, max_length=20_000): "-n 1000 x --max-length 20000 = 20,000,000 steps is above the "
        "cap of 2,000,000 per command",
    }
    for options, expected in cases.items():
        with pytest.raises(SamplingError) as caught:
            sample_run(studio, "no-such-run", options)  # refused before the run is even looked up
        assert str(caught.value).startswith(expected), str(caught.value)
    result = invoke(studio.host, studio.workspace.root, "sample", SHIPPED, "-n", "1000000")
    assert result.exit_code == 1 and "raise the cap with TUI_COMPOSER_MAX_SAMPLES=1000000" in result.output
    monkeypatch.setenv("TUI_COMPOSER_MAX_SAMPLES", "5000")
    with pytest.raises(SamplingError, match="no run named 'no-such-run'"):
        sample_run(studio, "no-such-run", SampleOptions(n=2000, max_length=10))
    monkeypatch.setenv("TUI_COMPOSER_MAX_LENGTH", "lots")
    with pytest.raises(SamplingError, match="TUI_COMPOSER_MAX_LENGTH='lots' is not valid: expected a whole number"):
        sample_run(studio, "no-such-run", SampleOptions())


# --- 7-10. plugins that exit, interrupt, print, hang or take a built-in command's name -----------------------------


def write_module(folder: Path, name: str, source: str) -> EntryPoint:
    (folder / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return EntryPoint(name=name, value=name, group=GROUP)


@pytest.fixture
def module_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_a_plugin_that_exits_or_interrupts_at_import_is_recorded_as_failed(module_folder: Path) -> None:
    eps = [
        write_module(module_folder, "hostile_exits_at_import", "import sys\nsys.exit(3)\n"),
        write_module(module_folder, "hostile_interrupts_at_import", "raise KeyboardInterrupt\n"),
        EntryPoint(name="fine", value="json", group=GROUP),
    ]
    host = PluginHost()
    host.load_entry_points(eps)
    assert host.plugins["hostile_exits_at_import"].errors[0] == "import failed: SystemExit: 3"
    assert host.plugins["hostile_interrupts_at_import"].errors[0] == "import failed: KeyboardInterrupt"
    assert {name: p.status for name, p in host.plugins.items()} == {
        "fine": "ok",
        "hostile_exits_at_import": "failed",
        "hostile_interrupts_at_import": "failed",
    }


def test_a_hook_that_exits_or_interrupts_spoils_only_its_plugin() -> None:
    @hookimpl
    def register_models(register: Callable[[Any], None]) -> None:
        raise SystemExit("no GPU")

    @hookimpl
    def register_commands(cli: click.Group) -> None:
        raise KeyboardInterrupt

    host = PluginHost()
    host.register_module(SimpleNamespace(register_models=register_models), name="exits")
    host.register_module(SimpleNamespace(register_commands=register_commands), name="interrupts")
    host.register_module(_float_encoder_plugin(), name="good")
    assert list(host.registry.encoders) == ["floaty"]
    host.add_commands(click.Group())
    assert host.plugins["exits"].errors == ["register_models raised SystemExit: no GPU"]
    assert host.plugins["interrupts"].errors == ["register_commands raised KeyboardInterrupt"]
    assert host.plugins["good"].status == "ok"


NOISY = """
    import click
    from tui_composer.api import EncoderSpec, hookimpl

    print("NOISE AT IMPORT")

    @hookimpl
    def register_encoders(register):
        print("NOISE IN A HOOK")
        register(EncoderSpec(name="noisy", description="", makes="tokens", factory="x:Y"))

    @hookimpl
    def register_commands(cli):
        print("NOISE IN COMMANDS")
"""


def test_what_a_plugin_prints_goes_to_stderr(module_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = PluginHost()
    host.load_entry_points([write_module(module_folder, "hostile_noisy", NOISY)])
    assert list(host.registry.encoders) == ["noisy"]
    host.add_commands(click.Group())
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.split("\n")[:3] == ["NOISE AT IMPORT", "NOISE IN A HOOK", "NOISE IN COMMANDS"]
    assert host.plugins["hostile_noisy"].status == "ok"


def test_a_plugin_that_hangs_is_bounded_in_time_and_the_rest_goes_on(
    module_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUI_COMPOSER_PLUGIN_TIMEOUT", "0.3")
    late = """
        import time
        from tui_composer.api import EncoderSpec, hookimpl

        @hookimpl
        def register_encoders(register):
            time.sleep(1.5)
            register(EncoderSpec(name="late", description="", makes="tokens", factory="x:Y"))
    """
    eps = [
        write_module(module_folder, "hostile_hangs_at_import", "import time\ntime.sleep(1.5)\n"),
        write_module(module_folder, "hostile_hangs_in_a_hook", late),
        EntryPoint(name="fine", value="json", group=GROUP),
    ]
    started = time.monotonic()
    host = PluginHost()
    host.load_entry_points(eps)
    registry = host.registry
    assert time.monotonic() - started < 1.2  # two timeouts of 0.3 s, not two hangs of 1.5 s
    hint = "(a plugin that hangs?); set TUI_COMPOSER_PLUGIN_TIMEOUT to allow more"
    assert host.plugins["hostile_hangs_at_import"].errors == [f"import took longer than 0.3 s {hint}"]
    assert host.plugins["hostile_hangs_in_a_hook"].errors == [f"register_encoders took longer than 0.3 s {hint}"]
    assert host.plugins["fine"].status == "ok"
    time.sleep(1.5)  # the abandoned hook wakes up and registers: too late, nothing is taken
    assert registry.encoders == {}


def test_the_plugin_timeout_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plugin_timeout() == PLUGIN_TIMEOUT == 10.0
    monkeypatch.setenv("TUI_COMPOSER_PLUGIN_TIMEOUT", "2.5")
    assert plugin_timeout() == 2.5
    for bad in ("soon", "0", "nan"):
        monkeypatch.setenv("TUI_COMPOSER_PLUGIN_TIMEOUT", bad)
        assert plugin_timeout() == PLUGIN_TIMEOUT
        assert f"TUI_COMPOSER_PLUGIN_TIMEOUT={bad!r} is not a number of seconds above 0" in capsys.readouterr().err


def test_a_plugin_command_named_like_a_built_in_or_another_plugins_is_refused() -> None:
    def commands_plugin(*names: str) -> SimpleNamespace:
        @hookimpl
        def register_commands(cli: click.Group) -> None:
            for name in names:
                cli.add_command(click.Command(name, callback=lambda: click.echo("HIJACKED")))

        return SimpleNamespace(register_commands=register_commands)

    group = click.Group()
    builtin_runs = click.Command("runs")
    group.add_command(builtin_runs)
    host = PluginHost()
    host.register_module(commands_plugin("runs", "hello"), name="first")
    host.register_module(commands_plugin("hello"), name="second")
    host.add_commands(group)
    assert group.commands["runs"] is builtin_runs
    assert group.commands["hello"].name == "hello"
    first, second = host.plugins["first"], host.plugins["second"]
    assert (first.status, second.status) == ("partial", "partial")
    assert first.errors == ["command 'runs' refused: it is a built-in command; plugin 'first' must rename its command"]
    assert second.errors == [
        "command 'hello' refused: plugin 'first' already registered that name; plugin 'second' must rename its command"
    ]
    assert first.provides == ["command hello"] and second.provides == []


HOSTILE_DISTRIBUTION = {
    "hostile_exit": "import sys\nsys.exit(3)\n",
    "hostile_noisy": NOISY,
    "hostile_hang": "import time\ntime.sleep(3600)\n",
    "hostile_clash": """
        import click
        from tui_composer.api import hookimpl

        print("NOISE FROM CLASH")

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def runs():
                print("HIJACKED")
    """,
}


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder holding a real installed distribution (dist-info and entry points) of hostile plugins."""
    site = tmp_path_factory.mktemp("hostile-site")
    for module, source in HOSTILE_DISTRIBUTION.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / "tui_composer_hostile-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tui-composer-hostile\nVersion: 0.0.1\n")
    entry_points = "".join(f"{module.removeprefix('hostile_')} = {module}\n" for module in HOSTILE_DISTRIBUTION)
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{entry_points}")
    return site


def test_hostile_plugins_installed_for_real_leave_every_command_working(hostile_site: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(hostile_site),
        "TUI_COMPOSER_HOME": str(tmp_path),
        "TUI_COMPOSER_PLUGIN_TIMEOUT": "1",
    }

    def tui_composer(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "tui_composer", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)

    listing = tui_composer("plugins", "--json")
    assert listing.returncode == 0, listing.stderr
    plugins = {p["name"]: p for p in json.loads(listing.stdout)["plugins"]}  # stdout is pure JSON
    assert plugins["exit"]["status"] == "failed" and plugins["exit"]["errors"][0] == "import failed: SystemExit: 3"
    assert plugins["hang"]["status"] == "failed" and plugins["hang"]["errors"][0].startswith("import took longer")
    assert plugins["noisy"]["status"] == "ok" and plugins["noisy"]["distribution"] == "tui-composer-hostile"
    assert plugins["clash"]["status"] == "partial"
    assert "command 'runs' refused: it is a built-in command" in plugins["clash"]["errors"][0]
    assert plugins["bundled-corpora"]["status"] == "ok"
    assert "NOISE AT IMPORT" in listing.stderr and "NOISE FROM CLASH" in listing.stderr

    runs = tui_composer("runs", "--json")
    assert runs.returncode == 0, runs.stderr
    # the built-in `runs`, not HIJACKED
    assert [r["name"] for r in json.loads(runs.stdout)] == ["chorales-default", SHIPPED]

    version = tui_composer("--version")
    assert version.returncode == 0 and "version" in version.stdout
