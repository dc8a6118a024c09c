"""ABC characters as tokens.

Normalisation (what a tune looks like before it is split into characters):

- Kept: the fields a player needs, `X:` (always written `X:1`: reference numbers index a book, and a
  model that learns them garbles them), `M:` (meter), `L:` (unit note length), `Q:` (tempo), `K:` (key),
  `R:` (rhythm) when present, and `V:` (voice) so several voices survive; written `F:value` with no space
  after the colon. `T:` (title) is kept only with the encoder parameter `titles`; with `all_fields` every
  field is kept (the collection as published, to measure a model on the same text a compressor sees).
- Dropped: every other field, bibliographic ones included (`Z:`, `N:`, `B:`, `S:`, `H:`, `O:`, `A:`, `C:`,
  `D:`, `G:`, `I:`, `P:`, `W:`, `w:`, `+:`...), comments (`%` to the end of the line; `\\%` stays), `%%`
  directives and blank lines.
- Line endings become `\\n`, tabs spaces, runs of spaces one space, and lines are stripped; the text ends
  with one newline. Normalising twice changes nothing.

MIDI and MusicXML pieces are read into music21 and written with the ABC writer, then normalised the same
way. Decoding gives the ABC text (a missing `X:` or `K:` line is added, `L:1/8` where neither `M:`
nor `L:` is given, and repeat starts that a `:|` implies are written: `explicit_repeats`); the Score
comes from music21's ABC parser, dropping trailing lines a model garbled when the whole tune does not
parse.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from tui_composer.api import EncodeError, Piece, TokenEncoder

if TYPE_CHECKING:
    from music21.stream import Score
    from tui_composer_plugins.abc.grammar import AbcGrammar

PLAYER_FIELDS = frozenset("XMLQKRV")
_FIELD = re.compile(r"^([A-Za-z+]):")
_COMMENT = re.compile(r"(?<!\\)%.*$")
MAX_REPAIRS = 40  # lines dropped from the end of a garbled sample before giving up


def normalise(text: str, *, titles: bool = False, all_fields: bool = False) -> str:
    """The ABC text as the encoder sees it (see the module docstring); idempotent."""
    kept = PLAYER_FIELDS | {"T"} if titles else PLAYER_FIELDS
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = " ".join(_COMMENT.sub("", raw).split())
        if not line:
            continue
        field = _FIELD.match(line)
        if field:
            name = field.group(1)
            if name not in kept and not all_fields:
                continue
            line = "X:1" if name == "X" else f"{name}:{line[2:].strip()}"
        lines.append(line)
    return "\n".join(lines) + "\n" if lines else ""


# What hides a bar line's characters: chord symbols and annotations, decorations, inline fields.
_NOT_BARS = re.compile(r'"[^"\n]*"?|![^!\n]*!?|\[[A-Za-z]:[^\]\n]*\]?')
_BAR_TOKEN = re.compile(r"::|:*\[?\|+\]?:*")


def explicit_repeats(lines: list[str]) -> list[str]:
    """Body lines with each implied repeat start written. ABC 2.1 (and our MIDI export) repeats a `:|` that
    has no `|:` from the previous `||`, `|]` or `:|`; abc2midi repeats it from the start instead, or warns
    "Assuming repeat" after an earlier `:|`. Where a section ends in `:|` and began at such a bar line, that
    bar line is written as the repeat start it means: `:|` as `::`, `||`, `|]` and `[|` as `|:`. Then every
    parser plays the tune alike (`A:|B:|` is AABB). A `:|` that ends its line stays, and the next music line
    starts with `|:` instead: music21 merges the bars on either side of a `::` at a line's end (4 of 200
    samples "off the meter"). A voice (`V:`) keeps its own sections."""
    fixed = list(lines)
    shifts: dict[int, int] = {}  # characters put before a line's start, which its later columns move by
    begun: tuple[int, int, str] | None = None  # (line, column, bar) where the current section began, if implied
    opened = False  # a written `|:` not yet closed: its `:|` repeats from there, whatever bar lines come between
    for number, line in enumerate(lines):
        if _FIELD.match(line):
            begun, opened = (None, False) if line.startswith("V:") else (begun, opened)
            continue
        masked = _NOT_BARS.sub(lambda m: "x" * len(m.group()), line)
        for token in _BAR_TOKEN.finditer(masked):
            bar, after = token.group(), masked[token.end() : token.end() + 1]
            if bar.startswith(":") and begun is not None and not opened:
                row, column, written = begun
                column += shifts.get(row, 0)
                if written == ":|" and not fixed[row][column + 2 :].strip():
                    below = next(i for i in range(row + 1, number + 1) if not _FIELD.match(lines[i]))
                    plain = fixed[below].startswith("|") and fixed[below][1:2] not in ("|", "]", ":", "1", "2")
                    fixed[below] = "|:" + fixed[below][1:] if plain else "|:" + fixed[below]  # `|:`, not `|:|`
                    shifts[below] = shifts.get(below, 0) + (1 if plain else 2)
                else:
                    explicit = "::" if written == ":|" else "|:"
                    fixed[row] = fixed[row][:column] + explicit + fixed[row][column + 2 :]
            if bar.endswith(":"):
                begun, opened = None, True  # a written repeat start (`|:`, `::`)
            elif opened and not bar.startswith(":"):
                continue  # `|:A||B:|`: the `||` starts no section
            elif (bar == ":|" and not (after.isdigit() or after == "[")) or bar in ("||", "|]", "[|"):
                begun, opened = (number, token.start(), bar), False
            elif bar != "|":
                begun, opened = None, False  # `:|2` goes on to an ending, `:|]`, `|||`...: left as written
    return fixed


def playable(text: str) -> str:
    """The text with the fields a parser needs: an `X:` line first, a `K:` line ending the header, and a
    unit note length where neither `M:` nor `L:` gives one; implied repeat starts written (`explicit_repeats`)."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines or not lines[0].startswith("X:"):
        lines.insert(0, "X:1")
    header_end = next((i for i, line in enumerate(lines) if not _FIELD.match(line)), len(lines))
    header = lines[:header_end]
    if not any(line.startswith("K:") for line in header):
        lines.insert(header_end, "K:C")
    if not any(line.startswith(("M:", "L:")) for line in header):
        # ABC 2.1 (3.1.7) then assumes 1/8, but music21 refuses the tune: say so explicitly.
        key = next(i for i, line in enumerate(lines) if line.startswith("K:"))
        lines.insert(key, "L:1/8")
    header_end = next((i for i, line in enumerate(lines) if not _FIELD.match(line)), len(lines))
    return "\n".join(lines[:header_end] + explicit_repeats(lines[header_end:])) + "\n"


