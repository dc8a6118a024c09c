"""The encoder itself: a melody becomes interval:duration tokens, e.g. `+2:0.5 -1:1 r:0.5`."""

from __future__ import annotations

from typing import Any

import numpy as np

from tui_composer.api import EncodeError, Piece, TokenEncoder, parse_piece


class IntervalEncoder(TokenEncoder):
    """Vocabulary fitting, encoding and saving come from TokenEncoder; this class reads and decodes."""

    name = "intervals"

    def __init__(self, start_pitch: int = 60, max_interval: int = 24) -> None:
        super().__init__(start_pitch=start_pitch, max_interval=max_interval)
        self.start_pitch = start_pitch
        self.max_interval = max_interval

    def read(self, piece: Piece) -> list[str]:
        try:
            score = parse_piece(piece)
        except Exception as error:  # noqa: BLE001 - any parse failure is this piece's problem
            raise EncodeError(piece.key, f"does not parse: {error}") from None
        # The top line carries the melody: the highest note of each chord, rests kept.
        tokens: list[str] = []
        previous: int | None = None
        for element in score.parts[0].flatten().notesAndRests if score.parts else []:
            duration = f"{float(element.quarterLength):g}"
            if element.isRest:
                tokens.append(f"r:{duration}")
                continue
            pitch = max(p.midi for p in element.pitches)
            step = 0 if previous is None else self._fold(pitch - previous)
            tokens.append(f"{step:+d}:{duration}")
            previous = pitch
        if not any(not t.startswith("r:") for t in tokens):
            raise EncodeError(piece.key, "no notes in the first part")
        return tokens

    def _fold(self, step: int) -> int:
        while abs(step) > self.max_interval:
            step -= 12 if step > 0 else -12
        return step

    def decode(self, array: np.ndarray) -> Any:
        from music21 import note, stream

        part = stream.Part()
        pitch = self.start_pitch
        for token in self.fitted_vocabulary().decode(array):
            step, _, duration = token.partition(":")
            length = float(duration)
            if step == "r":
                part.append(note.Rest(quarterLength=length))
                continue
            pitch = min(108, max(21, pitch + int(step)))
            part.append(note.Note(pitch, quarterLength=length))
        return stream.Score([part])
