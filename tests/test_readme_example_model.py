"""The README's "Writing a model plugin" section quotes the example model plugin verbatim (issue #13 item 5).

Every file of examples/tui-composer-gru must appear in the section as a fenced block whose content is the
file, byte for byte: a README that drifts from the example that the tests install and check fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tui-composer-gru"
QUOTED = ["pyproject.toml", "tui_composer_gru/__init__.py", "tui_composer_gru/model.py"]
SECTION = "Writing a model plugin"
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})")


def _closes(line: str, fence: str) -> bool:
    return re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", line) is not None


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every ATX heading outside fenced blocks (a quoted `# comment` is code)."""
    found: list[tuple[int, int, str]] = []
    fence: str | None = None
    for index, line in enumerate(lines):
        if fence is not None:
            fence = None if _closes(line, fence) else fence
        elif opening := _FENCE.match(line):
            fence = opening.group("fence")
        elif heading := re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line):
            found.append((index, len(heading.group(1)), heading.group(2)))
    return found


def section(markdown: str, title: str) -> str | None:
    """The text under the heading `title` (any level) up to the next heading of that level or above."""
    lines = markdown.splitlines(keepends=True)
    headings = _headings(lines)
    for number, (start, level, name) in enumerate(headings):
        if name == title:
            end = next((i for i, other, _ in headings[number + 1 :] if other <= level), len(lines))
            return "".join(lines[start + 1 : end])
    return None


def fenced_blocks(markdown: str) -> list[str]:
    """The content of every fenced code block (``` or ~~~), each line ending in a newline."""
    blocks: list[str] = []
    lines = markdown.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        fence, indent = opening.group("fence"), len(opening.group("indent"))
        content: list[str] = []
        while index < len(lines) and not _closes(lines[index], fence):
            # CommonMark: an indented fence strips up to that much indentation from its lines.
            content.append(re.sub(rf"^ {{0,{indent}}}", "", lines[index]))
            index += 1
        index += 1  # the closing fence
        blocks.append("".join(line if line.endswith("\n") else line + "\n" for line in content))
    return blocks


def test_the_readme_quotes_the_example_model_plugin_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    text = section(readme, SECTION)
    if text is None:
        pytest.skip(f'README.md has no "{SECTION}" section yet; the lead adds it with the example quoted')
    blocks = fenced_blocks(text)
    for name in QUOTED:
        source = (EXAMPLE / name).read_text(encoding="utf-8")
        assert source in blocks, (
            f'README.md, section "{SECTION}": no fenced block holds examples/tui-composer-gru/{name} exactly; '
            "paste the file's current text into the section's block for it"
        )


def test_fenced_blocks_are_read_as_commonmark_writes_them() -> None:
    markdown = "# A\ntext\n```python\nx = 1\n\n# not a heading\n```\n~~~~\n```\n~~~~\n## B\n   ```\n   y\n   ```\n"
    assert section(markdown, "A") == markdown.split("\n", 1)[1]  # the quoted `# not a heading` stays in it
    assert section(markdown, "B") == "   ```\n   y\n   ```\n"
    assert fenced_blocks(markdown) == ["x = 1\n\n# not a heading\n", "```\n", "y\n"]
    assert section(markdown, "missing") is None
