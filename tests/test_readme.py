"""The README's worked plugin example is the tested example package, word for word."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tui-composer-intervals"


def test_the_readme_shows_the_example_plugin_as_it_is() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    registration = (EXAMPLE / "tui_composer_intervals" / "__init__.py").read_text(encoding="utf-8")
    assert registration in readme
    assert '[project.entry-points.tui_composer]\nintervals = "tui_composer_intervals"' in readme
    assert 'intervals = "tui_composer_intervals"' in (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")


def test_the_quick_start_is_the_two_make_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.split("```sh", 1)[1].split("```", 1)[0].splitlines()]
    assert [c for c in commands if c] == ["make run", "make test"]
