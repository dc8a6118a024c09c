"""The TUI's screens: one main screen per app mode (Corpora, New run, Runs, Samples, Plugins) and the dialogs."""
