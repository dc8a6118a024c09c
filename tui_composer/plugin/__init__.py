"""The plugin host and the contract plugins keep: hook specs, spec records, parameters, the model and
encoder protocols, and the helpers a model may build on (the shared decoder, the Keras base class).
Plugins reach all of it through `tui_composer.api`."""
