"""The Textual terminal UI. It calls the same services as the CLI and never imports TensorFlow."""