def abc_score(text: str, name: str = "sample") -> Score:
    """A Score from ABC text; a garbled tail is dropped line by line until what is left parses with notes."""
    from tui_composer.api import parse_abc

    lines = playable(text).rstrip("\n").split("\n")
    header = next((i for i, line in enumerate(lines) if not _FIELD.match(line)), len(lines))
    last_error = "no notes"
    for end in range(len(lines), max(header, len(lines) - MAX_REPAIRS), -1):
        try:
            score = parse_abc("\n".join(lines[:end]) + "\n")
        except Exception as error:  # noqa: BLE001 - music21 raises many kinds on garbled text
            last_error = f"music21 could not read it ({type(error).__name__}: {error})"[:300]
            continue
        if score.recurse().notes:
            return score
    raise EncodeError(name, f"no playable ABC: {last_error}")


class AbcEncoder(TokenEncoder):
    name = "abc"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.titles = bool(params.get("titles", False))
        self.all_fields = bool(params.get("all_fields", False))
        self.vocabulary = None

    def read(self, piece: Piece) -> list[str]:
        if piece.format == "abc":
            text = self.normalise(piece.text if piece.text is not None else piece.path.read_text(errors="replace"))
            if not text:
                raise EncodeError(piece.key, "empty tune")
            self._check(text, piece)
        else:
            from tui_composer.api import check_lengths, parse_piece, piece_notes, score_notes, score_to_abc

            if piece.format == "midi":
                piece_notes(piece)  # the bounds on mido's notes, before music21 bars a note held for hours
            score = parse_piece(piece)
            check_lengths(score_notes(score), piece.key)
            text = self.normalise(score_to_abc(score, title=piece.title))
        return list(text)

    def normalise(self, text: str) -> str:
        return normalise(text, titles=self.titles, all_fields=self.all_fields)

    @staticmethod
    def _check(text: str, piece: Piece) -> None:
        """A tune is kept only if music21 reads notes from it, within the bounds on lengths (tied notes
        joined): what a model learns must play."""
        from tui_composer.api import check_lengths, parse_abc, score_notes

        try:
            score = parse_abc(text, name=piece.key)
        except EncodeError:
            raise
        except Exception as error:  # noqa: BLE001 - music21 raises many kinds on bad ABC
            raise EncodeError(piece.key, f"music21 could not read it ({type(error).__name__}: {error})"[:300]) from None
        if not score.recurse().notes:
            raise EncodeError(piece.key, "no notes")
        check_lengths(score_notes(score), piece.key)

    def text(self, ids: Iterable[int]) -> str:
        """Ids (with or without bos and eos) as text, up to the first eos; unknown ids are dropped."""
        return "".join(self.fitted_vocabulary().decode(np.asarray(list(ids)).ravel()))

    def to_abc(self, array: np.ndarray) -> str:
        text = self.text(array)
        if not text.strip():
            raise EncodeError("sample", "the sample holds no text")
        return playable(text)

    def decode(self, array: np.ndarray) -> Score:
        return abc_score(self.to_abc(array))

    def constraint(self) -> AbcGrammar:
        """The ABC checker over this vocabulary: samplers mask what can't lead to a valid tune."""
        from tui_composer_plugins.abc.grammar import AbcGrammar

        return AbcGrammar.for_vocabulary(self.fitted_vocabulary())

    def encode_primer(self, text: str) -> np.ndarray:
        """The primer's characters, continued as text (not read as a tune: it may stop anywhere), after an
        `X:1` line when it has none, as every tune the model saw began with its X: line."""
        vocabulary = self.fitted_vocabulary()
        if not text.startswith("X:"):
            text = "X:1\n" + text
        unknown = sorted({c for c in text if vocabulary.id(c) == vocabulary.unk})
        if unknown:
            raise EncodeError(
                "primer",
                f"the primer holds characters the model never saw: {', '.join(repr(c) for c in unknown)}; "
                "leave them out",
            )
        return np.asarray([vocabulary.id(c) for c in text], np.int32)

    def symbols_text(self, array: np.ndarray) -> str:
        return super().symbols_text(array) if self.vocabulary is None else self.text(array)
