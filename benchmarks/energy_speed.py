"""Speed of the energy-based models: RBM training, RNN-RBM training and generation, one sequence and 64.

Frames are 88-key piano rolls (random chords of four notes: the content does not change the arithmetic).
Every figure is measured after a warm-up call that compiles the TensorFlow functions.

- rbm training: windows (examples) per second, W = 15 frames, 150 hidden units, CD-1.
- rbm generation: frames per second, one window step per frame (hop 1), 25 Gibbs steps per frame.
- rnn-rbm training: frames per second, 150 hidden, 100 recurrent, CD-15, 100 steps per update.
- rnn-rbm generation: frames per second, 25 Gibbs steps per frame, the loop over time compiled.

Run from the repository root: .venv/bin/python benchmarks/energy_speed.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

KEYS = 88


def chords(count: int, length: int, rng: np.random.Generator) -> list[np.ndarray]:
    rolls = []
    for _ in range(count):
        roll = np.zeros((length, KEYS), np.uint8)
        for t in range(length):
            roll[t, rng.choice(np.arange(30, 70), 4, replace=False)] = 1
        rolls.append(roll)
    return rolls


def timed(function, repeats: int) -> float:
    """Seconds per call, best of `repeats` (after one warm-up call)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def generation_rows(name: str, model: Any, frames: int, repeats: int) -> list[tuple[str, str, float, str]]:
    """Frames per second generating one tune and 64 at once, 25 Gibbs steps per frame."""
    from tui_composer.api import SampleRequest

    rows = []
    for n in (1, 64):
        request = SampleRequest(n=n, max_length=frames, seed=1)
        seconds = timed(lambda r=request: model.sample(r), repeats)
        tunes = f"{n} tune{'s' if n > 1 else ''}"
        rows.append((f"{name} generation (25 Gibbs steps/frame)", tunes, n * frames / seconds, "frames/s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200, help="Frames generated per sample.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed repeats (the best counts).")
    args = parser.parse_args()

    import keras
    from tui_composer_plugins.rbm.model import RBM
    from tui_composer_plugins.rnn_rbm.model import RNNRBM

    from tui_composer.api import DataSpec, EpochProgress

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    data = DataSpec("frames", KEYS)
    rows: list[tuple[str, str, float, str]] = []

    # --- rbm -----------------------------------------------------------------------------------------
    for batch in (1, 64):
        sequences = chords(4 if batch == 1 else 32, 64 if batch == 1 else 200, rng)
        model = RBM({"window": 15, "hidden": 150, "cd_steps": 1, "batch_size": batch}, data)
        windows = len(model.windows(sequences)[1])
        seconds = timed(lambda m=model, s=sequences: m.train_epoch(s, 0, EpochProgress()), args.repeats)
        rows.append(("rbm training (W=15, CD-1)", f"batch {batch}", windows / seconds, "windows/s"))
    model = RBM({"window": 15, "hidden": 150, "gibbs_steps": 25}, data)
    model.train_epoch(chords(8, 64, rng), 0, EpochProgress())
    rows += generation_rows("rbm", model, args.frames, args.repeats)

    # --- rnn-rbm -------------------------------------------------------------------------------------
    for streams in (1, 64):
        sequences = chords(streams, 400, rng)
        model = RNNRBM({"batch_size": streams, "bptt_steps": 100, "cd_steps": 15}, data)
        seconds = timed(lambda m=model, s=sequences: m.train_epoch(s, 0, EpochProgress()), args.repeats)
        rows.append(
            (
                "rnn-rbm training (CD-15)",
                f"{streams} stream{'s' if streams > 1 else ''}",
                streams * 400 / seconds,
                "frames/s",
            )
        )
    model = RNNRBM({"gibbs_steps": 25}, data)
    model.train_epoch(chords(4, 100, rng), 0, EpochProgress())
    rows += generation_rows("rnn-rbm", model, args.frames, args.repeats)

    print(f"energy-model speed, {os.cpu_count()} CPU cores visible; command: {' '.join(sys.argv)}")
    width = max(len(r[0]) for r in rows)
    for what, batch, rate, unit in rows:
        print(f"{what.ljust(width)}  {batch.ljust(9)}  {rate:>10,.0f} {unit}")


if __name__ == "__main__":
    main()
