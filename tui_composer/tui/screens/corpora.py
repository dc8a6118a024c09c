"""Corpora: bundled and imported corpora, their pieces and skipped items, a piece's ABC and piano roll."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from tui_composer.corpora import Corpus
from tui_composer.launcher import CommandFailed, run_command
from tui_composer.tui.messages import CorporaListed, ImportFinished, NotesParsed, PiecesListed
from tui_composer.tui.notes import NotesUnavailable, notes_of_piece
from tui_composer.tui.screens.base import ComposerScreen
from tui_composer.tui.screens.dialogs import ImportDialog, ImportRequest
from tui_composer.tui.widgets.piano_roll import PianoRoll
from tui_composer.workspace import WorkspaceError

PREVIEW_DELAY = 0.2  # seconds of rest on a piece before it is parsed: scrolling stays quick


class CorporaScreen(ComposerScreen):
    MODE = "corpora"
    BINDINGS = [
        Binding("i", "import_corpus", "Import folder"),
        Binding("p", "maximize_preview", "Preview"),
        Binding("r", "refresh", "Refresh"),
    ]
    PALETTE = (
        ("Import a corpus", "Import a file or folder of music as a new corpus", "import_corpus"),
        ("Preview piece", "Show the highlighted piece's ABC and piano roll full screen", "maximize_preview"),
    )

    def __init__(self) -> None:
        super().__init__()
        self._corpora: dict[str, Corpus] = {}
        self._preview_timer: Timer | None = None
        self._pieces_timer: Timer | None = None
        self._previewing = ""
        self._select_after_listing = ""

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="corpora", cursor_type="row", zebra_stripes=True)
        yield Static("", id="corpus-info", markup=False)
        with Horizontal(id="corpus-detail"):
            with TabbedContent(id="corpus-tabs"):
                with TabPane("Pieces", id="tab-pieces"):
                    yield DataTable(id="pieces", cursor_type="row")
                with TabPane("Skipped", id="tab-skipped"):
                    yield DataTable(id="skipped", cursor_type="row")
            with Vertical(id="preview"):
                yield Static("", id="preview-title", markup=False)
                with VerticalScroll(id="abc-scroll"):
                    yield Static("Highlight a piece to see it.", id="abc", markup=False)
                yield PianoRoll(id="roll")

    def on_mount(self) -> None:
        corpora = self.query_one("#corpora", DataTable)
        corpora.add_column("corpus", key="name", width=16)
        corpora.add_column("kind", key="kind", width=8)
        corpora.add_column("pieces", key="pieces", width=6)
        corpora.add_column("skipped", key="skipped", width=7)
        corpora.add_column("licence", key="licence", width=31)
        pieces = self.query_one("#pieces", DataTable)
        pieces.add_column("piece", width=16)
        pieces.add_column("title", width=14)
        self.query_one("#skipped", DataTable).add_columns("item", "reason")
        self.action_refresh()

    # --- the list of corpora --------------------------------------------------------------------

    def action_refresh(self) -> None:
        """Names and licences at once (cheap); piece counts from a worker (they read folders)."""
        corpora = self.query_one("#corpora", DataTable)
        try:
            self._corpora = {c.name: c for c in self.studio.catalogue.list()}
        except WorkspaceError as error:
            self.notify(str(error), severity="error", timeout=10)
            return
        selected = self._select_after_listing or self._highlighted_corpus()
        corpora.clear()
        for corpus in self._corpora.values():
            corpora.add_row(corpus.name, corpus.kind, "…", "…", corpus.licence, key=corpus.name)
        if selected in self._corpora:
            corpora.move_cursor(row=corpora.get_row_index(selected))
        self._count_pieces(list(self._corpora.values()))

    @work(thread=True, exclusive=True, group="count")
    def _count_pieces(self, corpora: list[Corpus]) -> None:
        listed = []
        for corpus in corpora:
            try:
                listed.append({"name": corpus.name, "pieces": len(corpus.pieces), "skipped": len(corpus.skipped)})
            except Exception as error:  # noqa: BLE001 - a broken corpus plugin spoils only its own row
                listed.append({"name": corpus.name, "pieces": "?", "skipped": "?", "error": str(error)})
        self.post_message(CorporaListed(listed))

    def on_corpora_listed(self, message: CorporaListed) -> None:
        table = self.query_one("#corpora", DataTable)
        for entry in message.corpora:
            if entry["name"] not in table.rows:
                continue
            table.update_cell(entry["name"], "pieces", str(entry["pieces"]))
            table.update_cell(entry["name"], "skipped", str(entry["skipped"]))
            if "error" in entry:
                self.notify(f"corpus {entry['name']}: {entry['error']}", severity="error")

    def _highlighted_corpus(self) -> str:
        table = self.query_one("#corpora", DataTable)
        if not table.row_count:
            return ""
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @on(DataTable.RowHighlighted, "#corpora")
    def _corpus_highlighted(self, event: DataTable.RowHighlighted) -> None:
        corpus = self._corpora.get(str(event.row_key.value))
        if corpus is not None:
            source = f" · {corpus.source}" if corpus.source and corpus.source not in corpus.description else ""
            self.query_one("#corpus-info", Static).update(f"{corpus.description} · licence: {corpus.licence}{source}")
            # After a short rest: moving through the list stays quick, and the first frame comes first.
            if self._pieces_timer is not None:
                self._pieces_timer.stop()
            self._pieces_timer = self.set_timer(PREVIEW_DELAY, lambda: self._list_pieces(corpus))

    @work(thread=True, exclusive=True, group="pieces")
    def _list_pieces(self, corpus: Corpus) -> None:
        pieces = [(p.key, p.title, p.format) for p in corpus.pieces]
        skipped = [(s.item, s.reason) for s in corpus.skipped]
        self.post_message(PiecesListed(corpus.name, pieces, skipped))

    def on_pieces_listed(self, message: PiecesListed) -> None:
        if message.corpus != self._highlighted_corpus():
            return
        pieces = self.query_one("#pieces", DataTable)
        pieces.clear()
        for key, title, _format in message.pieces:
            pieces.add_row(key, title, key=key)
        skipped = self.query_one("#skipped", DataTable)
        skipped.clear()
        for item, reason in message.skipped:
            skipped.add_row(item, reason)
        tabs = self.query_one("#corpus-tabs", TabbedContent)
        tabs.get_tab("tab-pieces").label = f"Pieces {len(message.pieces)}"  # type: ignore[assignment]
        tabs.get_tab("tab-skipped").label = f"Skipped {len(message.skipped)}"  # type: ignore[assignment]

    # --- preview -----------------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#pieces")
    def _piece_highlighted(self, event: DataTable.RowHighlighted) -> None:
        corpus = self._corpora.get(self._highlighted_corpus())
        if corpus is None or event.row_key.value is None:
            return
        key = str(event.row_key.value)
        try:
            piece = corpus.piece(key)
        except WorkspaceError:
            return
        self.query_one("#preview-title", Static).update(f"{piece.title} ({piece.format})")
        if piece.text is not None:
            self.query_one("#abc", Static).update(piece.text.strip())
        else:
            self.query_one("#abc", Static).update(f"{piece.format} file {piece.path.name}")
        self.query_one("#roll", PianoRoll).show_message("parsing…")
        self._previewing = key
        if self._preview_timer is not None:
            self._preview_timer.stop()
        self._preview_timer = self.set_timer(PREVIEW_DELAY, lambda: self._parse_piece(corpus.name, key))

    @work(thread=True, exclusive=True, group="preview")
    def _parse_piece(self, corpus_name: str, key: str) -> None:
        try:
            notes = notes_of_piece(self._corpora[corpus_name].piece(key))
        except (NotesUnavailable, WorkspaceError) as error:
            self.post_message(NotesParsed(key, error=str(error)))
            return
        self.post_message(NotesParsed(key, notes))

    def on_notes_parsed(self, message: NotesParsed) -> None:
        if message.target != self._previewing:
            return
        roll = self.query_one("#roll", PianoRoll)
        if message.error:
            roll.show_message(message.error)
        else:
            roll.show(message.notes)

    def action_maximize_preview(self) -> None:
        if self.maximized is None:
            self.maximize(self.query_one("#preview"), container=False)
        else:
            self.minimize()

    # --- import ------------------------------------------------------------------------------------

    def action_import_corpus(self) -> None:
        self.app.push_screen(ImportDialog(), self._import_answered)

    def _import_answered(self, request: ImportRequest | None) -> None:
        if request is None:
            return
        self.notify(f"Importing {request.path} as {request.name!r}: every piece is parsed once…", timeout=5)
        self._import(request)

    @work(thread=True, group="import")
    def _import(self, request: ImportRequest) -> None:
        # A separate process: music21's parsing holds the GIL for seconds, and the keys must stay quick.
        arguments = ["corpus", "import", str(request.path), "--name", request.name]
        if request.licence:
            arguments += ["--licence", request.licence]
        try:
            run_command(self.studio.workspace, arguments)
            corpus = self.studio.catalogue.get(request.name)
        except (CommandFailed, WorkspaceError) as error:
            self.post_message(ImportFinished(request.name, error=str(error)))
            return
        self.post_message(ImportFinished(request.name, kept=len(corpus.pieces), skipped=len(corpus.skipped)))

    def on_import_finished(self, message: ImportFinished) -> None:
        if message.error:
            self.notify(f"Import failed: {message.error}", severity="error", timeout=15)
            return
        skipped = f", skipped {message.skipped} (see Skipped)" if message.skipped else ""
        self.notify(f"Imported {message.kept} pieces into {message.corpus!r}{skipped}", timeout=8)
        self._select_after_listing = message.corpus
        self.action_refresh()
        self._select_after_listing = ""
