"""CLI commands beyond the core ones in `tui_composer.cli`, one module per command."""
