"""The TUI's own widgets: piano roll, loss chart, hyperparameter form, path input, navigation line."""
