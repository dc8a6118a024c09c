"""The `midi-events` encoder: a performance vocabulary of note-on, note-off and time-shift tokens.

Registering imports neither music21 nor mido: the encoder class loads when a run needs it.
"""

from __future__ import annotations

from collections.abc import Callable

from tui_composer.api import EncoderSpec, Param, hookimpl

PARAMS = (
    Param(
        "steps_per_quarter", int, 4, "time-shift resolution in steps per quarter note (4: sixteenths)", min=1, max=24
    ),
    Param(
        "max_shift_quarters", int, 4, "longest time shift in one token, in quarter notes (4: a 4/4 bar)", min=1, max=16
    ),
    Param("velocity_bins", int, 0, "velocity tokens in this many bins (0: no velocity)", min=0, max=32),
    Param("bar_lines", bool, True, "a `bar` token where each written bar begins, so a model can count bars"),
)


@hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    register(
        EncoderSpec(
            name="midi-events",
            description="MIDI performance events: note-on/off per pitch, time shifts (sixteenths), bar lines",
            makes="tokens",
            factory="tui_composer_plugins.midi_events.encoder:MidiEventEncoder",
            params=PARAMS,
            version="2",
        )
    )
