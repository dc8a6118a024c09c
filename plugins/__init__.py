"""Built-in encoders and models, written exactly as a third party writes a plugin.

Installed as the package `tui_composer_plugins` (never as a top-level `plugins` module) and loaded
through the `tui_composer` entry-point group like any other plugin.
"""
