"""The `abc` encoder: one ABC tune as a sequence of characters.

Registering imports neither music21 nor the encoder module: the class loads when a run needs it.
"""

from __future__ import annotations

from collections.abc import Callable

from tui_composer.api import EncoderSpec, Param, hookimpl


@hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    register(
        EncoderSpec(
            name="abc",
            description="ABC notation, one character per token (MIDI and MusicXML pieces are written as ABC)",
            makes="tokens",
            factory="tui_composer_plugins.abc.encoder:AbcEncoder",
            params=(
                Param(
                    "titles",
                    bool,
                    False,
                    "Keep `T:` title lines. Off by default: titles are words, not music; a model spends a "
                    "sixth of its bits on them and samples them garbled.",
                ),
                Param(
                    "all_fields",
                    bool,
                    False,
                    "Keep every header field as published (`T:`, `B:`, `N:`, `Z:`...), to measure a model on "
                    "the same text a compressor sees. Samples then carry invented notes and sources.",
                ),
            ),
            version="3",  # 3: the ABC writer ties lengths no note value can hold
        )
    )
