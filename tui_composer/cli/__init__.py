"""The command line: `tui_composer.cli.app` holds the group and the core commands, one module per other
command beside it. (Nothing is imported here: `tui_composer.api` imports `cli.context`, and must not pull
in the commands, which import the training and sampling services.)"""
