"""Code the `rbm` and `rnn-rbm` model plugins share; not a plugin itself (it has no entry point).

- `functions`: the energy functions (free energy, Gibbs sampling, CD-k, AIS), in TensorFlow;
- `model`: `EnergyModel`, the base both models' classes extend, the Gibbs chain they sample through,
  and their optimizers;
- here: the hyperparameters of their likelihood estimate, light enough for registration.

Both plugins import it by this public path, never each other's modules. It imports only
`tui_composer.api` from tui-composer, like every built-in plugin.
"""

from __future__ import annotations

from tui_composer.api import Param

# How both energy models estimate the likelihood of frames (rnn-rbm shares these).
LIKELIHOOD_PARAMS = (
    Param("ais_chains", int, 2, "AIS chains per frame when evaluating frames (likelihood).", min=1, max=100000),
    Param("ais_temperatures", int, 500, "AIS inverse temperatures when evaluating frames.", min=3, max=1000000),
    Param(
        "eval_frames",
        int,
        1000,
        "Frames whose likelihood AIS estimates at each evaluation, evenly spread over the split (0: all).",
        min=0,
    ),
)
