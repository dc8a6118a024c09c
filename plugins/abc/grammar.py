"""An incremental ABC checker: which next characters can still lead to a tune that plays.

`AbcGrammar` implements `TokenConstraint` over the `abc` encoder's character vocabulary. It reads a tune
one character at a time as a small state machine and allows a character only when the tune can still be
completed from there, so a sampler that masks the disallowed characters always ends with a tune that
music21 parses, that writes MIDI, and whose bars agree with the meter.

The language the masks offer is the normalised ABC of the training corpora (see `plugins/abc/encoder.py`),
restricted to what music21 10.5's ABC reader interprets the way the ABC standard means it, and to the
forms that music21, `abc2midi` and abcjs (the parser behind web players) read alike (issue 14):

- Header: `X:` first; then `T:`, `R:`, `Q:`, `M:`, `L:` lines; `K:` last, after `M:`. `M:` and `L:`
  take the values in `METERS` and `UNITS`, `K:` a tonic and an optional mode.
- Body: notes (accidental, pitch, octave marks, length), rests `z`, chords `[CEG]2`, chord symbols from
  `CHORD_SYMBOLS` (root, `#`/`b`, a kind of `CHORD_KINDS`, `/bass`: `"Am7"`, `"G/B"`), `!name!` decorations
  from `DECORATION_NAMES` (ABC 2.1's), both right before their note; grace groups `{ag}`, decorations
  `. ~ u v T`, tuplets `(3` `(3:2`, ties `-`, slurs `( )`, broken rhythm `> < >> <<`, bar lines
  `| || |] [| |: :| :: :|| |1 :|2 [1 [2`, line continuation `\\`, and `M:`/`L:`/`K:` lines between bars.
  After a bar line comes neither a bracket nor another bar line (`:| [c'eg]`, never `:|[c'eg]`).
- Every bar lasts exactly what the meter says, except the first (a pickup), the last, and bars that
  begin or end at a section boundary (any bar line but `|`: repeats, endings, double bars) which may be
  shorter, in a sampler only as abc2midi counts them (below). No bar is ever longer. Durations follow
  music21's reading: tuplet ratios by meter, broken rhythm only between adjacent notes, grace notes take
  no time, a chord lasts as its first note.
- Opened things close: chords, grace groups, chord symbols, tuplets and ties. Slurs are only drawn, and
  music21 ignores a `)` with nothing open and a slur left open at the end: they need not match. One slur
  is open at a time (abc2midi: "Slur within slur"; training tunes may nest three).
- Repeats and endings as abc2midi reads them (`_structure_ok`): an open repeat or a first ending is closed
  by `:|` before any `||`, `|]`, `[|` or `|:`; a first ending `|1` `[1` only inside a repeat or in the
  tune's first section, a second `:|2` `[2` only right after it; after an ending a `:|` only closes a `|:`;
  the tune ends with no repeat left open, in no empty ending and in no first ending.
- What abc2midi plays differently or refuses (issue 14): a decoration is followed by its note, rest or
  chord, never by `(` or `{` (`T(3ABc`: "Malformed note"), and `~`, `T`, `!trill!` by no chord; a
  broken-rhythm mark by its note; no tie or broken rhythm on a staccato or fermata note, no roll on a
  tied note or after grace notes. An `R:` naming a hornpipe goes with `M:2/4`, `4/4` or `C` (either
  order), and in a hornpipe, which abc2midi swings itself, no mark where it swings, no staccato or fermata.
- Bars as abc2midi counts them (`_counted_ok`): it carries a short bar's time across a section boundary
  (`||`, `|]`, `[|`, `|:`) into the next bar, across a `:|` into the bar it goes back to (the section's
  first: after the last `|:`, `::`, `:|`, `||` or `|]`, else the tune's first) and the second time into
  the bar after. So a `|` closes only a full bar (or the tune's first), a `:|` a bar that with the
  section's first makes one full bar (or a full bar after a full first one), and a short bar closes at
  a boundary only where it completes the section's pickup the same way; the bar after it is then a
  pickup again, completing it. (abc2midi would also read `B4 c4|d6||A2|` with no pickup before: offered,
  the short bar it forces after `||` left a model little but the end, 4 of 40 samples under 8 bars.)
  A chord's notes are as long as its first, with a length inside the chord or after it, not both
  (abc2midi reads `[c2e2]2` as 2 units); a tuplet's notes as long as its first ("Different length notes
  in tuple"), which leaves room in the bar for the others and ends on the shortest note's grid.
- The end of the tune is offered wherever it may come, never forced: after a full bar, or one that
  completes the pickup, with or without its bar line; a short bar closes only at such a boundary,
  because after `|` it would have to be the last, and a model that wrote one by mistake (12.5% of
  `oneills-default`'s samples before) had its tune ended there.

That is the language the masks offer a sampler. `check_text` reads a training tune with a wider one (the
READING flag in its states, never set in a sampler's): what music21 reads without failing but a sampler
should not write, so that every training tune music21 plays with its bars on the meter is accepted:

- Tokens music21 drops: lone letters (`S`, `V`, `y`, `x`, `R`, `T`, `~`, `=`...), any token starting with
  `H`, `x` or `Z` (so `HG2` loses its note: the bar is measured without it), `=20`, a chord symbol joined to
  a token ending in `y`, `x`, `T`...; characters it skips (`+`, `*`, a stray digit, `]` or `}`); a field it
  ignores mid-line (`G2H::` is an `H:` field to the end of the line, so the bar goes on on the next line).
- Articulation tokens `u v k K M` anywhere (`Ka2` at a line start is an accent, not a field), several
  decorations before a note (`~Hg2`, `TvG3`), a chord symbol starting with `>` (music21 drops its note).
- A broken-rhythm mark between notes across whitespace or a line end, inside a tuplet, after `)` or a
  staccato dot (ignored there), `>>>` and `<<<`; `(3(3`; a slur then a space; a tie after a rest or a
  grace group, inside a chord; a rest in a chord; grace notes before a bar line.
- Any chord symbol text and `!...!` up to music21's 20 characters (an unclosed `!` is skipped alone);
  the decorations `k`, `U` and `H`, the dotted bar line `:` and `[|]`, a tie after a staccato dot
  (`g.-f`), a chord or an ending right after a bar line, a short last bar closed by `|`;
  `K:` values as music21 reads them (`K:Bn`, `K:Dmix=c`); any `M:p/q`, `M:none` (bars unmeasured),
  `L:1/1` to `L:1/32`, lengths up to 64 units; titles in any bytes.
- Bars without notes after a short last bar (music21 skips them when measuring).

Speed: a state is a small immutable tuple; transitions and masks are cached per state, so after warm-up
a sampling step costs two dictionary look-ups. A full mask costs a step for every character (about 90),
so `allows(state, token)` and `advance` work one character at a time: a sampler that draws first and
checks the token needs a full mask only when the token it drew is refused. `bounded(max_length)` gives a
checker that also steers the tune to its end within a length budget, so a sampler that stops at
`max_length` never cuts a tune.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from tui_composer.api import TokenConstraint, Vocabulary

# --- durations ----------------------------------------------------------------------------------------

# Ticks per whole note: divisible by every duration the grammar can produce (lengths down to 1/8 of a
# 1/16 unit, tuplets of 2 to 9, broken rhythm quarters).
WHOLE = 2**12 * 3**2 * 5 * 7

# Note length suffixes and their multiple of the unit length L, as music21 reads them.
LENGTHS: dict[str, tuple[int, int]] = {
    "": (1, 1),
    "1": (1, 1),
    "2": (2, 1),
    "3": (3, 1),
    "4": (4, 1),
    "5": (5, 1),
    "6": (6, 1),
    "7": (7, 1),
    "8": (8, 1),
    "9": (9, 1),
    "12": (12, 1),
    "16": (16, 1),
    "/": (1, 2),
    "//": (1, 4),
    "/2": (1, 2),
    "/4": (1, 4),
    "/8": (1, 8),
    "3/": (3, 2),
    "3/2": (3, 2),
    "3/4": (3, 4),
    "3/8": (3, 8),
    "5/2": (5, 2),
    "7/": (7, 2),
    "7/2": (7, 2),
    "7/4": (7, 4),
}
MIN_LENGTH = min(LENGTHS.values(), key=lambda f: f[0] / f[1])


def _prefix_minimum(values: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """For every prefix of a length suffix, the shortest length it can still become."""
    best: dict[str, tuple[int, int]] = {}
    for text, fraction in values.items():
        for end in range(len(text) + 1):
            prefix = text[:end]
            if prefix not in best or fraction[0] * best[prefix][1] < best[prefix][0] * fraction[1]:
                best[prefix] = fraction
    return best


class Lengths(NamedTuple):
    """Length suffixes: their values, the shortest each prefix can become, and what it can become."""

    values: dict[str, tuple[int, int]]
    prefix_min: dict[str, tuple[int, int]]
    completions: dict[str, tuple[tuple[int, int], ...]]

    @classmethod
    def of(cls, values: dict[str, tuple[int, int]]) -> Lengths:
        prefix_min = _prefix_minimum(values)
        completions = {
            prefix: tuple(sorted({v for k, v in values.items() if k.startswith(prefix)}, key=lambda f: f[0] / f[1]))
            for prefix in prefix_min
        }
        return cls(values, prefix_min, completions)


OFFERED_LENGTHS = Lengths.of(LENGTHS)
# Training tunes may hold any whole multiple of the unit up to 64 (`C24` in an Essen tune with L:1/32).
READ_LENGTHS = Lengths.of({**LENGTHS, **{str(n): (n, 1) for n in range(1, 65)}})

# Meter -> (bar length in ticks, compound: tuplets of 5, 7, 9 are in the time of 3, music21's rule)
METERS: dict[str, tuple[int, bool]] = {
    "2/4": (WHOLE // 2, False),
    "3/4": (WHOLE * 3 // 4, False),
    "4/4": (WHOLE, False),
    "5/4": (WHOLE * 5 // 4, False),
    "6/4": (WHOLE * 6 // 4, True),
    "3/8": (WHOLE * 3 // 8, False),
    "5/8": (WHOLE * 5 // 8, False),
    "6/8": (WHOLE * 6 // 8, True),
    "7/8": (WHOLE * 7 // 8, False),
    "9/8": (WHOLE * 9 // 8, True),
    "12/8": (WHOLE * 12 // 8, True),
    "2/2": (WHOLE, False),
    "3/2": (WHOLE * 3 // 2, False),
    "C": (WHOLE, False),
    "C|": (WHOLE, False),
}
UNITS: dict[str, int] = {"1/4": WHOLE // 4, "1/8": WHOLE // 8, "1/16": WHOLE // 16}

# Tonic -> position on the circle of fifths; mode -> offset (K:D mix has one sharp: 2 - 1).
_TONICS = {
    "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F#": 6, "C#": 7,
    "F": -1, "Bb": -2, "Eb": -3, "Ab": -4, "Db": -5, "Gb": -6, "Cb": -7,
}  # fmt: skip
_MODES = {
    "": 0, "maj": 0, "major": 0, "ion": 0, "ionian": 0, "m": -3, "min": -3, "minor": -3, "aeo": -3,
    "aeolian": -3, "dor": -2, "dorian": -2, "phr": -4, "phrygian": -4, "lyd": 1, "lydian": 1,
    "mix": -1, "mixolydian": -1,
}  # fmt: skip


def _keys() -> set[str]:
    keys = set()
    for tonic, fifths in _TONICS.items():
        for mode, offset in _MODES.items():
            if abs(fifths + offset) > 7:
                continue
            for spelling in {mode, mode.capitalize()}:
                keys.add(tonic + spelling)
                if spelling:
                    keys.add(f"{tonic} {spelling}")
    return keys


KEYS = frozenset(_keys())
TEMPI = frozenset(f"{beat}{bpm}" for beat in ("", "1/4=", "1/8=", "3/8=", "1/2=") for bpm in range(40, 241))

# Chord symbols a sampler is offered: root, accidental, kind, bass. The kinds are those of the grammar
# root [#b] (m|min|maj|dim|aug|sus|+|o) (6|7|9|11|13) /bass that music21, abc2midi and abcjs all read as
# the same chord (checked by the tests): abc2midi knows no `min`, `maj`, `o`, `13`; abcjs plays `11`
# without its third and `dim9` as a major triad. Training tunes may hold any text (READING).
CHORD_KINDS = ("", "m", "6", "7", "9", "m6", "m7", "m9", "maj7", "dim", "dim7", "aug", "aug7", "sus", "+")
_CHORD_ROOTS = tuple(root + accidental for root in "ABCDEFG" for accidental in ("", "#", "b"))
_CHORD_BASSES = ("", *(f"/{root}" for root in _CHORD_ROOTS))
CHORD_SYMBOLS = frozenset(root + kind + bass for root in _CHORD_ROOTS for kind in CHORD_KINDS for bass in _CHORD_BASSES)
# `!name!` decorations a sampler is offered: ABC 2.1's list, less what abc2midi ignores with a warning
# (`!roll!`, `!upbow!`, `!segno!`...), what abcjs doesn't know (`!dacapo!`) and the spanners music21
# reads as marks of their own (`!crescendo(!`).
DECORATION_NAMES = frozenset(
    {"trill", "mordent", "turn", "arpeggio", "accent", "fermata", "wedge", "breath", "ppp", "pp", "p", "mp", "mf",
     "f", "ff", "fff", "sfz"}
)  # fmt: skip

MAX_TEXT = 100  # characters in a title or rhythm field
# abc2midi takes a tune for a hornpipe when its `R:` starts with one of these, and then wants the meter
# 2/4 or 4/4 ("Hornpipe must be in 2/4 or 4/4 time": `C|` and `2/2` are not): a sampler writes them together.
HORNPIPE_NAMES = ("Hornpipe", "hornpipe")
HORNPIPE_METERS = frozenset({"2/4", "4/4", "C"})

# One-character decorations offered, from ABC 2.1's `.~HLMOPSTuv`: `H` makes music21 drop its note (and
# abc2midi refuses it before a bar line), and music21 drops `L M O P S` where they stand alone.
DECORATIONS = ".~uvT"
# After a broken-rhythm mark only what music21 folds into the next note's token may come, or the mark
# is ignored: chord symbols, these decorations, accidentals, the note itself.
QUIET_DECORATIONS = "~T"
NOTE_DECORATIONS = "~T"
ACCIDENTALS = ("^", "^^", "_", "__", "=")
PITCHES = frozenset("ABCDEFGabcdefg")
MAX_OCTAVE_MARKS = 2
MAX_SLURS = 3
MAX_OFFERED_SLURS = 1  # sampling: abc2midi warns "Slur within slur" (a tuplet's `(3` is no slur)
MAX_GRACE = 8
MAX_CHORD = 6
MAX_DECORATIONS = 3

# Broken rhythm: (left factor, right factor) as fractions.
BROKEN: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    ">": ((3, 2), (1, 2)),
    "<": ((1, 2), (3, 2)),
    ">>": ((7, 4), (1, 4)),
    "<<": ((1, 4), (7, 4)),
    ">>>": ((15, 8), (1, 8)),  # read in training tunes only: never offered to a sampler
    "<<<": ((1, 8), (15, 8)),
}
BROKEN_RIGHT = [(1, 1)] + [right for _, right in BROKEN.values()]
BROKEN_INDEX = {symbol: index for index, symbol in enumerate(BROKEN, start=1)}

# Bar lines -> the first bar token music21 splits each into, which closes the bar before. Only a plain
# `|` is not a section boundary; every other bar line holds one, so the bar after it may be short.
BAR_LINES: dict[str, str] = {
    "|": "|",
    ":": "|",  # a dotted bar line: plain, like `|`
    "||": "||",
    "|]": "|]",
    "[|": "[|",
    "[|]": "[|",
    "|:": "|:",
    ":|": ":|",
    "::": ":|",
    ":||": ":|",
    "|1": "|",
    "|2": "|",
    ":|1": ":|",
    ":|2": ":|",
    "[1": "[1",
    "[2": "[2",
}
BAR_PREFIXES = frozenset(text[:end] for text in BAR_LINES for end in range(1, len(text) + 1))
# What a sampler is offered: abcjs doesn't know the dotted bar line `:` (`c:d4`), abc2midi reads `[|]` as
# a chord, and `[1`, `[2` as no bar line unless one comes right before (`cBA [1 GAB`: "Bar 1 has 6 time
# units" in 3/4); a first ending starts `|1`, never `:|1`, a second `:|2`.
OFFERED_BAR_LINES = {
    line: closing for line, closing in BAR_LINES.items() if line not in (":", "[|]", ":|1", "[1", "[2")
}
OFFERED_BAR_PREFIXES = frozenset(text[:end] for text in OFFERED_BAR_LINES for end in range(1, len(text) + 1))
FIRST_ENDINGS = frozenset({"|1", ":|1", "[1"})
SECOND_ENDINGS = frozenset({"|2", ":|2", "[2"})
REPEAT_CLOSINGS = frozenset({":|", "::", ":||", ":|1", ":|2"})
# Where a section begins, for a `:|` with no `|:` (as tui_composer.music.export.repeat_starts and the
# encoder's explicit_repeats read it): after these, or at the start of the tune.
SECTION_STARTS = frozenset({"||", "|]", "|:", *REPEAT_CLOSINGS})
# Core.first (sampling): the section's first bar is being written; or no `:|` can come before a `|:`.
FIRST_OPEN, FIRST_UNUSED = -1, -2

# Tuplets: p -> (q in simple time, q in compound time), music21's table.
TUPLETS = {2: (3, 3), 3: (2, 2), 4: (3, 3), 5: (2, 3), 6: (2, 2), 7: (2, 3), 8: (3, 3), 9: (2, 3)}

# --- reading training tunes ---------------------------------------------------------------------------
# What music21 10.5's tokenizer does with notation the sampler is never offered: `check_text` reads a
# training tune with these rules (the READING flag), the masks never use them.

# Characters music21 folds into a note token before its pitch, and letters that can't be its pitch.
TOKEN_DECORATIONS = ".~^=_HLMOPSTuv"
NOT_PITCH_LETTERS = "~wuvhHLTSN"
# Tokens music21 drops whole (its own list), besides any token starting with x, H or Z: `HG2`, a
# fermata on a note, loses the note.
DROPPED_TOKENS = frozenset(
    {"w", "u", "v", "v.", "h", "H", "vk", "uk", "U", "~", ".", "=", "V", "S", "s", "i", "I", "ui", "u.", "Q",
     "Hy", "Hx", "r", "m", "M", "n", "N", "o", "O", "P", "l", "L", "R", "y", "T", "t", "x", "Z"}
)  # fmt: skip
DROPPED_STARTS = "xHZ"
# A chord symbol joined to a token ending like this is dropped with it (music21: "bad chords").
DROPPED_ENDINGS = ("u", "v", "k", "K", "Q", ".", "y", "T", "w", "h", "x", "v.")
# Single-character tokens music21 keeps as an articulation of the next note.
ARTICULATIONS = "uvkKM"
# Characters that start a token the reading rules follow (pitches, rests and `.` keep their own rules).
READING_TOKEN_STARTS = frozenset(
    c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz~^=_" if c not in PITCHES and c != "z"
)
# Characters music21 skips where a token would start (digits, a stray `]` or `}`, `+`...).
IGNORED_CHARS = frozenset("0123456789,/'+*]}#&$@?;`")
# Body fields music21 ignores, read mid-line as `H:...` to the end of the line (`G2H::` is one).
IGNORED_FIELDS = "H"
MAX_TOKEN = 8  # characters in one dropped token
MAX_READING_EXCLAMATION = 18  # music21 looks 20 characters ahead for the closing `!`
SPANNER_MARKS = frozenset({"crescendo(", "crescendo)", "diminuendo(", "diminuendo)"})
# Meters and units read in training tunes (the Essen tunes' `M:4/2`, `M:none`, `L:1/32`...): any p/q,
# compound where music21's beat divides in three (p = 6, 9, 12, 15); `none` leaves the bars unmeasured.
METERS_READ: dict[str, tuple[int, bool]] = {
    **{f"{p}/{q}": (WHOLE * p // q, p % 3 == 0 and p > 3) for p in range(1, 17) for q in (1, 2, 4, 8, 16)},
    **METERS,
}
UNMETERED_BAR = WHOLE * 10_000  # `M:none`: a bar can hold anything, and any bar may be short
UNITS_READ = {**UNITS, "1/1": WHOLE, "1/2": WHOLE // 2, "1/32": WHOLE // 32}
MAX_READING_TEXT = 300  # characters in a title or rhythm field of a training tune
# Modes as music21 reads them from the text after the tonic in `K:` (its first three letters).
_MUSIC21_MODES = (("dor", -2), ("phr", -4), ("lyd", 1), ("mix", -1), ("maj", 0), ("ion", 0), ("aeo", -3), ("m", -3))

HEADER_FIELDS = "XTRQMLK"
BODY_FIELDS = "MLK"

EOS = "\x00"  # the end of the tune, as a pseudo-character


# --- states -------------------------------------------------------------------------------------------

# modes
H_LINE, H_COLON, H_VALUE = 0, 1, 2
B_IDLE, B_AFTER, B_BAR, B_BROKEN, B_PAREN, B_TUPLET, B_PREFIX = 10, 11, 12, 13, 14, 15, 16
B_SYMBOL, B_GRACE, B_ACCIDENTAL, B_NOTE, B_BRACKET, B_CHORD, B_CHORD_LENGTH = 17, 18, 19, 20, 21, 22, 23
B_FIELD_COLON, B_FIELD_VALUE, B_CONTINUE, DONE, B_EXCLAIM = 24, 25, 26, 27, 28
B_TOKEN, B_DROP, B_META, B_SKIP = 29, 30, 31, 32  # reading only: see READING

# flags
PICKUP = 1  # no bar with notes has been closed yet: this one may be short
AFTER_BOUNDARY = 2  # this bar began at a section boundary: it may be short
HAS_NOTE = 4  # the tune has a pitched note
TIE = 8  # a tie waits for its note
LAST_ONLY = 16  # a short bar was closed by `|`: only the end of the tune may follow
UNIT_SET = 32  # L: was given, so M: no longer sets the unit
SYMBOL_WAITING = 128  # a chord symbol waits for its note: a lone `H` would join it and make a phantom C
READING = 256  # a training tune read by `check_text`: music21's tolerances apply (never set in a sampler's states)
GHOST = 512  # reading: the next note carries a chord symbol starting with `>`, and music21 drops that note
UNMETERED = 1024  # reading: `M:none`, music21 measures no bar
REPEAT_OPEN = 2048  # sampling: a `|:` waits for its `:|` (abc2midi: "Missing :| at end of tune")
ENDING_EMPTY = 4096  # sampling: an ending (`|1`, `[2`...) was opened and holds no note yet
IN_FIRST = 8192  # sampling: in a first ending, which a `:|` closes (abc2midi: "found [1 or like before |:")
SECOND_DUE = 16384  # sampling: a `:|` just closed a first ending, so `[2` may follow
SECTIONED = 32768  # sampling: a bar line other than `|` was written (abc2midi repeats from the start only before)
ENDED = 65536  # sampling: an ending was written; a `:|` now needs its `|:` (abc2midi plays a third pass else)
HORNPIPE = 131072  # sampling: `R:` names a hornpipe, so `M:` must be 2/4, 4/4 or C, and abc2midi swings it
HORNPIPE_METER = 262144  # sampling, in the header: `M:` is 2/4, 4/4 or C, so `R:` may name a hornpipe
STACCATO = 524288  # sampling: the note being written has a staccato dot

# prefix items (B_PREFIX aux bits)
P_SLUR, P_SYMBOL, P_DECORATION, P_GRACE, P_TUPLET, P_SPACE, P_HEAD, P_EXCLAIM = 1, 2, 4, 8, 16, 32, 64, 128
P_TRILL = 256  # sampling: a roll or trill (`~`, `T`, `!trill!`), which abc2midi puts on no chord


class Core(NamedTuple):
    """Where the checker is in a tune; small and hashable so transitions and masks can be cached."""

    mode: int
    aux: Any  # per mode: the text of a field, a bar line or a length read so far, counts, flags
    seen: str  # header fields seen, in order
    bar_len: int  # ticks in a full bar
    unit: int  # ticks of the unit note length
    compound: bool
    bar: int  # ticks so far in this bar
    flags: int
    tuplet_left: int  # notes the open tuplet still changes
    tuplet_q: int  # their duration factor q/p
    tuplet_p: int
    slurs: int
    last: int  # ticks of the note just ended, 0 where broken rhythm can't follow
    broken: int  # index into BROKEN_RIGHT: the factor for the next note
    pitch: str = ""  # sampling: the written pitch of the note being read or just ended (`^f'`)
    tied: str = ""  # sampling: the written pitch a tie waits for (abc2midi ties only a note to itself)
    carried: int = 0  # sampling: ticks of `bar` that a short bar before a section boundary left to this one
    first: int = FIRST_OPEN  # sampling: ticks of the section's own first bar, where a `:|` goes back to
    tuplet_note: int = 0  # sampling: the written ticks of the open tuplet's first note, which the others match


START = Core(H_LINE, None, "", 0, 0, False, 0, PICKUP, 0, 1, 1, 0, 0, 0)
START_READING = START._replace(flags=PICKUP | READING)


def scaled(ticks: int, *fractions: tuple[int, int]) -> int | None:
    """ticks times the fractions, or None when that isn't a whole number of ticks."""
    numerator, denominator = ticks, 1
    for num, den in fractions:
        numerator *= num
        denominator *= den
    if numerator % denominator:
        return None
    return numerator // denominator


