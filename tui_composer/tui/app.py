"""The Textual application: global bindings and screens."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Header, Static

from tui_composer.studio import Studio


class ComposerApp(App[None]):
    TITLE = "tui-composer"
    BINDINGS = [("q", "quit", "Quit")]

    def __init__(self, studio: Studio) -> None:
        super().__init__()
        self.studio = studio

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Corpora", classes="heading")
        yield DataTable(id="corpora", cursor_type="row")
        yield Static("Plugins", classes="heading")
        yield DataTable(id="plugins", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        corpora = self.query_one("#corpora", DataTable)
        corpora.add_columns("name", "kind", "pieces", "licence")
        for corpus in self.studio.catalogue.list():
            corpora.add_row(corpus.name, corpus.kind, str(len(corpus.pieces)), corpus.licence)
        plugins = self.query_one("#plugins", DataTable)
        plugins.add_columns("plugin", "status", "provides / error")
        for info in self.studio.host.plugins.values():
            detail = ", ".join(info.provides) if info.status == "ok" else "; ".join(info.errors[:1])
            plugins.add_row(info.name, info.status, detail)
