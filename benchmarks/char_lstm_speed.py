"""char-LSTM speed: the seed recipe against ours, same layer sizes, measured in the same run.

Seed recipe (a Keras char-RNN): Embedding 512 -> 3 x stateful LSTM 256 (Dropout 0.2 after each) ->
TimeDistributed Dense -> softmax. Training: `train_on_batch` over batches of 16 streams x 64 steps.
Sampling: a copy of the network with batch shape (1, 1) and `model.predict` once per character.

Ours: `tui_composer_plugins.char_lstm.model.CharLSTM` with the same sizes, through its public methods:
`train_epoch` (16 to 512 streams x 64 steps: the issue allows more streams per batch) and `sample`
(one tune; 64 tunes in one batch), which runs the recurrent step in a compiled TensorFlow while-loop.

Issue 4's targets on 2 CPU cores: one tune >= 3,000 chars/s, 64 tunes >= 40,000 chars/s in total,
training >= 2.5 x the seed recipe. The machine may be shared: the methods run interleaved, in rounds,
so a slow spell hits all of them; compare the ratios. Speed does not depend on the weights, so the
models are untrained; sampling runs the full length (no end-of-tune token).

Run from the repository root: .venv/bin/python benchmarks/char_lstm_speed.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from tui_composer.services.training import quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402
from tui_composer_plugins.char_lstm.model import CharLSTM  # noqa: E402

from tui_composer.api import DataSpec, EpochProgress, SampleRequest  # noqa: E402

VOCABULARY = 96  # about the size of the `abc` encoder's vocabulary on oneills
EMBEDDING, LAYERS, UNITS, DROPOUT = 512, 3, 256, 0.2
STEPS = 64


# --- the seed recipe ---------------------------------------------------------------------------------


def seed_network(batch: int, steps: int) -> keras.Model:
    inputs = keras.Input(batch_shape=(batch, steps), dtype="int32")
    x = keras.layers.Embedding(VOCABULARY, EMBEDDING)(inputs)
    for _ in range(LAYERS):
        x = keras.layers.LSTM(UNITS, return_sequences=True, stateful=True)(x)
        x = keras.layers.Dropout(DROPOUT)(x)
    x = keras.layers.TimeDistributed(keras.layers.Dense(VOCABULARY))(x)
    outputs = keras.layers.Activation("softmax")(x)
    network = keras.Model(inputs, outputs)
    network.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return network


class SeedRecipe:
    def __init__(self) -> None:
        self.train_network = seed_network(16, STEPS)
        self.sample_network = seed_network(1, 1)
        self.sample_network.set_weights(self.train_network.get_weights())
        rng = np.random.default_rng(0)
        self.x = rng.integers(0, VOCABULARY, (16, STEPS)).astype(np.int32)
        self.y = rng.integers(0, VOCABULARY, (16, STEPS)).astype(np.int32)
        self.train(1)  # warm-up: tracing
        self.sample(2)

    def train(self, batches: int) -> int:
        for _ in range(batches):
            self.train_network.train_on_batch(self.x, self.y)
        return batches * 16 * STEPS

    def sample(self, length: int) -> int:
        rng = np.random.default_rng(0)
        token = 0
        for _ in range(length):
            probabilities = self.sample_network.predict(np.array([[token]]), verbose=0)[0, -1].astype(np.float64)
            probabilities /= probabilities.sum()
            token = int(rng.choice(VOCABULARY, p=probabilities))
        return length


# --- ours ----------------------------------------------------------------------------------------------


def our_model(streams: int, jit_compile: bool = False) -> CharLSTM:
    params = {
        "embedding": EMBEDDING,
        "layers": LAYERS,
        "units": UNITS,
        "dropout": DROPOUT,
        "streams": streams,
        "steps": STEPS,
        "jit_compile": jit_compile,
    }
    # No end-of-tune id: every sample runs its full length.
    return CharLSTM(params, DataSpec(kind="tokens", size=VOCABULARY, bos=0, eos=None))


class Ours:
    def __init__(self, streams: int, batches: int, jit_compile: bool = False) -> None:
        self.model = our_model(streams, jit_compile)
        rng = np.random.default_rng(0)
        # One sequence that cuts into exactly `batches` batches of streams x steps.
        self.sequence = [rng.integers(0, VOCABULARY, streams * STEPS * batches + 1).astype(np.int32)]
        self.chars = streams * STEPS * batches
        self.train()  # warm-up: tracing

    def train(self) -> int:
        self.model.train_epoch(self.sequence, 0, EpochProgress())
        return self.chars

    def sample(self, n: int, length: int) -> int:
        tunes = self.model.sample(SampleRequest(n=n, max_length=length, seed=1))
        return sum(len(t) for t in tunes)


def timed(function, *args) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    chars = function(*args)
    return chars, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--sample-length", type=int, default=1000, help="characters per tune for ours")
    parser.add_argument("--seed-sample-length", type=int, default=100, help="characters for the seed recipe")
    parser.add_argument(
        "--streams", type=int, nargs="+", default=[16, 64, 128, 256, 512], help="our training batches (streams)"
    )
    parser.add_argument("--xla", action="store_true", help="also time our training with jit_compile (XLA)")
    args = parser.parse_args()

    print(f"cores: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()[0]:.2f}", flush=True)
    print("building and warming up (tracing) ...", flush=True)
    seed = SeedRecipe()
    trainers = {streams: Ours(streams, max(1, 256 // streams)) for streams in args.streams}
    ours64_xla = Ours(64, 4, jit_compile=True) if args.xla else None
    # Sampling has a model of its own: training invalidates a model's compiled sampler, and the figures are
    # for sampling, not for tracing the loop again (a `sample` command traces it once per process).
    sampler = Ours(16, 1)
    traced = time.perf_counter()
    sampler.sample(1, 20)  # warm-up: tracing
    print(f"tracing the sampling loop: {time.perf_counter() - traced:.1f} s (once per process)", flush=True)
    sampler.sample(64, 20)

    totals: dict[str, list[float]] = {}

    def add(label: str, chars: int, seconds: float) -> None:
        entry = totals.setdefault(label, [0.0, 0.0])
        entry[0] += chars
        entry[1] += seconds

    for round_ in range(args.rounds):
        add("seed: training, 16 x 64, train_on_batch", *timed(seed.train, 8))
        for streams, trainer in trainers.items():
            add(f"ours: training, {streams} x 64", *timed(trainer.train))
        if ours64_xla is not None:
            add("ours: training, 64 x 64, XLA", *timed(ours64_xla.train))
        add("seed: sampling one tune, predict per char", *timed(seed.sample, args.seed_sample_length))
        add("ours: sampling one tune", *timed(sampler.sample, 1, args.sample_length))
        add("ours: sampling 64 tunes in one batch", *timed(sampler.sample, 64, args.sample_length))
        print(f"round {round_ + 1}/{args.rounds} done (load average {os.getloadavg()[0]:.2f})", flush=True)

    rate = {label: chars / seconds for label, (chars, seconds) in totals.items()}
    print()
    print(f"{'measurement':<48} {'chars/s':>10}")
    for label, value in rate.items():
        print(f"{label:<48} {value:>10,.0f}")
    seed_train = rate["seed: training, 16 x 64, train_on_batch"]
    seed_sample = rate["seed: sampling one tune, predict per char"]
    print()
    for streams in trainers:
        ratio = rate[f"ours: training, {streams} x 64"] / seed_train
        print(f"{f'training {streams} x 64 vs seed:':<35}{ratio:6.2f} x  (target 2.5 x)")
    if ours64_xla is not None:
        print(f"training 64 x 64 XLA vs seed:      {rate['ours: training, 64 x 64, XLA'] / seed_train:6.2f} x")
    one = rate["ours: sampling one tune"]
    batch = rate["ours: sampling 64 tunes in one batch"]
    print(f"sampling one tune vs seed:         {one / seed_sample:6.0f} x  ({one:,.0f} chars/s, target 3,000)")
    print(f"sampling 64 tunes vs seed:         {batch / seed_sample:6.0f} x  ({batch:,.0f} chars/s, target 40,000)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