def _prefixes(values: Iterable[str]) -> frozenset[str]:
    return frozenset(value[:end] for value in values for end in range(len(value) + 1))


_CHORD_SYMBOL_PREFIXES = _prefixes(CHORD_SYMBOLS)
_DECORATION_PREFIXES = _prefixes(DECORATION_NAMES)


_OFFERED_TEXT = {"symbol": CHORD_SYMBOLS, "decoration": DECORATION_NAMES}


@lru_cache(maxsize=100_000)
def _next_on_shortest(kind: str, text: str, alphabet: frozenset[str]) -> str:
    """The next character of the shortest chord symbol or decoration name (`kind`) that starts with `text`
    and can be written with the characters of `alphabet` ('' if there is none)."""
    rests = [v[len(text) :] for v in _OFFERED_TEXT[kind] if len(v) > len(text) and v.startswith(text)]
    options = [rest for rest in rests if alphabet.issuperset(rest)]
    return min(options, key=lambda rest: (len(rest), rest))[0] if options else ""


_VALUE_PREFIXES = {
    "M": _prefixes(METERS),
    "L": _prefixes(UNITS),
    "K": _prefixes(KEYS),
    "Q": _prefixes(TEMPI),
}
_VALUES = {"M": frozenset(METERS), "L": frozenset(UNITS), "K": KEYS, "Q": TEMPI}


