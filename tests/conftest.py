"""Shared fixtures. Tests build their own plugin hosts and workspaces; nothing leaks from the user's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui_composer.plugin.host import PluginHost, load_host
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never touch the user's real workspace, whatever a test forgets to pass.
    monkeypatch.setenv("TUI_COMPOSER_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("TUI_COMPOSER_PLUGINS", raising=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "workspace").ensure()


@pytest.fixture(scope="session")
def installed_host() -> PluginHost:
    """The plugins installed in this environment: the built-ins, loaded through their entry points."""
    return load_host()


@pytest.fixture
def studio(workspace: Workspace, installed_host: PluginHost) -> Studio:
    return Studio(workspace, installed_host)


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the example plugins and a deliberately broken one installed as real distributions.

    Put it on PYTHONPATH of a subprocess to run tui-composer with them; the test environment itself
    stays clean.
    """
    site = tmp_path_factory.mktemp("plugin-site")
    examples = ROOT / "examples"
    packages = (
        examples / "tui-composer-intervals",
        examples / "tui-composer-gru",
        ROOT / "tests" / "plugins" / "broken-plugin",
    )
    for package in packages:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "--target",
                str(site),
                str(package),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    return site


def run_cli(
    *args: str,
    site: Path | None = None,
    home: Path | None = None,
    extra_env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`python -m tui_composer ARGS` in a fresh process."""
    env = {**os.environ, **(extra_env or {})}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    if home is not None:
        env["TUI_COMPOSER_HOME"] = str(home)
    result = subprocess.run([sys.executable, "-m", "tui_composer", *args], capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"tui-composer {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
