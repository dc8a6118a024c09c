"""The model: its layers. Batching, training, files and sampling come from KerasModel."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # KerasModel samples through TensorFlow

import keras

from tui_composer.api import DataSpec, KerasModel


class GRU(KerasModel):
    """An embedding (tokens) or a dense projection (frames), stacked GRUs, and logits out."""

    def build(self, data: DataSpec) -> list[keras.layers.Layer]:
        units, dropout = self.params["units"], self.params["dropout"]
        first = keras.layers.Embedding(data.size, units) if data.kind == "tokens" else keras.layers.Dense(units)
        layers = [first]
        for _ in range(self.params["layers"]):
            layers += [keras.layers.GRU(units, **self.RECURRENT), keras.layers.Dropout(dropout)]
        # Logits: one per id (tokens) or per feature (frames); KerasModel's loss and the decoder take them.
        return [*layers, keras.layers.Dense(data.size)]