def value_ok(field: str, text: str, complete: bool, reading: bool = False) -> bool:
    """Whether `text` is (complete) or can become (not complete) a good value for the field; `reading`: in a
    training tune, with the values music21 reads there."""
    if field == "K" and reading:
        return _key_read(text, complete)
    if field in "ML" and reading:
        values = {"M": (*METERS_READ, "none"), "L": UNITS_READ}[field]
        return text in values if complete else any(value.startswith(text) for value in values)
    if field in _VALUES:
        return text in (_VALUES[field] if complete else _VALUE_PREFIXES[field])
    if field == "X":
        if complete and not text:
            return False
        return len(text) <= 5 and text.isdigit() and not text.startswith("0") if text else True
    if field in FREE_TEXT:
        return len(text) <= MAX_TEXT and all(_text_char(c, i == 0) for i, c in enumerate(text))
    return False


FREE_TEXT = "TR"  # fields of free text: the checker remembers only their length
_TONICS_LONGEST_FIRST = sorted(_TONICS, key=len, reverse=True)


def _key_read(text: str, complete: bool) -> bool:
    """A `K:` value as music21 reads it in a training tune: a tonic, then a mode from the first letters of
    what follows (`K:Dmix=c`, `K:Bn` is B major), within seven sharps or flats."""
    tonic = next((t for t in _TONICS_LONGEST_FIRST if text.startswith(t)), None)
    if tonic is None:
        return not complete and any(t.startswith(text) for t in _TONICS)
    if len(text) > MAX_TEXT or not all(_text_char(c, False) for c in text):
        return False
    mode = text[len(tonic) :].strip().lower()
    can_become = [shift for name, shift in _MODES.items() if name.startswith(mode)]
    if not complete and any(abs(_TONICS[tonic] + shift) <= 7 for shift in can_become):
        return True  # `K:Dbm` can still become `K:Dbmix` (Db minor has too many flats, Db mixolydian not)
    offset = next((shift for prefix, shift in _MUSIC21_MODES if mode.startswith(prefix)), 0)
    return abs(_TONICS[tonic] + offset) <= 7


def _text_char(char: str, first: bool) -> bool:
    """Titles and rhythms: printable text (a leading `|` would hide the field from music21)."""
    return char.isprintable() and char != "%" and not (first and char in "| ")


def _shortest_completion(
    field: str, text: str, alphabet: Iterable[str], values: frozenset[str] | None = None
) -> str | None:
    """The shortest way to finish a field's value with the characters of `alphabet` (among `values`)."""
    if values is not None:
        if text in values:
            return ""
    elif value_ok(field, text, complete=True):
        return ""
    if field in _VALUES:
        usable = set(alphabet)
        candidates = _VALUES[field] if values is None else values
        options = [v for v in candidates if v.startswith(text) and usable.issuperset(v[len(text) :])]
        return min(options, key=lambda v: (len(v), v))[len(text) :] if options else None
    if field == "X":
        return "1"
    return None


# --- the checker --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    """Where and why a text is not a tune the checker accepts."""

    position: int
    line: int
    column: int
    char: str
    mode: str

    def __str__(self) -> str:
        what = "end of tune" if self.char == EOS else repr(self.char)
        return f"line {self.line}, column {self.column}: {what} not allowed here ({self.mode})"


_MODE_NAMES = {
    H_LINE: "header line",
    H_COLON: "header field",
    H_VALUE: "header value",
    B_IDLE: "between notes",
    B_AFTER: "after a note",
    B_BAR: "bar line",
    B_BROKEN: "broken rhythm",
    B_PAREN: "slur or tuplet",
    B_TUPLET: "tuplet",
    B_PREFIX: "before a note",
    B_SYMBOL: "chord symbol",
    B_GRACE: "grace notes",
    B_ACCIDENTAL: "accidental",
    B_NOTE: "note",
    B_BRACKET: "chord or ending",
    B_CHORD: "chord",
    B_CHORD_LENGTH: "chord length",
    B_FIELD_COLON: "field in the body",
    B_FIELD_VALUE: "field value in the body",
    B_CONTINUE: "line continuation",
    B_EXCLAIM: "!decoration!",
    B_TOKEN: "letters music21 reads as a note",
    B_DROP: "a note music21 drops",
    B_META: "a letter and a colon",
    B_SKIP: "a field music21 ignores",
    DONE: "after the end",
}


class Rules:
    """The transition function over characters: `step(core, char)` is the next Core or None."""

    def step(self, core: Core, char: str) -> Core | None:
        return step(core, char)


# The step functions, one per mode. Each returns the next Core, or None when `char` can't come next
# (which includes every character after which the tune could no longer be completed).


def _header_line(core: Core, char: str) -> Core | None:
    if not core.seen:
        return core._replace(mode=H_COLON, aux="X") if char == "X" else None
    if char not in HEADER_FIELDS or char == "X":
        return None
    if char in "MLQR" and char in core.seen:
        return None
    if char == "K" and "M" not in core.seen:
        return None  # K ends the header, and the bar length must be known by then
    return core._replace(mode=H_COLON, aux=char)


def _header_colon(core: Core, char: str) -> Core | None:
    if char != ":":
        return None
    # aux: the field, its text so far (a length for free text) and, in a sampler's `R:`, what of it can
    # still become a hornpipe (None once it can't)
    lead = "" if core.aux == "R" and not core.flags & READING else None
    return core._replace(mode=H_VALUE, aux=(core.aux, 0 if core.aux in FREE_TEXT else "", lead))


def _header_value(core: Core, char: str) -> Core | None:
    field, text, lead = core.aux
    if field in FREE_TEXT:
        if char == "\n":
            applied = _apply_field(core, field, "", in_body=False)
            return applied._replace(flags=applied.flags | HORNPIPE) if lead in HORNPIPE_NAMES else applied
        if core.flags & READING:  # (the Essen tunes' titles hold bytes of another encoding)
            if char == EOS or text >= MAX_READING_TEXT or (text == 0 and char in "| "):
                return None
        elif char == EOS or text >= MAX_TEXT or not _text_char(char, text == 0):
            return None
        if lead is not None and lead not in HORNPIPE_NAMES:
            grown = lead + char
            lead = grown if any(name.startswith(grown) for name in HORNPIPE_NAMES) else None
            if lead in HORNPIPE_NAMES and "M" in core.seen and not core.flags & HORNPIPE_METER:
                return None  # a hornpipe in a meter abc2midi refuses for one
        return core._replace(aux=(field, text + 1, lead))
    reading = bool(core.flags & READING)
    hornpipe = field == "M" and core.flags & HORNPIPE
    if char == "\n":
        if not value_ok(field, text, complete=True, reading=reading) or (hornpipe and text not in HORNPIPE_METERS):
            return None
        return _apply_field(core, field, text, in_body=False)
    if char == EOS or not value_ok(field, text + char, complete=False, reading=reading):
        return None
    if hornpipe and not any(meter.startswith(text + char) for meter in HORNPIPE_METERS):
        return None
    return core._replace(aux=(field, text + char, lead))


def _apply_field(core: Core, field: str, text: str, in_body: bool) -> Core:
    seen = core.seen + field if field not in core.seen else core.seen
    if field == "M":
        bar_len, compound = METERS_READ[text] if text != "none" else (UNMETERED_BAR, False)
        unit = core.unit
        if not core.flags & UNIT_SET and not unit:
            # music21 (like the standard) derives L from the first meter: 1/16 below 3/4, else 1/8
            unit = WHOLE // 16 if bar_len * 4 < WHOLE * 3 else WHOLE // 8
        flags = core.flags | UNMETERED if text == "none" else core.flags & ~UNMETERED
        if text in HORNPIPE_METERS and not in_body and not flags & READING:
            flags |= HORNPIPE_METER
        core = core._replace(bar_len=bar_len, compound=compound, unit=unit, flags=flags)
    elif field == "L":
        core = core._replace(unit=UNITS_READ[text], flags=core.flags | UNIT_SET)
    if field == "K" or in_body:
        # the body needs no header history: fewer states
        flags = core.flags & ~HORNPIPE_METER
        return core._replace(mode=B_IDLE, aux="n", seen="", last=0, flags=flags)
    return core._replace(mode=H_LINE, aux=None, seen=seen)


