"""Registration: what this plugin adds to tui-composer. Kept light: the encoder is imported on first use."""

from collections.abc import Callable

import click

from tui_composer.api import EncoderSpec, Param, hookimpl


@hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    register(
        EncoderSpec(
            name="intervals",
            description="Melody as (interval from the previous note, duration) tokens; key-independent",
            makes="tokens",
            factory="tui_composer_intervals.encoder:IntervalEncoder",
            params=(
                Param("start_pitch", int, 60, "MIDI pitch of the first note when decoding", min=21, max=108),
                Param("max_interval", int, 24, "Larger leaps are folded by octaves", min=1, max=48),
            ),
        )
    )


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command()
    @click.argument("corpus")
    @click.option("--piece", "index", default=0, show_default=True, help="Index of the piece in the corpus.")
    @click.pass_obj
    def intervals(context, corpus: str, index: int) -> None:
        """Print a piece of CORPUS as interval tokens."""
        from tui_composer_intervals.encoder import IntervalEncoder

        piece = context.studio.catalogue.get(corpus).pieces[index]
        click.echo(f"{piece.key}: {piece.title}")
        click.echo(" ".join(IntervalEncoder().read(piece)))
