"""tui-composer: train and sample music-generating models from the terminal."""

__version__ = "0.1.0"