def _room(core: Core, broken: int | None = None) -> bool:
    """Whether the shortest note (and the tuplet notes after it) still fit in the bar."""
    if core.flags & GHOST:
        return True  # music21 drops the note: it takes no time
    factor = BROKEN_RIGHT[core.broken if broken is None else broken]
    if core.tuplet_left:
        shortest = scaled(core.unit, MIN_LENGTH, (core.tuplet_q, core.tuplet_p))
        need = scaled(core.unit, MIN_LENGTH, (core.tuplet_q, core.tuplet_p), factor)
        if shortest is None or need is None:
            return False
        need += shortest * (core.tuplet_left - 1)
    else:
        need = scaled(core.unit, MIN_LENGTH, factor)
        if need is None:
            return False
    return core.bar + need <= core.bar_len


def _note_ticks(core: Core, length: tuple[int, int], *more: tuple[int, int]) -> int | None:
    """Ticks of a note of `length` units here: with the open tuplet and a pending broken rhythm."""
    factors = [length, *more, BROKEN_RIGHT[core.broken]]
    if core.tuplet_left:
        factors.append((core.tuplet_q, core.tuplet_p))
    return scaled(core.unit, *factors)


def _fits(core: Core, ticks: int | None) -> bool:
    """Whether a note of `ticks` fits, leaving room for the tuplet notes still to come."""
    if ticks is None:
        return False
    reserve = 0
    if core.tuplet_left > 1:
        shortest = scaled(core.unit, MIN_LENGTH, (core.tuplet_q, core.tuplet_p))
        if shortest is None:
            return False
        reserve = shortest * (core.tuplet_left - 1)
    return core.bar + ticks + reserve <= core.bar_len


def _length_char_ok(core: Core, prefix: str, *more: tuple[int, int]) -> bool:
    """Whether a length written as `prefix` so far can still end as a note that fits."""
    lengths = _lengths(core)
    if core.flags & GHOST:
        return prefix in lengths.prefix_min
    if core.broken and not core.flags & READING:  # as long as the note before the mark
        return any(
            scaled(core.unit, length, *more) == core.last and _fits(core, _note_ticks(core, length, *more))
            for length in lengths.completions.get(prefix, ())
        )
    if core.tuplet_left:
        broken = BROKEN_RIGHT[core.broken]
        return any(
            _fits(core, _note_ticks(core, length, *more))
            and _plain(scaled(core.unit, length, *more, broken))
            and _tuplet_note_ok(core, length, *more)
            for length in lengths.completions.get(prefix, ())
        )
    shortest = lengths.prefix_min.get(prefix)
    return shortest is not None and _fits(core, _note_ticks(core, shortest, *more))


def _tuplet_note_ok(core: Core, length: tuple[int, int], *more: tuple[int, int]) -> bool:
    """A sampler's tuplet notes are all as long as the first (abc2midi: "Different length notes in
    tuple"), and the first leaves room in the bar for the others, ending on the shortest note's grid, so
    the bar can still be filled exactly."""
    if core.flags & READING:
        return True
    written = scaled(core.unit, length, *more)
    if written is None:
        return False
    if core.tuplet_note:
        return written == core.tuplet_note
    ticks = _note_ticks(core, length, *more)
    rest = scaled(core.unit, length, *more, (core.tuplet_q, core.tuplet_p))
    if ticks is None or rest is None:
        return False
    end = core.bar + ticks + rest * (core.tuplet_left - 1)
    return end <= core.bar_len and end % _grid(core) == 0


def _grid(core: Core) -> int:
    """Ticks of the shortest note: every bar a sampler fills ends on a multiple of them."""
    return core.unit * MIN_LENGTH[0] // MIN_LENGTH[1]


def _lengths(core: Core) -> Lengths:
    return READ_LENGTHS if core.flags & READING else OFFERED_LENGTHS


def _plain(ticks: int | None) -> bool:
    """A duration with a single note value (plain, dotted or double-dotted): music21 can only put those
    in a tuplet ("Unknown type: complex" otherwise)."""
    if ticks is None:
        return False
    whole = Fraction(ticks, WHOLE)
    return whole.numerator in (1, 3, 7) and whole.denominator & (whole.denominator - 1) == 0


def _end_note(core: Core, kind: str, length: tuple[int, int], *more: tuple[int, int]) -> Core | None:
    """Close a note, rest or chord: add its duration to the bar. kind: n(ote), u(pper bare), r(est), c(hord)."""
    ghost = core.flags & GHOST  # reading: music21 drops the note, but counts it in a tuplet and for a tie
    ticks = 0 if ghost else _note_ticks(core, length, *more)
    if not _fits(core, ticks):
        return None
    sampling = not core.flags & READING
    if sampling and core.broken and scaled(core.unit, length, *more) != core.last:
        return None  # abc2midi: "Cannot apply broken rhythm. Notes not equal durations"
    pitch = ""
    if sampling and kind in "nu" and core.mode == B_NOTE:
        marks = "," if core.aux[0] == "u" else "'"
        pitch = core.pitch + marks * core.aux[1]
    if core.tuplet_left and not ghost and not _plain(scaled(core.unit, length, *more, BROKEN_RIGHT[core.broken])):
        return None
    if core.tuplet_left and not ghost and not _tuplet_note_ok(core, length, *more):
        return None
    assert ticks is not None
    if sampling and core.tuplet_left <= 1 and (core.bar + ticks) % _grid(core):
        # a tuplet that ends off the shortest note's grid (`(3A2Bc`) leaves a rest of the bar no note can
        # fill, and a bar abc2midi counts must end exactly full
        return None
    if core.flags & STACCATO:
        pitch = ""  # abc2midi ties no staccato note, nor gives it a broken rhythm (see _start_element)
    flags = core.flags & ~(SYMBOL_WAITING | GHOST | ENDING_EMPTY | SECOND_DUE | STACCATO)
    if kind != "r":
        flags = (flags | (0 if ghost else HAS_NOTE)) & ~TIE
    elif core.flags & READING:
        flags &= ~TIE  # music21 ties whatever token comes next
    tuplet_left = max(core.tuplet_left - 1, 0)
    ratio = (core.tuplet_q, core.tuplet_p) if tuplet_left else (1, 1)  # forget a finished tuplet: fewer states
    tuplet_note = (core.tuplet_note or scaled(core.unit, length, *more) or 0) if tuplet_left and sampling else 0
    # a note after a broken-rhythm mark can't start another (music21 would keep only the second mark),
    # nor, in the masks, can a note in a tuplet (its dotted length might not be a single note value)
    in_tuplet = core.tuplet_left and not core.flags & READING
    last = 0 if core.broken or in_tuplet or ghost or core.flags & STACCATO else ticks
    return core._replace(
        mode=B_AFTER,
        aux=kind,
        bar=core.bar + ticks,
        flags=flags,
        tuplet_left=tuplet_left,
        tuplet_q=ratio[0],
        tuplet_p=ratio[1],
        tuplet_note=tuplet_note,
        last=last,
        broken=0,
        pitch=pitch,
        tied="",
    )


def _start_element(core: Core, char: str) -> Core | None:
    """A character that begins a note, rest, chord or one of the things written before them."""
    if core.flags & LAST_ONLY:
        return None
    if core.flags & READING and char in READING_TOKEN_STARTS:
        return _read_token(core, char)
    quiet = bool(core.broken)  # after > or <: nothing that music21 reads as a token of its own
    tied = _tied_parts(core.tied) if core.tied else None  # (sampling) the note must be the tied one
    if char in PITCHES:
        if not _room(core) or (tied and char != tied[1]):
            return None
        case = "u" if char.isupper() else "l"
        return core._replace(mode=B_NOTE, aux=(case, 0, ""), pitch="" if core.flags & READING else char)
    if char == "z":
        if (core.flags & TIE and not core.flags & READING) or not _room(core):
            return None
        return core._replace(mode=B_NOTE, aux=("z", 0, ""))
    if char in "^_=":
        if tied and not tied[0].startswith(char):
            return None
        return core._replace(mode=B_ACCIDENTAL, aux=char) if _room(core) else None
    if char in "[{" and (tied or (core.broken and not core.flags & READING)):
        return None  # a sampler ties a note to a note; abc2midi has no broken rhythm for chords
    if char == "[":
        # a chord, or between notes an ending `[1` `[2` or the bar line `[|`
        bracket = core._replace(mode=B_BRACKET, aux="chord" if core.mode == B_PREFIX or core.broken else None)
        if not core.flags & READING and not any(_bracket(bracket, after) for after in "12|C"):
            return None  # (a sampler's `[` where no chord fits and no `[1`, `[2` or `[|` may come)
        return bracket
    if char == '"':
        return _open_symbol(core)
    if char == "!":
        return _open_exclamation(core)
    if char in DECORATIONS:
        if quiet and char not in QUIET_DECORATIONS:
            return None
        items, decorations = _prefix_state(core)
        if decorations >= MAX_DECORATIONS or items & P_HEAD or not _room(core):
            return None
        sampling = not core.flags & READING
        if sampling and char == "~" and (tied or items & P_GRACE or (items & P_SYMBOL and core.flags & HORNPIPE)):
            # abc2midi plays a roll as notes of its own: "Could not find note to be tied" after `d-~d`,
            # "Intervening note needed between grace notes" after `{D}~D`, and in a hornpipe `d"D"~f`
            # "Notes not equal durations"
            return None
        if char in NOTE_DECORATIONS:
            # music21 reads `~` and `T` as the start of a note and takes the decorations that follow
            # into it, then invents a C: no decoration may follow them
            trill = P_TRILL if sampling else 0
            return core._replace(mode=B_PREFIX, aux=(items | P_DECORATION | P_HEAD | trill, decorations + 1))
        # abc2midi shortens a staccato note: it takes neither a tie ("Cannot find note before tie") nor
        # a broken rhythm ("Notes not equal durations"), nor the one abc2midi gives a hornpipe (`E.E`)
        if sampling and char == "." and core.flags & HORNPIPE:
            return None
        flags = core.flags | STACCATO if sampling and char == "." else core.flags
        return core._replace(mode=B_PREFIX, aux=(items | P_DECORATION, decorations + 1), flags=flags)
    if quiet:
        return None
    if char == "(":
        opened = core._replace(mode=B_PAREN, aux=_prefix_items(core))
        if not _room(core) or (core.slurs >= _max_slurs(core) and not any(_paren(opened, p) for p in "23456789")):
            return None  # no slur over the limit, and no tuplet that fits: nothing could follow the `(`
        return opened
    if char == "{":
        items = _prefix_items(core)
        # (reading, grace notes may end a bar: `Tg4 {^fg}|`; the note after them is checked for room)
        room = _room(core) or core.flags & READING
        if core.tuplet_left or items & P_GRACE or core.flags & GHOST or not room:
            return None  # music21 counts grace notes into a tuplet (and gives them a waiting chord symbol)
        return core._replace(mode=B_GRACE, aux=(items, 0, None))
    return None


def _prefix_items(core: Core) -> int:
    return core.aux[0] if core.mode == B_PREFIX else 0


def _prefix_state(core: Core) -> tuple[int, int]:
    return core.aux if core.mode == B_PREFIX else (0, 0)


def _idle(core: Core, char: str) -> Core | None:
    prev = core.aux  # n: line start, s: space, b: after a bar line, t: after a tie, T: tie and `>`
    if char == EOS:
        return _finish(core)
    if char in "<>" and prev == "t" and core.flags & READING:
        return core._replace(aux="T")  # `A->B`: music21 ignores a mark after a tie (O'Neill's writes it)
    if core.flags & READING:
        if char in READING_TOKEN_STARTS and not _starts_field(core, char):
            return _read_token(core, char)
        if char in "<>" and prev in "bsn":
            # music21 pairs the notes around a mark, whitespace or not (`last` survives it when reading),
            # and ignores a mark after anything else
            return _open_broken(core, char, "n") if core.last else core._replace(aux="b")
        if char == ")":
            return _close_paren(core)
        if char in IGNORED_CHARS and prev in "bsn":
            return core._replace(aux="b")
    if char == '"':
        return _open_symbol(core)
    if char == "!":
        return _open_exclamation(core)
    if char == " ":
        return core._replace(aux="s") if prev in "btT" else None
    if char == ")" and prev == "s":
        return _close_paren(core)
    if char == "\n":
        if prev in "btT" and not core.tuplet_left:
            return core._replace(aux="n")
        return None
    if core.flags & LAST_ONLY and not (core.flags & READING and char in "|:"):
        return None  # (music21 skips bars without notes: reading, they may follow the last one)
    if char == "\\":
        return core._replace(mode=B_CONTINUE, aux=None) if prev in "btTs" and not core.tuplet_left else None
    if prev == "n" and char in BODY_FIELDS:
        return core._replace(mode=B_FIELD_COLON, aux=char) if _starts_field(core, char) else None
    if char in "|:":
        if core.tuplet_left:
            return None
        return _bar(core._replace(mode=B_BAR, aux=("", False)), char)
    return _start_element(core, char)


