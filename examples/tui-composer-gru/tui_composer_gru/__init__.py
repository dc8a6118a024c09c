"""Registration: the `gru` model. Kept light: the model (and Keras) is imported when a run needs it."""

from collections.abc import Callable

from tui_composer.api import KERAS_PARAMS, ModelSpec, Param, hookimpl


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(
        ModelSpec(
            name="gru",
            description="Stacked stateful GRUs over contiguous streams; tokens or frames",
            factory="tui_composer_gru.model:GRU",
            params=(
                *KERAS_PARAMS,  # streams, steps, learning_rate: what KerasModel trains with
                Param("units", int, 128, "Units per GRU layer.", min=1, max=4096),
                Param("layers", int, 2, "Stacked GRU layers.", min=1, max=8),
                Param("dropout", float, 0.1, "Dropout after each GRU layer.", min=0.0, max=0.9),
            ),
        )
    )
