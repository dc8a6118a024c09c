"""char-LSTM quality (issue 4, item 5): validation bits per character and the share of playable samples.

For a trained run (default: the shipped `oneills-default`):

1. Validation cross-entropy in bits per character: the run's model evaluated again on its corpus's
   validation split, read and encoded exactly as in training (target <= 1.4), next to xz -9e on the same text.
2. N samples at temperature 1.0 (seed 0), unconstrained unless --constrain, and how many are
   playable. Strict: the whole sample text, as sampled, parses in music21 with notes and writes MIDI
   (tui_composer.music.export.score_to_midi). The sampling service is more lenient (the `abc` encoder drops a
   garbled tail before giving up), so its count is printed too. Target: >= 95% strict.

Also prints the training time recorded in the run's metrics (wall and CPU seconds per epoch).

Run from the repository root:
    .venv/bin/python benchmarks/char_lstm_quality.py [--run oneills-default] [-n 100]
"""

from __future__ import annotations

import argparse
import lzma
import tempfile
import time
from pathlib import Path

from tui_composer.services.training import quiet_tensorflow

quiet_tensorflow()

from tui_composer.music.export import parse_abc, score_to_midi  # noqa: E402
from tui_composer.services.encoding import EncodedCorpus, read_corpus  # noqa: E402
from tui_composer.services.sampling import SampleOptions, load_model, sample_run  # noqa: E402
from tui_composer.services.studio import Studio  # noqa: E402
from tui_composer.services.training import encode_split  # noqa: E402


def strictly_playable(abc: str) -> str | None:
    """None if the text parses with notes and writes MIDI as it is; else the reason."""
    try:
        score = parse_abc(abc)
        if not score.recurse().notes:
            return "no notes"
        score_to_midi(score)
    except Exception as error:  # noqa: BLE001 - any failure counts against the sample
        return f"{type(error).__name__}: {error}"[:120]
    return None


def xz_bits(encoded: EncodedCorpus, split: str | None = None) -> float:
    """Bits per character xz -9e needs for the corpus text as the model sees it (one split, or all)."""
    splits = [split] if split else list(encoded.splits)
    text = "".join("".join(reading) for name in splits for _, reading in encoded.splits[name]).encode()
    return 8 * len(lzma.compress(text, preset=9 | lzma.PRESET_EXTREME)) / len(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="oneills-default")
    parser.add_argument("-n", type=int, default=100, help="samples (default 100)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    # Item 5 measures the model itself: sample without the ABC grammar (issue 7), which would make
    # every sample play whatever the model learned.
    parser.add_argument("--constrain", action="store_true", help="mask with the encoder's grammar")
    args = parser.parse_args()

    studio = Studio()
    run = studio.runs.get(args.run)
    config = run.config
    print(f"run {run.name}: {config['model']} {config['model_params']} on {config['corpus']} / {config['encoder']}")
    epochs = [m for m in run.metrics() if m.get("kind") == "epoch"]
    if epochs:
        wall = sum(m.get("seconds", 0) for m in epochs)
        cpu = sum(m.get("cpu_seconds", 0) for m in epochs)
        best = min(epochs, key=lambda m: m.get("valid_loss") or float("inf"))
        print(
            f"training: {len(epochs)} epochs, {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU; "
            f"best epoch {best['epoch']} (recorded valid bits {best.get('valid_bits')})"
        )

    encoder, _, model = load_model(studio, run)
    spec = studio.registry.encoders[config["encoder"]]
    corpus = studio.catalogue.get(config["corpus"])
    encoded = read_corpus(studio.workspace, corpus, spec, config["encoder_params"])
    valid = encode_split(encoder, encoded.splits.get("valid", []), print)
    characters = sum(len(v) - 1 for v in valid)
    print(
        f"xz -9e on the same text: {xz_bits(encoded, 'valid'):.3f} bits per character on the validation "
        f"tunes, {xz_bits(encoded):.3f} on the whole corpus"
    )
    started = time.perf_counter()
    evaluation = model.evaluate(valid)
    print(
        f"validation: {len(valid)} tunes, {characters} predicted characters: loss {evaluation.loss:.4f} nats, "
        f"{evaluation.bits:.3f} bits per character ({time.perf_counter() - started:.0f} s)"
    )

    with tempfile.TemporaryDirectory() as folder:
        options = SampleOptions(
            n=args.n,
            temperature=args.temperature,
            seed=args.seed,
            max_length=args.max_length,
            out=Path(folder),
            constrain=args.constrain,
        )
        print(f"sampling {'with' if args.constrain else 'without'} the grammar constraint")
        started = time.perf_counter()
        samples = sample_run(studio, run.name, options)
        seconds = time.perf_counter() - started
    service_ok = sum(s.midi_path is not None for s in samples)
    reasons = [(s.number, strictly_playable(s.abc)) if s.abc else (s.number, s.error) for s in samples]
    strict_ok = sum(reason is None for _, reason in reasons)
    lengths = sorted(s.length for s in samples)
    print(
        f"samples: {len(samples)} at temperature {args.temperature:g} in {seconds:.0f} s "
        f"(median length {lengths[len(lengths) // 2]} characters)"
    )
    print(f"strict: {strict_ok}/{len(samples)} = {strict_ok / len(samples):.0%} parse in music21 and write MIDI")
    print(f"sampling service (abc repairs a garbled tail): {service_ok}/{len(samples)} written as MIDI")
    for number, reason in reasons:
        if reason is not None:
            print(f"  sample {number:03d}: {reason}")


if __name__ == "__main__":
    main()
