"""Copy a trained run into its model plugin's pretrained/ folder (char-lstm, rnn-rbm), as a read-only run it ships.

Kept: config.json, encoder.json, status.json, metrics.jsonl and model.keras re-saved without the
optimizer state (a third of the size); left out: checkpoints and samples. The shipped default was made
with (see plugins/char_lstm/pretrained/oneills-default/README.md):

    tui-composer train --corpus oneills --encoder abc --model char-lstm \\
        --set learning_rate=0.003 --set learning_rate_decay=0.88 --epochs 14 --seed 1 --name oneills-default
    .venv/bin/python benchmarks/ship_pretrained.py oneills-default

Run from the repository root: .venv/bin/python benchmarks/ship_pretrained.py RUN [--as NAME]
A new name is listed once the plugin's `register_runs` hook registers it (plugins/char_lstm/__init__.py,
plugins/rnn_rbm/__init__.py; chorales-default: see plugins/rnn_rbm/pretrained/chorales-default/README.md).
"""

from __future__ import annotations

import argparse
import json
import shutil

from tui_composer.services.training import quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402
from tui_composer_plugins import char_lstm, rnn_rbm  # noqa: E402

from tui_composer.services.studio import Studio  # noqa: E402

KEPT = ("config.json", "encoder.json", "status.json", "metrics.jsonl")
PRETRAINED = {"char-lstm": char_lstm.PRETRAINED, "rnn-rbm": rnn_rbm.PRETRAINED}  # where each model's plugin ships runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--as", dest="name", help="name of the shipped run (default: the run's)")
    args = parser.parse_args()
    studio = Studio()
    run = studio.runs.get(args.run)
    studio.registry.models[run.config["model"]].model_class()  # registers the model's Keras classes
    model = run.config["model"]
    if model not in PRETRAINED:
        parser.error(f"run {run.name!r} is a {model} run; only {', '.join(PRETRAINED)} plugins ship runs")
    target = PRETRAINED[model] / (args.name or run.name)
    target.mkdir(parents=True, exist_ok=True)
    for name in KEPT:
        shutil.copyfile(run.path / name, target / name)
    config = json.loads((target / "config.json").read_text())
    config["name"] = target.name  # the run's own name when shipped under another (--as)
    (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    # Loading without compiling leaves the optimizer out; saving then writes the weights alone.
    network = keras.saving.load_model(run.model_path, safe_mode=True, compile=False)
    network.save(target / "model.keras")
    total = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"shipped {run.name} as {target} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
