"""What the front ends ask for: the workspace and its runs, corpora and their encodings, training,
sampling, and the child processes that keep TensorFlow and music21 out of the TUI."""
