"""The `piano-roll` encoder: frames on a time grid, a "play" and an "onset" bit per pitch.

Registering imports neither music21 nor numpy-heavy code: the encoder class loads when a run needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tui_composer.api import EncoderSpec, Param, hookimpl

PARAMS = (
    Param("steps_per_quarter", int, 4, "frames per quarter note (4: a sixteenth-note grid)", min=1, max=24),
    Param("low", int, 21, "lowest MIDI pitch of the roll (21: the piano's A0)", min=0, max=127),
    Param("high", int, 108, "highest MIDI pitch of the roll (108: the piano's C8)", min=0, max=127),
    Param(
        "fit_range",
        bool,
        True,
        "crop the pitch range to the pitches of the training split (fewer units for a model to keep silent)",
    ),
)


def check_range(params: Mapping[str, Any]) -> str | None:
    """The roll spans low..high: a low above high leaves no pitch (refused before a run folder exists)."""
    if params["low"] > params["high"]:
        return f"low={params['low']} is above high={params['high']}: the roll needs low <= high"
    return None


@hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    register(
        EncoderSpec(
            name="piano-roll",
            description="Frames on a sixteenth-note grid: a play bit and an onset bit per pitch (21-108)",
            makes="frames",
            factory="tui_composer_plugins.piano_roll.encoder:PianoRollEncoder",
            params=PARAMS,
            version="1",
            check=check_range,
        )
    )