def _starts_field(core: Core, char: str) -> bool:
    """Whether `char` starts an `M:`, `L:` or `K:` line here: at a line start between bars."""
    at_line_start = core.mode == B_IDLE and core.aux == "n" and char in BODY_FIELDS
    if char == "M" and core.carried:
        return False  # abc2midi would measure the carried time in the new meter
    return at_line_start and not (core.bar - core.carried or core.tuplet_left or core.flags & TIE)


def _finish(core: Core) -> Core | None:
    """The end of the tune: everything closed, at least one note, the last bar may be short (and, in what
    a sampler is offered, no repeat left open, no ending left empty)."""
    unfinished = TIE | REPEAT_OPEN | ENDING_EMPTY | IN_FIRST
    if core.tuplet_left or core.flags & unfinished or core.broken or not core.flags & HAS_NOTE:
        return None
    sampling = not core.flags & (READING | UNMETERED)
    if sampling and core.bar != core.carried and not _counted_ok(core, "|]"):
        return None  # a sampler's last bar, with no bar line after it, as `|]` would close it
    return core._replace(mode=DONE, aux=None)


def _after(core: Core, char: str) -> Core | None:
    kind = core.aux  # n note, u bare upper-case note, r rest, c chord, p after `)`, P after `)>`, D: note `.`
    if kind == "D":
        return _after_dot(core, char)
    if char == EOS:
        return _finish(core)
    if char == '"':
        return _open_symbol(core)
    if char == "!":
        return _open_exclamation(core)
    if char in "><":
        if kind in "pP" and core.flags & READING:
            return core._replace(aux="P")  # `(AB)>c`: music21 ignores a mark after `)`
        if kind in "pP" or not core.last or (kind == "c" and not core.flags & READING):
            return None
        if core.flags & HORNPIPE and _swung(core):
            return None
        return _open_broken(core, char, kind)
    if char == "-":
        if not core.flags & READING:  # a sampler ties a note to the same note, never a chord
            if kind not in "nu" or not core.pitch:
                return None
            return core._replace(mode=B_IDLE, aux="t", flags=core.flags | TIE, last=0, tied=core.pitch)
        tied = kind in "nuc" or kind == "r"  # (`z4-z` in Essen tunes)
        return core._replace(mode=B_IDLE, aux="t", flags=core.flags | TIE, last=0) if tied else None
    if char == "." and kind in "nuc":
        if not core.flags & READING:  # a sampler's dot is the next note's staccato (`g.-f` is never offered)
            return _start_element(core._replace(mode=B_IDLE, aux="s", last=0), char)
        return core._replace(aux="D", last=0)  # a staccato dot, or `g.-f`: a tie after it
    if char == ")":
        return _close_paren(core)
    if core.flags & READING and char in READING_TOKEN_STARTS:
        return _read_token(core, char)
    if char in " \n\\":
        # reading, a broken-rhythm mark may still pair this note with the next across whitespace
        last = core.last if core.flags & READING else 0
        return _idle(core._replace(mode=B_IDLE, aux="b", last=last), char)
    if char in "|:":
        if core.tuplet_left:
            return None
        # `A::` would start a field in music21 (an upper-case letter, a colon): only `:|` may follow
        return _bar(core._replace(mode=B_BAR, aux=("", kind == "u"), last=0), char)
    return _start_element(core._replace(mode=B_IDLE, aux="s", last=0), char)


