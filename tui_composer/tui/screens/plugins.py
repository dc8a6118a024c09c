"""Plugins: every encoder, model and corpus with the plugin that gave it, and every plugin's load errors."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from tui_composer.tui.screens.base import ComposerScreen


class PluginsScreen(ComposerScreen):
    MODE = "plugins"

    def __init__(self) -> None:
        super().__init__()
        self._details: dict[str, str] = {}

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="plugins", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="plugin-detail-scroll"):
            yield Static("", id="plugin-detail", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#plugins", DataTable)
        for label, width in (("kind", 7), ("name", 14), ("plugin", 15), ("distribution", 12), ("version", 7)):
            table.add_column(label, width=width)
        table.add_column("status / error", width=10)
        host = self.studio.host
        registry = self.studio.registry  # collecting runs the hooks, which may mark plugins failed
        for kind, specs in (("encoder", registry.encoders), ("model", registry.models), ("corpus", registry.corpora)):
            for name, spec in specs.items():
                info = host.plugins.get(spec.origin.plugin)
                status = info.status if info else "ok"
                if info is not None and info.errors:
                    status = f"{status}: {info.errors[0]}"
                key = f"{kind}:{name}"
                table.add_row(
                    kind, name, spec.origin.plugin, spec.origin.distribution, spec.origin.version, status, key=key
                )
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
            table.add_row("plugin", info.name, info.name, info.distribution, info.version, status, key=key)
            self._details[key] = "\n".join(
                [f"plugin {info.name} ({info.module}) — {info.status}", f"  error: {error}", *info.errors[1:]]
            )
        if table.row_count:
            first = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            self._show(str(first))

    @on(DataTable.RowHighlighted, "#plugins")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show(str(event.row_key.value))

    def _show(self, key: str) -> None:
        self.query_one("#plugin-detail", Static).update(self._details.get(key, ""))
