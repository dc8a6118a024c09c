"""Plugins: every encoder, model and corpus with the plugin that gave it, and every plugin's load errors."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from tui_composer.tui.screens.base import ComposerScreen
from tui_composer.tui.widgets.filter_bar import FilterBar
from tui_composer.tui.widgets.row_table import Column, RowTable

# The distribution is never cut: `tui-composer-qa` cut to `tui-composer` reads as a built-in.
PLUGIN_COLUMNS = (
    Column("kind", "kind", 7),
    Column("name", "name", 12, grow=3),
    Column("plugin", "plugin", 10, grow=2, drop=2),
    Column("distribution", "distribution", 12, whole=True),
    Column("version", "version", 7, drop=1),
    Column("status", "status / error", 10, grow=1),
)


class PluginsScreen(ComposerScreen):
    MODE = "plugins"
    BINDINGS = [Binding("slash", "filter", "Filter")]
    PALETTE = (("Filter plugins", "Keep the rows with every typed word in some column (/)", "filter"),)

    def __init__(self) -> None:
        super().__init__()
        self._details: dict[str, str] = {}
        self.table = RowTable(PLUGIN_COLUMNS, id="plugins", zebra_stripes=True)

    def compose_body(self) -> ComposeResult:
        yield FilterBar(self.table, "rows", id="plugins-filter")
        yield self.table
        with VerticalScroll(id="plugin-detail-scroll"):
            yield Static("", id="plugin-detail", markup=False)

    def action_filter(self) -> None:
        self.query_one("#plugins-filter", FilterBar).open()

    def on_mount(self) -> None:
        rows: list[tuple[str, dict[str, Any]]] = []

        def add_row(key: str, *cells: str) -> None:
            rows.append((key, dict(zip([c.key for c in PLUGIN_COLUMNS], cells, strict=True))))

        host = self.studio.host
        registry = self.studio.registry  # collecting runs the hooks, which may mark plugins failed
        for kind, specs in (("encoder", registry.encoders), ("model", registry.models), ("corpus", registry.corpora)):
            for name, spec in specs.items():
                info = host.plugins.get(spec.origin.plugin)
                status = info.status if info else "ok"
                if info is not None and info.errors:
                    status = f"{status}: {info.errors[0]}"
                key = f"{kind}:{name}"
                add_row(key, kind, name, spec.origin.plugin, spec.origin.distribution, spec.origin.version, status)
                lines = [f"{kind} {name} — {spec.description}"]
                lines += [f"  from plugin {spec.origin.plugin} ({spec.origin.distribution} {spec.origin.version})"]
                if kind == "encoder":
                    lines.append(f"  makes {spec.makes}")  # type: ignore[union-attr]
                if kind == "model":
                    lines.append(f"  takes {', '.join(spec.takes)}")  # type: ignore[union-attr]
                if kind == "corpus":
                    lines.append(f"  licence: {spec.licence}")  # type: ignore[union-attr]
                for param in getattr(spec, "params", ()):
                    lines.append(f"  {param.name} = {param.default!r}: {param.help} ({param.allowed()})")
                if info is not None and info.errors:
                    lines += ["  plugin problems:", *(f"    {e}" for e in info.errors)]
                self._details[key] = "\n".join(lines)
        for info in host.plugins.values():
            if info.status == "ok" and info.provides:
                continue
            key = f"plugin:{info.name}"
            error = info.errors[0] if info.errors else "registers nothing"
            status = f"{info.status}: {error}"
            add_row(key, "plugin", info.name, info.name, info.distribution, info.version, status)
            self._details[key] = "\n".join(
                [f"plugin {info.name} ({info.module}) — {info.status}", f"  error: {error}", *info.errors[1:]]
            )
        self.table.set_rows(rows)
        if self.table.selected_key is not None:
            self._show(self.table.selected_key)

    @on(DataTable.RowHighlighted, "#plugins")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show(str(event.row_key.value))

    def _show(self, key: str) -> None:
        self.query_one("#plugin-detail", Static).update(self._details.get(key, ""))
