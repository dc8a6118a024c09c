"""Fails on import, like a plugin whose dependency is missing."""

raise ImportError("tui_composer_broken needs the package 'not-installed-anywhere'")
