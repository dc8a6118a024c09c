"""Tiny real data for the rbm and rnn-rbm tests: a repeating frame pattern and token tunes."""

from __future__ import annotations

import numpy as np

from tui_composer.plugin.contract import DataSpec, EpochProgress, Model

FEATURES = 8
# Four frames of two notes each; the pattern repeats, so each frame determines the next.
PATTERN = np.zeros((4, FEATURES), np.uint8)
for _row, _notes in enumerate([[0, 4], [1, 5], [2, 6], [3, 7]]):
    PATTERN[_row, _notes] = 1
FRAMES = DataSpec("frames", FEATURES)


def pattern_sequences(count: int = 8, length: int = 24) -> list[np.ndarray]:
    """Sequences of the repeating pattern, starting at every phase."""
    return [np.tile(PATTERN, (length // 4 + 2, 1))[i % 4 : i % 4 + length] for i in range(count)]


def bay_accuracy(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Frame-level accuracy of Bay et al. (2009): TP / (TP + FP + FN) over all frames."""
    predicted, actual = predicted.astype(bool), actual.astype(bool)
    tp = np.sum(predicted & actual)
    return float(tp / max(tp + np.sum(predicted & ~actual) + np.sum(~predicted & actual), 1))


TOKENS = DataSpec("tokens", 7, bos=0, eos=1)  # ids 0 bos, 1 eos, 2 unk, 3..6 the tune's symbols


def token_sequences(count: int = 8, repeats: int = 6) -> list[np.ndarray]:
    return [np.array([0, *([3, 4, 5, 6] * repeats), 1], np.int32) for _ in range(count)]


def train(model: Model, sequences: list[np.ndarray], epochs: int) -> list[float]:
    """Mean training loss of each epoch."""
    return [model.train_epoch(sequences, epoch, EpochProgress()) for epoch in range(epochs)]
