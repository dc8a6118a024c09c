"""A plugin for the TUI's layout tests: fixed names, descriptions and schemas, so snapshots stay put.

Its factories are never called (the tests that train use the installed plugins); what the TUI shows of
an encoder or model is its spec, and this gives it one that doesn't change as the real ones grow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tui_composer.api import CorpusSpec, EncoderSpec, ModelSpec, Param, Piece, hookimpl
from tui_composer.services.corpora import read_folder

BUNDLED_FOLDER = Path(__file__).parent / "music"


def _pieces() -> list[Piece]:
    pieces, _ = read_folder(BUNDLED_FOLDER)
    return pieces


@hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    register(
        EncoderSpec(
            name="letters",
            description="ABC text, one token per character",
            makes="tokens",
            factory="tui_fixture_plugin:never_built",
            params=(Param("lowercase", bool, False, "fold letters to lower case"),),
        )
    )


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(
        ModelSpec(
            name="tiny-rnn",
            description="a recurrent network for layout tests",
            factory="tui_fixture_plugin:never_built",
            params=(
                Param("units", int, 64, "cells per layer", min=1, max=4096),
                Param("layers", int, 2, "stacked layers", min=1, max=8),
                Param("dropout", float, 0.2, "dropout rate", min=0.0, max=0.9),
                Param("cell", str, "lstm", "recurrent cell", choices=("lstm", "gru")),
            ),
        )
    )


@hookimpl
def register_corpora(register: Callable[[CorpusSpec], None]) -> None:
    register(
        CorpusSpec(
            name="reels",
            description="Three reels for the tests",
            licence="public domain",
            source="tests/tui/music",
            pieces=_pieces,
        )
    )