def _swung(core: Core) -> bool:
    """In a hornpipe abc2midi dots pairs of equal eighths in 4/4 (sixteenths in 2/4 and 2/2) itself: a
    mark after the second of a pair, a note of that length on an off-beat, would be applied twice ("Notes
    not equal durations"). (For any meter and both lengths: a few marks fewer than needed.)"""
    start = core.bar - core.last
    return core.last in (WHOLE // 8, WHOLE // 16) and start % core.last == 0 and (start // core.last) % 2 == 1


def _after_dot(core: Core, char: str) -> Core | None:
    """After a note and `.` in a training tune: a tie `-` ties that note (music21 keeps the dot for the next
    one; abc2midi refuses it), anything else follows the dot as the staccato it is."""
    if char == "-":
        return core._replace(mode=B_IDLE, aux="t", flags=core.flags | TIE)
    if core.flags & READING and char in "<>)":
        # the dot is a token of its own: music21 ignores a mark after it, and a `)` leaves it to the next note
        return core._replace(aux="P", last=0) if char in "<>" else _close_paren(core)
    dotted = _start_element(core._replace(mode=B_IDLE, aux="s"), ".")
    return None if dotted is None else _prefix(dotted, char)


def _close_paren(core: Core) -> Core | None:
    """`)`: music21 pops its stack of open slurs and tuplets and ignores a `)` with nothing open, so any
    `)` after a note is harmless (slurs are only drawn)."""
    return core._replace(mode=B_AFTER, aux="p", slurs=max(core.slurs - 1, 0), last=0)


def _open_broken(core: Core, char: str, kind: str) -> Core | None:
    """`>` or `<` after a note of `kind`: a broken rhythm, if some mark it can become fits."""
    for symbol in BROKEN:
        if symbol.startswith(char) and _mark_read(core, symbol) and _broken_ok(core, symbol):
            return core._replace(mode=B_BROKEN, aux=(char, kind, False))
    return None


def _mark_read(core: Core, symbol: str) -> bool:
    """`>>>` and `<<<` are read in training tunes only."""
    return len(symbol) < 3 or bool(core.flags & READING)


def _broken_ok(core: Core, symbol: str) -> bool:
    left, _ = BROKEN[symbol]
    longer = scaled(core.last, left)
    if longer is None:
        return False
    bar = core.bar - core.last + longer
    index = BROKEN_INDEX[symbol]
    if not core.flags & READING:
        shorter = scaled(core.last, BROKEN[symbol][1])
        return shorter is not None and bar + shorter <= core.bar_len
    return bar <= core.bar_len and _room(core._replace(bar=bar), broken=index)


def _broken(core: Core, char: str) -> Core | None:
    """After `>` or `<`: music21 applies the mark only if the next token is a note; anything else that
    makes a token of its own (a tie, a slur, a staccato dot, a bar line...) voids it."""
    symbol, kind, spaced = core.aux
    longer = symbol + char
    if char in "><" and not spaced and longer in BROKEN and _mark_read(core, longer) and _broken_ok(core, longer):
        return core._replace(aux=(longer, kind, False))
    if core.flags & READING and char in READING_TOKEN_STARTS:
        return _read_token(core, char)
    if char == '"':
        return _open_symbol(core)
    if char == "!":
        return _open_exclamation(core)
    if char == " ":
        return None if spaced else core._replace(aux=(symbol, kind, True))
    if char not in PITCHES and char not in QUIET_DECORATIONS and char not in "z^_=[":
        if char in ("\n", "\\", EOS) or not core.flags & READING:
            # not a token either: keep it simple and refuse; and a sampler's mark is followed by its note,
            # as abc2midi applies it to the next note across `)`, `(`, `{g}`... ("Notes not equal durations")
            return None
        voided = core._replace(mode=B_AFTER, aux="n" if kind == "u" else kind, last=0)
        return _after(voided, char)
    if not _broken_ok(core, symbol):
        return None
    left, _ = BROKEN[symbol]
    longer = scaled(core.last, left)
    assert longer is not None
    # (a sampler keeps the left note's length: the right one must be as long, as abc2midi wants)
    last = 0 if core.flags & READING else core.last
    applied = core._replace(mode=B_PREFIX, aux=(0, 0), bar=core.bar - core.last + longer, last=last)
    applied = applied._replace(broken=BROKEN_INDEX[symbol])
    return _prefix(applied, char)


def _bar(core: Core, char: str) -> Core | None:
    """A bar line being read: `char` continues it, or it ends and `char` is read after it."""
    text, after_upper = core.aux
    reading = core.flags & READING
    lines, prefixes = (BAR_LINES, BAR_PREFIXES) if reading else (OFFERED_BAR_LINES, OFFERED_BAR_PREFIXES)
    candidate = text + char
    if candidate in prefixes and not (after_upper and candidate == "::"):
        # continue only if some bar line it can become may close this bar
        if any(line.startswith(candidate) and _bar_close_ok(core, line, None) for line in lines):
            return core._replace(aux=(candidate, after_upper))
        return None
    if text not in lines or (text == ":" and after_upper):
        return None  # `A:` before anything but `|` starts a field in music21
    if not reading and char in "[|:":
        return None  # parsers part ways on `:|[c'eg]` and `||:|`: a sampler writes a space between
    if not _bar_close_ok(core, text, char):
        return None
    return _idle(_close_bar(core, text), char)


def _bar_close_ok(core: Core, line: str, next_char: str | None) -> bool:
    """Whether this bar line may close the bar: full, or short where short bars are allowed."""
    sampling = not core.flags & READING
    if sampling and not _structure_ok(core.flags, line):
        return False
    if sampling and not core.flags & UNMETERED:
        return _counted_ok(core, line)
    if core.bar == 0 or core.bar == core.bar_len or core.flags & UNMETERED:
        return True
    if core.flags & (PICKUP | AFTER_BOUNDARY) or BAR_LINES[line] != "|":
        return True
    # A short bar closed by `|` is fine only as the last bar of the tune (reading, LAST_ONLY sees to that
    # past bars without notes, which music21 skips). A sampler is never offered one: a model that wrote
    # it by mistake would be made to end its tune there (its short last bar ends `|]`, `||` or `:|`).
    return not sampling


def _counted_ok(core: Core, line: str) -> bool:
    """abc2midi's bar check, for a sampler: it counts time across a section boundary (`||`, `|]`, `[|`,
    `|:`) until a bar is full, and across a repeat (`:|`...) into the bar it goes back to, then into the
    bar after. So a short bar before a boundary may close (its time is `carried` into the next bar, which
    completes it), a `|` closes only a full bar (or the tune's first), and a `:|` closes a bar that with
    the section's first bar makes one full bar, or a full bar when that one is full (issue 14)."""
    full, total = core.bar_len, core.bar
    if line in REPEAT_CLOSINGS:
        if core.first == FIRST_OPEN:
            return total == full and not core.carried  # a section of one bar: it must be full both times
        return core.first == FIRST_UNUSED or total + core.first in (full, 2 * full)
    if BAR_LINES[line] == "|" or line in FIRST_ENDINGS:
        # (abc2midi checks the bar before `[1` too, and the second time round goes from it to `[2`)
        return total in (0, full) or bool(core.flags & PICKUP and not core.carried)
    if total in (0, full) or (core.flags & PICKUP and not core.carried):
        return True
    # A short bar before `||`, `|]`, `[|` or `|:` only where it completes the section's pickup: abc2midi
    # counts its time on into the next bar, and a short bar anywhere else would force a short one there,
    # which left a model little but the end of the tune (4 of 40 samples under 8 bars against 0).
    return core.first == FIRST_UNUSED or (core.first >= 0 and total + core.first == full)


def _carry(core: Core, line: str, flags: int) -> tuple[int, int]:
    """(carried, first) for the bar after `line`, by abc2midi's count (see _counted_ok); `flags` are the
    flags after the line."""
    total = core.bar
    first = total - core.carried if core.first == FIRST_OPEN else core.first
    if total in (0, core.bar_len) or core.flags & (PICKUP | UNMETERED):
        carried = 0  # (abc2midi checks the tune's first bar at any bar line, short or not)
    elif line in REPEAT_CLOSINGS and core.flags & IN_FIRST:
        carried = 0  # the second time, the full bar before the first ending leads into the second
    else:
        carried = total
    if line in SECTION_STARTS:
        first = FIRST_UNUSED if flags & ENDED and not flags & REPEAT_OPEN else FIRST_OPEN
    return carried, first


def _structure_ok(flags: int, line: str) -> bool:
    """What a sampler is offered of repeats and endings, where abc2midi reads them as the other parsers do:

    - no empty ending, and inside an open repeat or a first ending no `|:`, `||`, `|]` or `[|` (abc2midi:
      "Expected end repeat not found at |:"): a `:|` (or `::` in a repeat) closes it first;
    - a first ending only inside an open repeat, or in the tune's first section (nothing but `|` before:
      abc2midi repeats from the start), never inside a first ending (abc2midi: "found [1 or like before |:");
    - a first ending closed by a `:|` (`:||`, `:|2`), not `::` (abc2midi drops what follows); a second
      ending `[2` only right after, `:|2` only from a first ending;
    - after an ending, a `:|` or `::` only to close a `|:` (abc2midi would play a third pass or drop one).
    """
    if flags & ENDING_EMPTY:
        return False
    opened = flags & (REPEAT_OPEN | IN_FIRST)
    if line in ("|:", "||", "|]", "[|"):
        return not opened
    if line in FIRST_ENDINGS:
        return not flags & IN_FIRST and bool(flags & REPEAT_OPEN or not flags & SECTIONED)
    if line == ":|2":
        return bool(flags & IN_FIRST)
    if line in SECOND_ENDINGS:
        return bool(flags & SECOND_DUE)
    if line == "::" and (flags & IN_FIRST or (flags & SECTIONED and not flags & REPEAT_OPEN)):
        return False  # (abc2midi: "found :: before |:" after a `:|`)
    return not (line.startswith(":") and not opened and flags & ENDED)


def _close_bar(core: Core, line: str) -> Core:
    closing = BAR_LINES[line]
    flags = core.flags
    short = core.bar and core.bar != core.bar_len and not flags & (PICKUP | AFTER_BOUNDARY | UNMETERED)
    short_last = short and closing == "|"
    if core.bar - core.carried:
        flags &= ~(PICKUP | AFTER_BOUNDARY)
    if line not in ("|", ":"):
        flags |= AFTER_BOUNDARY
    if short_last:
        flags |= LAST_ONLY
    if not flags & READING:
        if line in ("|:", "::"):
            flags |= REPEAT_OPEN
        elif line.startswith(":"):
            flags &= ~REPEAT_OPEN
        second_due = line.startswith(":") and flags & IN_FIRST and line not in SECOND_ENDINGS
        flags &= ~(SECOND_DUE | IN_FIRST) if line.startswith(":") else ~SECOND_DUE
        if line in FIRST_ENDINGS:
            flags |= IN_FIRST
        if second_due:
            flags |= SECOND_DUE
        if line in FIRST_ENDINGS | SECOND_ENDINGS:
            flags |= ENDING_EMPTY | ENDED
        if line not in ("|", ":"):
            flags |= SECTIONED
        carried, first = _carry(core, line, flags)
        return core._replace(mode=B_IDLE, aux="b", bar=carried, flags=flags, last=0, carried=carried, first=first)
    return core._replace(mode=B_IDLE, aux="b", bar=0, flags=flags, last=0)


def _paren(core: Core, char: str) -> Core | None:
    items = core.aux
    reading = core.flags & READING
    if char.isdigit():
        p = int(char)
        again = reading and items & P_TUPLET  # `(3(3`: music21 applies the second, the first has no notes
        if p not in TUPLETS or (not again and (core.tuplet_left or items & P_TUPLET)):
            return None
        tuplet = core._replace(mode=B_TUPLET, aux=(items, char), tuplet_left=0)
        return tuplet if _tuplet_fits(tuplet, char) or _tuplet_fits(tuplet, char + ":2") else None
    if core.slurs >= _max_slurs(core):
        return None
    opened = core._replace(mode=B_PREFIX, aux=(items | P_SLUR, 0), slurs=core.slurs + 1)
    if reading and char == " ":
        return opened._replace(aux=(items | P_SLUR | P_SPACE, 0))  # `( cd)`: a slur, then a space
    return _prefix(opened, char)


def _max_slurs(core: Core) -> int:
    return MAX_SLURS if core.flags & READING else MAX_OFFERED_SLURS


def _tuplet_ratio(core: Core, text: str) -> tuple[int, int] | None:
    parts = text.split(":")
    p = int(parts[0])
    simple, compound = TUPLETS[p]
    q = compound if core.compound else simple
    if len(parts) > 1 and parts[1]:
        q = int(parts[1])
    return (q, p) if q else None


def _tuplet_fits(core: Core, text: str) -> bool:
    ratio = _tuplet_ratio(core, text)
    if ratio is None:
        return False
    p = int(text[0])
    shortest = scaled(core.unit, MIN_LENGTH, ratio)
    return shortest is not None and core.bar + shortest * p <= core.bar_len


def _tuplet(core: Core, char: str) -> Core | None:
    items, text = core.aux
    if char == ":" and ":" not in text:
        return core._replace(aux=(items, text + ":"))
    if char.isdigit() and text.endswith(":") and char != "0":
        return core._replace(aux=(items, text + char)) if _tuplet_fits(core, text + char) else None
    if text.endswith(":") or not _tuplet_fits(core, text):
        return None
    q, p = _tuplet_ratio(core, text)  # type: ignore[misc]
    opened = core._replace(mode=B_PREFIX, aux=(items | P_TUPLET, 0), tuplet_left=p, tuplet_q=q, tuplet_p=p)
    if char == " ":
        return opened._replace(aux=(items | P_TUPLET | P_SPACE, 0))
    return _prefix(opened, char)


def _prefix(core: Core, char: str) -> Core | None:
    """After slurs, chord symbols, decorations, grace notes or a tuplet: the note must follow."""
    if core.flags & READING and core.aux[0] == P_GRACE and char in " \n|:-\\":
        # grace notes before no note (`{^fg} |`, `{c}-B`): music21 keeps them, the tie starts at them
        idle = core._replace(mode=B_IDLE, aux="b", last=0)
        return idle._replace(aux="t", flags=idle.flags | TIE) if char == "-" else _idle(idle, char)
    if char in (EOS, " ", "\n", "|", ":", ")", "-", ">", "<", "\\"):
        return None
    if core.aux[0] & P_HEAD and core.flags & SYMBOL_WAITING and char not in PITCHES and char not in "z^_=":
        return None  # `"C"~(` would make music21 join the symbol and the `~` into a phantom note
    if not core.flags & READING:
        items = core.aux[0]
        if items & (P_SYMBOL | P_EXCLAIM | P_DECORATION) and char in "({":
            # a sampler's chord symbol or decoration goes on a note, not on a slur, a tuplet or grace
            # notes (abc2midi: "Malformed note" after `T(3`, `~(`, `.{`)
            return None
        if items & P_TRILL and char == "[":
            return None  # abc2midi: "Rolls and trills not supported in chords" (`~`, `T`, `!trill!`)
    return _start_element(core, char)


def _open_symbol(core: Core) -> Core | None:
    """A chord symbol or annotation: music21 makes no token of it (it rides on the next note), so after
    the closing quote a training tune's checker is exactly where it was before the opening one. A sampler
    is offered one chord symbol per note, before anything else written before it, where a note fits."""
    if core.flags & LAST_ONLY:
        return None
    if not core.flags & READING and (core.mode not in (B_IDLE, B_AFTER) or not _room(core)):
        return None
    return Core(B_SYMBOL, ("", _restorable(core)), *core[2:])


def _symbol(core: Core, char: str) -> Core | None:
    if core.flags & READING:
        return _symbol_read(core, char)
    text, before = core.aux
    if char == '"':
        return _before_note(before, P_SYMBOL) if text in CHORD_SYMBOLS else None
    grown = text + char
    return core._replace(aux=(grown, before)) if grown in _CHORD_SYMBOL_PREFIXES else None


def _before_note(before: Core, item: int) -> Core:
    """A sampler's state after a chord symbol or `!decoration!`: its note must follow, so that every parser
    puts it on the same note (abcjs would put `!trill!|` on the bar line, abc2midi `c!trill!-c` elsewhere)."""
    if before.mode == B_AFTER:
        before = before._replace(mode=B_IDLE, aux="s", last=0)
    items, decorations = _prefix_state(before)
    flags = before.flags | (SYMBOL_WAITING if item == P_SYMBOL else 0)
    return before._replace(mode=B_PREFIX, aux=(items | item, decorations), flags=flags)


def _symbol_read(core: Core, char: str) -> Core | None:
    """A chord symbol or annotation in a training tune: any text. music21 drops the note after one that
    starts with `>` (a fingering diagram to it), and reads only the first symbol of a note."""
    text, before = core.aux
    if char == '"':
        name = text.strip().replace("(", "").replace(")", "")
        if not name:
            return None
        ghost = GHOST if name.startswith(">") and not before.flags & SYMBOL_WAITING else 0
        return before._replace(flags=before.flags | SYMBOL_WAITING | ghost)
    if char in ("\n", EOS) or not char.isprintable():
        return None
    return core._replace(aux=(text + char, before))


def _open_exclamation(core: Core) -> Core | None:
    """A `!name!` decoration; music21 skips it, so like a chord symbol it leaves a training tune's state as
    it was. A sampler is offered one per note, before its note, after its chord symbol if any."""
    if core.flags & LAST_ONLY:
        return None
    if not core.flags & READING:
        after_symbol = core.mode == B_PREFIX and core.aux == (P_SYMBOL, 0)
        if not (core.mode in (B_IDLE, B_AFTER) or after_symbol) or not _room(core):
            return None
    return Core(B_EXCLAIM, ("", _restorable(core)), *core[2:])


def _exclamation(core: Core, char: str) -> Core | None:
    text, before = core.aux
    if core.flags & READING:
        # music21 skips any `!...!` it can close within 20 characters (but for its spanner marks), and
        # else ignores the `!` alone and reads on: read the text again from before it
        if char == "!":
            return before if text and text not in SPANNER_MARKS and "\n" not in text else None
        if len(text) < MAX_READING_EXCLAMATION and char != EOS:
            return core._replace(aux=(text + char, before))
        replayed: Core | None = before
        for again in text + char:
            replayed = None if replayed is None else step(replayed, again)
        return replayed
    if char == "!":
        if text not in DECORATION_NAMES:
            return None
        if text == "fermata":
            # abc2midi lengthens the note: like a staccato one, it takes no broken rhythm
            if before.flags & HORNPIPE:
                return None
            before = before._replace(flags=before.flags | STACCATO)
        return _before_note(before, P_EXCLAIM | (P_TRILL if text == "trill" else 0))
    grown = text + char
    return core._replace(aux=(grown, before)) if grown in _DECORATION_PREFIXES else None


def _restorable(core: Core) -> Core:
    """The state to come back to after a chord symbol: a space or a line end may follow it."""
    return core._replace(aux="b") if core.mode == B_IDLE and core.aux in "sn" else core


def _grace(core: Core, char: str) -> Core | None:
    items, count, note = core.aux  # note: None, an accidental, or (case, octave marks, length)
    if note is None or isinstance(note, str):
        if note is None and char == "}" and count:
            return core._replace(mode=B_PREFIX, aux=(items | P_GRACE, 0))
        if note is None and char in "^_=" and count < MAX_GRACE:
            return core._replace(aux=(items, count, char))
        if note is None and char in "uv" and core.flags & READING:
            return core  # `{vEFG}`: a bowing mark for the grace note after it
        if isinstance(note, str) and note + char in ACCIDENTALS:
            return core._replace(aux=(items, count, note + char))
        if char in PITCHES and count < MAX_GRACE:
            return core._replace(aux=(items, count + 1, ("u" if char.isupper() else "l", 0, "")))
        return None
    lexed = _lex_note(note, char, _lengths(core))
    if lexed is not None:
        return core._replace(aux=(items, count, lexed))
    if note[2] not in _lengths(core).values:
        return None
    return _grace(core._replace(aux=(items, count, None)), char)


def _lex_note(note: tuple[str, int, str], char: str, lengths: Lengths) -> tuple[str, int, str] | None:
    """The next (case, octave marks, length) of a note being read, or None if `char` doesn't extend it."""
    case, octaves, length = note
    if not length and octaves < MAX_OCTAVE_MARKS and ((case == "u" and char == ",") or (case == "l" and char == "'")):
        return (case, octaves + 1, length)
    if (char.isdigit() or char == "/") and length + char in lengths.prefix_min:
        return (case, octaves, length + char)
    return None


def _accidental(core: Core, char: str) -> Core | None:
    tied = _tied_parts(core.tied) if core.tied else None
    if core.aux + char in ACCIDENTALS:
        return None if tied and not tied[0].startswith(core.aux + char) else core._replace(aux=core.aux + char)
    if char in PITCHES:
        if tied and (core.aux, char) != tied[:2]:
            return None
        pitch = "" if core.flags & READING else core.aux + char
        return core._replace(mode=B_NOTE, aux=("u" if char.isupper() else "l", 0, ""), pitch=pitch)
    return None


def _note(core: Core, char: str) -> Core | None:
    case, octaves, length = core.aux
    lengths = _lengths(core)
    lexed = _lex_note(core.aux, char, lengths)
    octaves_due = _tied_parts(core.tied)[2] if core.tied else None  # a tied note's octave marks
    if lexed is not None:
        if lexed[2] != length and not _length_char_ok(core, lexed[2]):
            return None
        if octaves_due is not None and (lexed[1] > octaves_due or (lexed[1] == octaves < octaves_due)):
            return None
        return core._replace(aux=lexed)
    if length not in lengths.values or (octaves_due is not None and octaves != octaves_due):
        return None
    kind = "r" if case == "z" else ("u" if case == "u" and not octaves and not length else "n")
    ended = _end_note(core, kind, lengths.values[length])
    return None if ended is None else _after(ended, char)


def _bracket(core: Core, char: str) -> Core | None:
    """After `[`: a chord, or (aux None: between notes) an ending `[1` `[2` or the bar line `[|`."""
    if core.aux is None and char in "12|":
        if core.tuplet_left or core.flags & LAST_ONLY:
            return None
        return _bar(core._replace(mode=B_BAR, aux=("[", False)), char)
    if char in PITCHES or char in "^_=":
        if not _room(core) or core.flags & LAST_ONLY:
            return None
        return _chord(core._replace(mode=B_CHORD, aux=(0, None, None)), char)
    return None


def _chord(core: Core, char: str) -> Core | None:
    count, first, note = core.aux  # first: the length of the first note, which sets the chord's
    if note is None or isinstance(note, str):
        if note is None and char == "]" and count:
            return core._replace(mode=B_CHORD_LENGTH, aux=(first, ""))
        if note is None and char in "^_=" and count < MAX_CHORD:
            return core._replace(aux=(count, first, char))
        if isinstance(note, str) and note + char in ACCIDENTALS:
            return core._replace(aux=(count, first, note + char))
        if char in PITCHES and count < MAX_CHORD:
            return core._replace(aux=(count + 1, first, ("u" if char.isupper() else "l", 0, "")))
        if note is None and count and core.flags & READING:
            if char == "z" and count < MAX_CHORD:
                return core._replace(aux=(count + 1, first, ("l", 0, "")))  # `[C2z2]`: music21 plays the C
            if char == "-":
                return core  # `[b4-B4-]`: ties inside a chord
        return None
    lengths = _lengths(core)
    lexed = _lex_note(note, char, lengths)
    if lexed is not None:
        if lexed[2] != note[2] and core.tuplet_left:
            return None  # in a tuplet the chord's length is written outside: [CE]2
        if count == 1 and lexed[2] != note[2] and not _length_char_ok(core, lexed[2], MIN_LENGTH):
            return None
        if first is not None and not core.flags & READING and first not in lengths.completions.get(lexed[2], ()):
            return None  # abc2midi: "unequal notes in chord" (a sampler's notes are as long as the first)
        return core._replace(aux=(count, first, lexed))
    if note[2] not in lengths.values:
        return None
    if first is not None and not core.flags & READING and lengths.values[note[2]] != first:
        return None
    if first is None:
        first = lengths.values[note[2]]
        if not _length_char_ok(core, "", first):
            return None
    return _chord(core._replace(aux=(count, first, None)), char)


def _chord_length(core: Core, char: str) -> Core | None:
    first, length = core.aux
    lengths = _lengths(core)
    if (char.isdigit() or char == "/") and first != (1, 1) and not core.flags & READING:
        return None  # abc2midi would take `[c2e2]2` for 2 units, music21 for 4: lengths inside or out, not both
    if (char.isdigit() or char == "/") and length + char in lengths.prefix_min:
        if not _length_char_ok(core, length + char, first):
            return None
        return core._replace(aux=(first, length + char))
    if length not in lengths.values:
        return None
    ended = _end_note(core, "c", lengths.values[length], first)
    return None if ended is None else _after(ended, char)


def _field_colon(core: Core, char: str) -> Core | None:
    if char == ":":
        return core._replace(mode=B_FIELD_VALUE, aux=(core.aux, ""))
    if core.flags & READING:
        # `Ka2` at a line start: music21's accent `K` (or tenuto `M`, or the token `L...`), not a field
        token = _read_token(core._replace(mode=B_IDLE, aux="n"), core.aux)
        return None if token is None else step(token, char)
    return None


def _field_value(core: Core, char: str) -> Core | None:
    field, text = core.aux
    reading = bool(core.flags & READING)
    if char == "\n":
        if not value_ok(field, text, complete=True, reading=reading):
            return None
        return _apply_field(core, field, text, in_body=True)
    if char == EOS or not value_ok(field, text + char, complete=False, reading=reading):
        return None
    return core._replace(aux=(field, text + char))


# Reading training tunes: music21's note tokens, which it keeps, drops or reads as an articulation.


def _read_token(core: Core, char: str) -> Core | None:
    """`char` starts a token that only the reading rules follow: an articulation (`u v k`), or a token
    of letters and decorations read to its end (B_TOKEN) to see what music21 makes of it."""
    if char in "uvk":
        return _articulation(core)
    found = char.isalpha() and char not in TOKEN_DECORATIONS and char not in ARTICULATIONS
    return Core(B_TOKEN, (char, found, core), *core[2:])


def _token(core: Core, char: str) -> Core | None:
    """Inside a token music21 reads like a note: decorations, at most one pitch letter, lengths. aux:
    (text, whether a pitch letter was read, the state before the token)."""
    text, found, before = core.aux
    if len(text) == 1 and char == ":" and (text.isupper() or text == "w"):
        return core._replace(mode=B_META, aux=(text, before))  # a field, unless `|` follows
    if text in ("K", "M"):
        return _after_token(_token_end(text, before), char)
    if len(text) >= MAX_TOKEN:
        return None
    if not found and char in TOKEN_DECORATIONS:
        return core._replace(aux=(text + char, False, before))
    if not found and char.isalpha() and char not in NOT_PITCH_LETTERS:
        if char not in PITCHES and char != "z":
            return core._replace(aux=(text + char, True, before))
        if before.flags & SYMBOL_WAITING or not _dropped_start(text):
            # `~Hg2`, `TvG3`, `"p"HA,2`: the note; its decorations don't count, its accidental must be one
            accidental = text[len(text.rstrip("^_=")) :]
            if accidental and (accidental not in ACCIDENTALS or set("^_=") & set(text[: -len(accidental)])):
                return None
            if any(c.isdigit() or c in ",/'" for c in text):
                return None  # `=.2G2`: music21 would read the 2 into the note's length
            return step(before, char)
        return core._replace(mode=B_DROP, aux=before)  # `HG2`: music21 drops the note
    if char.isdigit() or char in ",/'":
        return core._replace(aux=(text + char, found, before))
    return _after_token(_token_end(text, before), char)


def _token_end(text: str, before: Core) -> Core | None:
    """The state after a whole token without a pitch: as before it where music21 drops the token."""
    if text in ("K", "M"):
        return _articulation(before)  # single-character tokens: an accent, a tenuto
    symbol = bool(before.flags & SYMBOL_WAITING)  # music21 reads the symbol and the token as one
    dropped = text.endswith(DROPPED_ENDINGS) if symbol else text in DROPPED_TOKENS or _dropped_start(text)
    if not dropped:
        return None  # a note without a pitch letter: music21 would repeat the last pitch it saw
    return _restorable(before)._replace(flags=before.flags & ~(SYMBOL_WAITING | GHOST))


def _dropped_start(text: str) -> bool:
    return text[0] in DROPPED_STARTS or (text[0] == "=" and text[1:2].isdigit())


def _after_token(core: Core | None, char: str) -> Core | None:
    return None if core is None else step(core, char)


def _drop(core: Core, char: str) -> Core | None:
    """The rest of a note music21 drops (`HG2`): its lengths and octave marks. The tie the note was
    written to ends there, so none is left waiting."""
    if char.isdigit() or char in ",/'":
        return core
    before = core.aux
    restored = _restorable(before)._replace(flags=before.flags & ~TIE)
    if restored.mode == B_IDLE and restored.aux in "tT":
        restored = restored._replace(aux="b")
    return step(restored, char)


def _articulation(core: Core) -> Core | None:
    """A token music21 keeps for the next note (`u v k K M`): between notes it changes nothing, but
    stands between a broken-rhythm mark and the notes around it."""
    if core.mode == B_BROKEN:
        _, kind, _ = core.aux
        core = core._replace(mode=B_AFTER, aux="n" if kind == "u" else kind)
    if core.mode == B_AFTER:
        return core._replace(mode=B_IDLE, aux="b", last=0) if core.aux != "D" else None
    if core.mode == B_IDLE:
        return _restorable(core)._replace(last=0)
    return core if core.mode == B_PREFIX else None


def _meta(core: Core, char: str) -> Core | None:
    """After a letter and `:`: music21 reads a field to the end of the line, unless `|` follows (`Z:|`)."""
    letter, before = core.aux
    if char in ("|", EOS):
        return _after_token(_after_token(_token_end(letter, before), ":"), char)
    if letter in IGNORED_FIELDS:
        return _skip(core._replace(mode=B_SKIP, aux=_restorable(before)), char)
    return None


def _skip(core: Core, char: str) -> Core | None:
    """A field music21 ignores, to the end of the line."""
    if char in ("\n", EOS):
        return step(core.aux, char)
    return core


def _continue(core: Core, char: str) -> Core | None:
    return core._replace(mode=B_IDLE, aux="n") if char == "\n" else None


def _done(core: Core, char: str) -> Core | None:
    return None


_STEPS = {
    H_LINE: _header_line,
    H_COLON: _header_colon,
    H_VALUE: _header_value,
    B_IDLE: _idle,
    B_AFTER: _after,
    B_BAR: _bar,
    B_BROKEN: _broken,
    B_PAREN: _paren,
    B_TUPLET: _tuplet,
    B_PREFIX: _prefix,
    B_SYMBOL: _symbol,
    B_GRACE: _grace,
    B_ACCIDENTAL: _accidental,
    B_NOTE: _note,
    B_BRACKET: _bracket,
    B_CHORD: _chord,
    B_CHORD_LENGTH: _chord_length,
    B_FIELD_COLON: _field_colon,
    B_FIELD_VALUE: _field_value,
    B_CONTINUE: _continue,
    B_EXCLAIM: _exclamation,
    B_TOKEN: _token,
    B_DROP: _drop,
    B_META: _meta,
    B_SKIP: _skip,
    DONE: _done,
}


def step(core: Core, char: str) -> Core | None:
    """The state after `char` (EOS for the end of the tune), or None when `char` can't come next."""
    following = _STEPS[core.mode](core, char)
    if following is not None and following.pitch and following.mode not in (B_NOTE, B_AFTER):
        return following._replace(pitch="")  # a note's pitch matters only until a tie may follow it
    return following


def _tied_parts(pitch: str) -> tuple[str, str, int]:
    """A written pitch's accidental, letter and octave marks: `^f'` is ("^", "f", 1)."""
    accidental = pitch[: len(pitch) - len(pitch.lstrip("^_="))]
    return accidental, pitch[len(accidental)], len(pitch) - len(accidental) - 1


def check_text(text: str, *, sampling: bool = False) -> Rejection | None:
    """None if the checker accepts the whole text as one tune, else where it first refuses.

    By default it reads the text as a training tune, with music21's tolerances (see the module
    docstring); `sampling=True` checks the stricter language the masks offer a sampler.
    """
    core: Core | None = START if sampling else START_READING
    line, column = 1, 1
    for position, char in enumerate([*text, EOS]):
        assert core is not None
        following = step(core, char)
        if following is None:
            return Rejection(position, line, column, char, _MODE_NAMES.get(core.mode, str(core.mode)))
        core = following
        if char == "\n":
            line, column = line + 1, 1
        else:
            column += 1
    return None


# --- the constraint a sampler uses ----------------------------------------------------------------------

WINDOW = 120  # within this many tokens of the length budget, only tokens that can still finish in time
_TEXT_MODES = frozenset({H_VALUE, B_FIELD_VALUE, B_SYMBOL, B_EXCLAIM})
# Outside text, no mode accepts a character outside these: the others are refused without a step.
_MUSIC_CHARS = frozenset("ABCDEFGabcdefgz0123456789/,'^_=|:[]()\"!{}<>- \n\\.~uvTkHxXMLKQRTU") | {EOS}
_CLOSING_NOTES = "cCBAGdefgFED"
_CLOSING_LENGTHS = "2/14836"


def _closing_candidates(core: Core, alphabet: frozenset[str]) -> Iterable[str]:
    """Characters to try, in order, on the way to the shortest sensible end of the tune."""
    mode = core.mode
    if mode == H_LINE:
        return "X" if not core.seen else ("M" if "M" not in core.seen else "K")
    if mode in (H_COLON, B_FIELD_COLON):
        return ":"
    if mode in (H_VALUE, B_FIELD_VALUE):
        field, text = core.aux[:2]
        values = HORNPIPE_METERS if mode == H_VALUE and field == "M" and core.flags & HORNPIPE else None
        rest = "" if field in FREE_TEXT else _shortest_completion(field, text, alphabet, values)
        return "\n" if not rest else rest[0]
    if mode in (B_SYMBOL, B_EXCLAIM):
        text = core.aux[0]
        if mode == B_SYMBOL:
            return '"' if text in CHORD_SYMBOLS else _next_on_shortest("symbol", text, alphabet)
        return "!" if text in DECORATION_NAMES else _next_on_shortest("decoration", text, alphabet)
    if mode == B_CONTINUE:
        return "\n"
    if mode == B_GRACE:
        return "}" + _CLOSING_NOTES + _CLOSING_LENGTHS
    if mode == B_CHORD:
        return "]" + _CLOSING_NOTES + _CLOSING_LENGTHS
    if mode == B_BAR:
        return EOS + _CLOSING_NOTES + "|]: "
    # (an open repeat ends with `:|`; a `)` is tried last, as it can follow itself forever)
    closing_repeat = ":" if core.flags & (REPEAT_OPEN | IN_FIRST) else ""
    return EOS + closing_repeat + _CLOSING_NOTES + _CLOSING_LENGTHS + "|" + ")"


_SHARED: dict[tuple[str, ...], AbcGrammar] = {}


class AbcGrammar(TokenConstraint):
    """`TokenConstraint` over an ABC character vocabulary (see the module docstring).

    A state is `(core, count)`: the checker's Core (None once an unexpected token, e.g. from a primer,
    switched the constraint off for that sequence) and the number of tokens read. Masks are cached per
    core and shared by every state with that core. Masks returned are read-only.
    """

    def __init__(self, symbols: Sequence[str], max_length: int | None = None) -> None:
        self.symbols = list(symbols)
        self.max_length = max_length
        self._chars = [s if len(s) == 1 and s not in Vocabulary.SPECIALS else None for s in self.symbols]
        self._eos = self.symbols.index(Vocabulary.EOS) if Vocabulary.EOS in self.symbols else None
        self._ids = {c: i for i, c in enumerate(self._chars) if c is not None}
        if self._eos is not None:
            self._ids[EOS] = self._eos
        self._alphabet = frozenset(self._ids)
        self._tables: dict[Core, tuple[np.ndarray, tuple[Core | None, ...]]] = {}
        # Transitions worked out one token at a time, for cores without a full table yet; the key EOS
        # holds whether the tune may end there.
        self._partial: dict[Core, dict[int | str, Core | bool | None]] = {}
        self._distances: dict[Core, float] = {}
        self._bounded_masks: dict[tuple[Core, int], np.ndarray] = {}
        free = np.ones(len(self.symbols), dtype=bool)
        for special in (Vocabulary.BOS, Vocabulary.UNK):
            if special in self.symbols:
                free[self.symbols.index(special)] = False
        free.flags.writeable = False
        self._free = free

    @classmethod
    def for_vocabulary(cls, vocabulary: Vocabulary, max_length: int | None = None) -> AbcGrammar:
        """The checker for a vocabulary; one per vocabulary and process, so its caches stay warm."""
        key = tuple(vocabulary.symbols)
        shared = _SHARED.get(key)
        if shared is None:
            shared = _SHARED[key] = cls(vocabulary.symbols)
        return shared if max_length is None else shared.bounded(max_length)

    def bounded(self, max_length: int) -> AbcGrammar:
        """The same checker that also ends every tune within `max_length` tokens (eos included)."""
        bounded = AbcGrammar.__new__(AbcGrammar)
        bounded.__dict__.update(self.__dict__)
        bounded.max_length = max_length
        bounded._bounded_masks = {}
        return bounded

    # TokenConstraint

    def start(self) -> tuple[Core | None, int]:
        return (START, 0)

    def allowed(self, state: tuple[Core | None, int]) -> np.ndarray:
        core, count = state
        if core is None:
            return self._free
        mask, _ = self._table(core)
        if self.max_length is None:
            return mask
        remaining = self.max_length - 1 - count  # tokens that may still come before eos
        if remaining > WINDOW:
            return mask
        key = (core, remaining)
        cached = self._bounded_masks.get(key)
        if cached is None:
            cached = self._in_time(core, mask, remaining)
            if len(self._bounded_masks) > 500_000:
                self._bounded_masks.clear()
            self._bounded_masks[key] = cached
        return cached

    def advance(self, state: tuple[Core | None, int], token: int) -> tuple[Core | None, int]:
        core, count = state
        if core is None:
            return (None, count + 1)
        token = int(token)
        nxt = self._follow(core, token) if 0 <= token < len(self._chars) else None
        return (nxt, count + 1)  # None: an unexpected token switches the constraint off

    def allows(self, state: tuple[Core | None, int], token: int) -> bool:
        """`allowed(state)[token]`, usually without building the whole mask (see the module docstring)."""
        core, count = state
        if core is None:
            return bool(self._free[token])
        if token == self._eos:
            fits = self._ends(core)
        else:
            nxt = self._follow(core, token)
            fits = nxt is not None
            remaining = None if self.max_length is None else self.max_length - 1 - count
            if nxt is not None and remaining is not None and remaining <= WINDOW:
                fits = 1 + self.distance(nxt) <= remaining
        # A refusal may still be allowed (a mask with no choice left lets eos or everything through):
        # the whole mask decides.
        return fits or bool(self.allowed(state)[token])

    # helpers

    def is_complete(self, state: tuple[Core | None, int]) -> bool:
        core, _ = state
        return core is not None and step(core, EOS) is not None

    def _follow(self, core: Core, token: int) -> Core | None:
        """`_table(core)[1][token]`, worked out for that token alone when the table isn't built."""
        table = self._tables.get(core)
        if table is not None:
            return table[1][token]
        partial = self._partial.get(core)
        if partial is None:
            if len(self._partial) > 200_000:
                self._partial.clear()
            partial = self._partial[core] = {}
        elif token in partial:
            return partial[token]  # type: ignore[return-value]
        nxt = self._transition(core, self._chars[token])
        partial[token] = nxt
        return nxt

    def _ends(self, core: Core) -> bool:
        """Whether the tune may end at `core` (eos in its mask, before the no-choice rule)."""
        partial = self._partial.setdefault(core, {})
        ends = partial.get(EOS)
        if ends is None:
            ends = partial[EOS] = self._eos is not None and step(core, EOS) is not None
        return bool(ends)

    def _transition(self, core: Core, char: str | None) -> Core | None:
        if char is None or (char not in _MUSIC_CHARS and core.mode not in _TEXT_MODES):
            return None  # outside text no mode takes it: refused without a step
        return self._live(step(core, char))

    def _table(self, core: Core) -> tuple[np.ndarray, tuple[Core | None, ...]]:
        table = self._tables.get(core)
        if table is None:
            following = tuple(self._transition(core, c) for c in self._chars)
            mask = np.fromiter((f is not None for f in following), dtype=bool, count=len(following))
            if self._eos is not None:
                mask[self._eos] = step(core, EOS) is not None
            if not mask.any() and self._eos is not None:
                mask[self._eos] = True  # never leave a sampler without a choice
            mask.flags.writeable = False
            if len(self._tables) > 200_000:
                self._tables.clear()
            table = (mask, following)
            self._tables[core] = table
        return table

    def _live(self, core: Core | None) -> Core | None:
        """The core, unless it is text (a field value, a chord symbol) this vocabulary can't finish:
        a vocabulary without `j` can't write `maj7`, so `"Gma` would be a dead end."""
        if core is None or core.mode not in _TEXT_MODES:
            return core
        return core if self.distance(core) < float("inf") else None

    def distance(self, core: Core) -> float:
        """Tokens needed to reach a state where eos is allowed, on a short canonical path (inf if none)."""
        path: list[Core] = []
        current: Core | None = core
        known = 0.0
        while current is not None:
            cached = self._distances.get(current)
            if cached is not None:
                known = cached
                break
            if step(current, EOS) is not None and self._eos is not None:
                known = 0.0
                break
            path.append(current)
            if len(path) > 2 * WINDOW:
                known = float("inf")
                break
            current = self._closing_step(current)
        else:
            known = float("inf")
        for offset, visited in enumerate(reversed(path), start=1):
            self._distances[visited] = known + offset
        if len(self._distances) > 500_000:
            self._distances.clear()
        return self._distances.get(core, known)

    def _closing_step(self, core: Core) -> Core | None:
        for char in _closing_candidates(core, self._alphabet):
            if char == EOS or char in self._ids:
                following = step(core, char)
                if following is not None and char != EOS:
                    return following
        return None

    def _in_time(self, core: Core, mask: np.ndarray, remaining: int) -> np.ndarray:
        _, following = self._table(core)
        in_time = mask.copy()
        for token in np.flatnonzero(mask):
            if token == self._eos:
                continue
            nxt = following[token]
            if nxt is None or 1 + self.distance(nxt) > remaining:
                in_time[token] = False
        if not in_time.any():
            return mask  # can't finish in time any more: leave it to the length limit
        in_time.flags.writeable = False
        return in_time
