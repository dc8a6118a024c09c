"""The plugin host: isolation of failures, clashes, hook validation, selection by environment."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from types import SimpleNamespace

import pytest

from tui_composer.api import CorpusSpec, EncoderSpec, ModelSpec, hookimpl
from tui_composer.plugin.host import GROUP, PluginHost


def encoder_plugin(*names: str) -> SimpleNamespace:
    @hookimpl
    def register_encoders(register):
        for name in names:
            register(EncoderSpec(name=name, description=f"{name} encoder", makes="tokens", factory="x:Y"))

    return SimpleNamespace(register_encoders=register_encoders)


def test_registered_specs_are_stamped_with_their_plugin() -> None:
    host = PluginHost()
    host.register_module(encoder_plugin("abc"), name="first", distribution="first-dist")
    spec = host.registry.encoders["abc"]
    assert spec.origin.plugin == "first"
    assert spec.origin.distribution == "first-dist"
    assert host.plugins["first"].provides == ["encoder abc"]


def test_a_clashing_name_is_refused_naming_both_plugins() -> None:
    host = PluginHost()
    host.register_module(encoder_plugin("abc"), name="first")
    host.register_module(encoder_plugin("abc", "other"), name="second")
    assert host.registry.encoders["abc"].origin.plugin == "first"
    assert host.registry.encoders["other"].origin.plugin == "second"
    second = host.plugins["second"]
    assert second.status == "partial"
    assert "encoder 'abc' refused: plugin 'first' already registered that name" in second.errors[0]
    assert "plugin 'second' must rename" in second.errors[0]


def test_a_hook_that_raises_spoils_only_its_own_plugin() -> None:
    @hookimpl
    def register_models(register):
        raise RuntimeError("model weights missing")

    host = PluginHost()
    host.register_module(SimpleNamespace(register_models=register_models), name="bad")
    host.register_module(encoder_plugin("abc"), name="good")
    assert list(host.registry.encoders) == ["abc"]
    assert host.plugins["bad"].status == "failed"
    assert host.plugins["bad"].errors == ["register_models raised RuntimeError: model weights missing"]
    assert host.plugins["good"].status == "ok"


def test_a_misspelled_hook_is_caught() -> None:
    @hookimpl
    def register_encoder(register):
        pass

    host = PluginHost()
    plugin = SimpleNamespace(register_encoder=register_encoder)
    info = host.register_module(plugin, name="typo")
    assert info.status == "failed"
    assert "register_encoder" in info.errors[0]
    assert not host.manager.is_registered(plugin)


def test_a_spec_of_the_wrong_kind_is_refused() -> None:
    @hookimpl
    def register_models(register):
        register(CorpusSpec(name="c", description="", licence="", pieces=list))

    host = PluginHost()
    host.register_module(SimpleNamespace(register_models=register_models), name="confused")
    assert host.registry.models == {}
    assert "expected ModelSpec" in host.plugins["confused"].errors[0]


def _entry_point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def test_an_entry_point_that_fails_to_import_is_recorded_and_skipped() -> None:
    host = PluginHost()
    host.load_entry_points([_entry_point("missing", "tui_composer_no_such_module"), _entry_point("fine", "json")])
    assert host.plugins["missing"].status == "failed"
    assert "import failed: ModuleNotFoundError" in host.plugins["missing"].errors[0]
    assert host.plugins["fine"].status == "ok"


@pytest.mark.parametrize(("selection", "loaded"), [("", []), ("fine", ["fine"]), ("fine, other", ["fine", "other"])])
def test_the_environment_selects_entry_points(monkeypatch: pytest.MonkeyPatch, selection: str, loaded: list) -> None:
    monkeypatch.setenv("TUI_COMPOSER_PLUGINS", selection)
    host = PluginHost()
    host.load_entry_points([_entry_point("fine", "json"), _entry_point("other", "csv"), _entry_point("third", "re")])
    assert sorted(host.plugins) == loaded


def test_model_spec_factories_import_lazily() -> None:
    spec = ModelSpec(name="m", description="", factory="collections:OrderedDict")
    assert spec.model_class().__name__ == "OrderedDict"


def test_built_ins_load_through_the_entry_point_group(installed_host: PluginHost) -> None:
    assert installed_host.plugins["bundled-corpora"].distribution == "tui-composer"
    assert {"oneills", "ryans", "essen", "bach-chorales"} <= set(installed_host.registry.corpora)
    assert all(info.status == "ok" for info in installed_host.plugins.values()), installed_host.failures()
