"""Corpora: bundled and imported corpora, their pieces and skipped items, a piece's ABC and piano roll."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from tui_composer.services.corpora import Corpus
from tui_composer.services.launcher import CommandFailed
from tui_composer.services.workspace import WorkspaceError
from tui_composer.tui.messages import CorporaListed, ImportFinished, ImportProgressed, NotesParsed, PiecesListed
from tui_composer.tui.notes import NotesUnavailable, preview_of_piece
from tui_composer.tui.screens.base import ComposerScreen
from tui_composer.tui.screens.dialogs import ImportDialog, ImportRequest
from tui_composer.tui.screens.import_progress import ImportProgressDialog, run_import
from tui_composer.tui.widgets.filter_bar import FilterBar
from tui_composer.tui.widgets.piano_roll import PianoRoll
from tui_composer.tui.widgets.row_table import Column, RowTable

PREVIEW_DELAY = 0.2  # seconds of rest on a piece before it is parsed: scrolling stays quick
MAX_PIECES_SHOWN = 2500  # rows drawn at once (a table of 8,514 takes over a second to draw); the rest: `/`

CORPUS_COLUMNS = (
    Column("name", "corpus", 13, whole=True),
    Column("kind", "kind", 8, drop=1),
    Column("pieces", "pieces", 6, align="right"),
    Column("skipped", "skipped", 7, align="right"),
    Column("licence", "licence", 16, grow=1),
)
PIECE_COLUMNS = (Column("key", "piece", 10, grow=2), Column("title", "title", 14, grow=1))
SKIPPED_COLUMNS = (Column("item", "item", 12, grow=1), Column("reason", "reason", 16, grow=2))


class PiecePreview(Vertical):
    """The highlighted piece: title, ABC and piano roll; `p` shows it full screen."""

    ALLOW_MAXIMIZE = True


class CorporaScreen(ComposerScreen):
    MODE = "corpora"
    BINDINGS = [
        Binding("i", "import_corpus", "Import"),
        Binding("p", "maximize_preview", "Preview"),
        Binding("slash", "filter", "Filter"),
        Binding("r", "refresh", "Refresh"),
    ]
    PALETTE = (
        ("Import a corpus", "Import a file or folder of music as a new corpus", "import_corpus"),
        ("Preview piece", "Show the highlighted piece's ABC and piano roll full screen (p)", "maximize_preview"),
        ("Filter pieces", "Keep the pieces with every typed word in their name or title (/)", "filter"),
    )

    def __init__(self) -> None:
        super().__init__()
        self._corpora: dict[str, Corpus] = {}
        self._preview_timer: Timer | None = None
        self._pieces_timer: Timer | None = None
        self._previewing = ""
        self._listed = ""  # the corpus whose pieces are listed (or being listed)
        self._select_after_listing = ""
        self._import_progress: ImportProgressDialog | None = None
        self.corpora = RowTable(CORPUS_COLUMNS, id="corpora", zebra_stripes=True)
        self.pieces = RowTable(PIECE_COLUMNS, id="pieces", max_rows=MAX_PIECES_SHOWN)
        self.skipped = RowTable(SKIPPED_COLUMNS, id="skipped")

    def compose_body(self) -> ComposeResult:
        yield self.corpora
        yield Static("", id="corpus-info", markup=False)
        with Horizontal(id="corpus-detail"):
            with TabbedContent(id="corpus-tabs"):
                with TabPane("Pieces", id="tab-pieces"):
                    yield FilterBar(self.pieces, "pieces", id="pieces-filter")
                    yield self.pieces
                with TabPane("Skipped", id="tab-skipped"):
                    yield FilterBar(self.skipped, "skipped items", id="skipped-filter")
                    yield self.skipped
            with PiecePreview(id="preview"):
                yield Static("", id="preview-title", markup=False)
                with VerticalScroll(id="abc-scroll"):
                    yield Static("Highlight a piece to see it.", id="abc", markup=False)
                yield PianoRoll(id="roll")

    def on_mount(self) -> None:
        self.action_refresh()

    # --- the list of corpora --------------------------------------------------------------------

    def action_refresh(self) -> None:
        """Names and licences at once (cheap); piece counts from a worker (they read folders)."""
        try:
            self._corpora = {c.name: c for c in self.studio.catalogue.list()}
        except WorkspaceError as error:
            self.notify(str(error), severity="error", timeout=10)
            return
        selected = self._select_after_listing or self.corpora.selected_key
        self._listed = ""
        self.corpora.set_rows(
            (c.name, {"name": c.name, "kind": c.kind, "pieces": "…", "skipped": "…", "licence": c.licence})
            for c in self._corpora.values()
        )
        if selected:
            self.corpora.select(selected)
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
        counts = {entry["name"]: entry for entry in message.corpora}
        self.corpora.sync_rows(
            (name, {**values, "pieces": counts[name]["pieces"], "skipped": counts[name]["skipped"]})
            if name in counts
            else (name, values)
            for name, values in self.corpora.records.items()
        )
        for entry in message.corpora:
            if "error" in entry:
                self.notify(
                    f"corpus {entry['name']} could not be read: {entry['error']}; see Plugins (F5)", severity="error"
                )

    @on(DataTable.RowHighlighted, "#corpora")
    def _corpus_highlighted(self, event: DataTable.RowHighlighted) -> None:
        corpus = self._corpora.get(str(event.row_key.value))
        if corpus is None or corpus.name == self._listed:
            return  # the same corpus again (the table was redrawn): its pieces are listed already
        self._listed = corpus.name
        source = f" · {corpus.source}" if corpus.source and corpus.source not in corpus.description else ""
        self.query_one("#corpus-info", Static).update(f"{corpus.description} · licence: {corpus.licence}{source}")
        # After a short rest: moving through the list stays quick, and the first frame comes first.
        if self._pieces_timer is not None:
            self._pieces_timer.stop()
        self._pieces_timer = self.set_timer(PREVIEW_DELAY, lambda: self._list_pieces(corpus))

    @work(thread=True, exclusive=True, group="pieces")
    def _list_pieces(self, corpus: Corpus) -> None:
        pieces = [(p.key, p.title, str(p.format)) for p in corpus.pieces]
        skipped = [(s.item, s.reason) for s in corpus.skipped]
        self.post_message(PiecesListed(corpus.name, pieces, skipped))

    def on_pieces_listed(self, message: PiecesListed) -> None:
        if message.corpus != self.corpora.selected_key:
            return
        self.pieces.set_rows((key, {"key": key, "title": title}) for key, title, _format in message.pieces)
        self.skipped.set_rows(
            (str(i), {"item": item, "reason": reason}) for i, (item, reason) in enumerate(message.skipped)
        )
        self._count_changed()

    def _count_changed(self) -> None:
        tabs = self.query_one("#corpus-tabs", TabbedContent)
        for tab, table, noun in (("tab-pieces", self.pieces, "Pieces"), ("tab-skipped", self.skipped, "Skipped")):
            total = len(table.records)
            shown = f"{len(table.shown):,} of {total:,}" if len(table.shown) < total else f"{total:,}"
            tabs.get_tab(tab).label = f"{noun} {shown}"
        for bar in self.query(FilterBar):
            bar.show_count()

    def action_filter(self) -> None:
        tabs = self.query_one("#corpus-tabs", TabbedContent)
        bar_id = "skipped-filter" if tabs.active == "tab-skipped" else "pieces-filter"
        self.query_one(f"#{bar_id}", FilterBar).open()

    @on(RowTable.Redrawn, "#pieces, #skipped")
    def _redrawn(self) -> None:
        self._count_changed()

    # --- preview -----------------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#pieces")
    def _piece_highlighted(self, event: DataTable.RowHighlighted) -> None:
        corpus = self._corpora.get(self.corpora.selected_key or "")
        if corpus is None or event.row_key.value is None:
            return
        key = str(event.row_key.value)
        if key == self._previewing:
            return
        try:
            piece = corpus.piece(key)
        except WorkspaceError:
            return
        self.query_one("#preview-title", Static).update(f"{piece.title} ({piece.format})")
        if piece.text is not None:
            self.query_one("#abc", Static).update(piece.text.strip())
        else:
            self.query_one("#abc", Static).update(f"{piece.format} file {piece.path.name}: writing it as ABC…")
        self.query_one("#roll", PianoRoll).show_message("parsing…")
        self._previewing = key
        if self._preview_timer is not None:
            self._preview_timer.stop()
        self._preview_timer = self.set_timer(PREVIEW_DELAY, lambda: self._parse_piece(corpus.name, key))

    @on(DataTable.RowHighlighted, "#skipped")
    def _skipped_highlighted(self, event: DataTable.RowHighlighted) -> None:
        values = self.skipped.records.get(str(event.row_key.value))
        if values is None:
            return
        self._previewing = ""
        self.query_one("#preview-title", Static).update(f"Skipped: {values['item']}")
        self.query_one("#abc", Static).update(f"{values['reason']}")  # whole, wrapped: the table cuts it
        self.query_one("#roll", PianoRoll).show_message("not imported")

    @work(thread=True, exclusive=True, group="preview")
    def _parse_piece(self, corpus_name: str, key: str) -> None:
        # In the preview helper process: music21 never loads into the TUI.
        try:
            preview = preview_of_piece(self._corpora[corpus_name].piece(key))
        except (NotesUnavailable, WorkspaceError) as error:
            self.post_message(NotesParsed(key, error=str(error)))
            return
        self.post_message(NotesParsed(key, preview.notes, abc=preview.abc))

    def on_notes_parsed(self, message: NotesParsed) -> None:
        if message.target != self._previewing:
            return
        roll = self.query_one("#roll", PianoRoll)
        if message.error:
            roll.show_message(message.error)
        else:
            roll.show(message.notes)
        if message.abc is not None:
            self.query_one("#abc", Static).update(message.abc.strip())
        elif message.error and not self._highlighted_piece_has_text():
            self.query_one("#abc", Static).update(f"No ABC: {message.error}")

    def _highlighted_piece_has_text(self) -> bool:
        corpus = self._corpora.get(self.corpora.selected_key or "")
        try:
            return corpus is not None and corpus.piece(self._previewing).text is not None
        except WorkspaceError:
            return False

    def action_maximize_preview(self) -> None:
        if self.maximized is None:
            self.maximize(self.query_one("#preview", PiecePreview), container=False)
        else:
            self.minimize()

    # --- import ------------------------------------------------------------------------------------

    def action_import_corpus(self) -> None:
        self.app.push_screen(ImportDialog(), self._import_answered)

    def _import_answered(self, request: ImportRequest | None) -> None:
        if request is None:
            return
        # Its progress in a dialog; esc hides it and the import goes on (ImportFinished says when it is done).
        self._import_progress = ImportProgressDialog(f"{request.path} as {request.name!r}")
        self.app.push_screen(self._import_progress)
        self._import(request)

    @work(thread=True, group="import")
    def _import(self, request: ImportRequest) -> None:
        # A separate process: music21's parsing holds the GIL for seconds, and the keys must stay quick.
        arguments = ["corpus", "import", str(request.path), "--name", request.name]
        if request.licence:
            arguments += ["--licence", request.licence]
        try:

            def progressed(done: int, total: int) -> None:
                self.post_message(ImportProgressed(done, total))

            run_import(self.studio.workspace, arguments, progressed)
            corpus = self.studio.catalogue.get(request.name)
        except (CommandFailed, WorkspaceError) as error:
            self.post_message(ImportFinished(request.name, error=str(error)))
            return
        self.post_message(ImportFinished(request.name, kept=len(corpus.pieces), skipped=len(corpus.skipped)))

    def on_import_progressed(self, message: ImportProgressed) -> None:
        if self._import_progress is not None:
            self._import_progress.show(message.done, message.total)

    def on_import_finished(self, message: ImportFinished) -> None:
        if self._import_progress is not None and self._import_progress.is_current:
            self._import_progress.dismiss(None)
        self._import_progress = None
        if message.error:
            self.notify(f"Import of {message.corpus!r} failed: {message.error}", severity="error", timeout=15)
            return
        skipped = f", skipped {message.skipped} (see Skipped)" if message.skipped else ""
        self.notify(f"Imported {message.kept} pieces into {message.corpus!r}{skipped}", timeout=8)
        self._select_after_listing = message.corpus
        self.action_refresh()
        self._select_after_listing = ""
