"""JSB chorales benchmark: RNN-RBM, RBM and an independent-Bernoulli baseline on the 2012 paper's split.

Data: the Boulanger-Lewandowski, Bengio and Vincent (ICML 2012) split of the JSB chorales as piano-roll
JSON, one frame per quarter note (229 / 76 / 77 chorales), read from ../shared/data/jsb-chorales/ or
--data. Frames are 88-key piano rolls (MIDI 21..108), as in the paper.

Each model is trained on train, early-stopped on valid and scored on test:
- NLL: mean negative log-likelihood per frame in nats, -log p(v_t | v_<t). The RBMs' partition functions
  are estimated by annealed importance sampling (AIS), one estimate per frame for the RNN-RBM (each
  frame has its own biases); the standard error combines the AIS variance of every frame's log Z.
- Accuracy (Bay et al. 2009): TP / (TP + FP + FN) summed over all test frames, each frame predicted from
  the frames before it. The prediction thresholds the model's marginals p(v_i = 1 | v_<t), estimated by
  Gibbs chains (Rao-Blackwellised, see --predict-chains / --predict-steps); the threshold is the one that
  maximises accuracy on valid (accuracy at 0.5 is printed too).

Run from the repository root: .venv/bin/python benchmarks/jsb_chorales.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "jsb-chorales" / "jsb-chorales-quarter.json"
LOWEST, KEYS = 21, 88  # piano keys A0..C8
PAPER_NATS = 6.27
# The benchmark's own defaults (--set / --rbm-set override them): small batches, so that JSB's 13,807
# training frames give many updates per epoch; a per-frame RBM (W = 1) for a per-frame NLL.
RNN_RBM_SETTINGS = {"learning_rate": "0.003", "batch_size": "4", "bptt_steps": "50", "cell": "gru", "dropout": "0.3"}
RBM_SETTINGS = {"window": "1", "cd_steps": "5", "learning_rate": "0.005"}


def load_split(path: Path) -> dict[str, list[np.ndarray]]:
    if not path.exists():
        sys.exit(
            f"JSB chorales not found at {path}.\n"
            "Get jsb-chorales-quarter.json (the Boulanger-Lewandowski 2012 split as piano-roll JSON) from "
            "https://github.com/czhuang/JSB-Chorales-dataset (Jsb16thSeparated.json holds the same split at 16th "
            "notes; the quarter-note file is the paper's resolution) and pass --data PATH."
        )
    raw = json.loads(path.read_text())
    split = {}
    for name in ("train", "valid", "test"):
        rolls = []
        for chorale in raw[name]:
            roll = np.zeros((len(chorale), KEYS), np.uint8)
            for t, pitches in enumerate(chorale):
                roll[t, [int(p) - LOWEST for p in pitches]] = 1
            rolls.append(roll)
        split[name] = rolls
    return split


def bay_accuracy(predicted: np.ndarray, actual: np.ndarray) -> float:
    true_positive = float(np.sum(predicted & actual))
    false_positive = float(np.sum(predicted & ~actual))
    false_negative = float(np.sum(~predicted & actual))
    return true_positive / max(true_positive + false_positive + false_negative, 1.0)


def accuracy_report(valid_marginals: np.ndarray, valid: np.ndarray, test_marginals: np.ndarray, test: np.ndarray):
    """Threshold chosen on valid; returns (test accuracy at it, the threshold, test accuracy at 0.5)."""
    thresholds = np.round(np.arange(0.05, 0.96, 0.05), 2)
    scores = [bay_accuracy(valid_marginals > t, valid) for t in thresholds]
    best = float(thresholds[int(np.argmax(scores))])
    return bay_accuracy(test_marginals > best, test), best, bay_accuracy(test_marginals > 0.5, test)


class Row:
    def __init__(self, name: str) -> None:
        self.name = name
        self.cells: dict[str, str] = {}


def print_table(rows: list[Row]) -> None:
    columns = ["model", "test NLL (nats/frame)", "± s.e.", "test accuracy", "threshold", "acc. @0.5", "epochs", "time"]
    table = [[r.name] + [r.cells.get(c, "-") for c in columns[1:]] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)))


def bernoulli_baseline(split: dict[str, list[np.ndarray]]) -> Row:
    """Independent Bernoulli per key, fitted on train (add-one smoothing); exact likelihood."""
    start = time.time()
    train = np.concatenate(split["train"]).astype(np.float64)
    p = (train.sum(axis=0) + 1.0) / (len(train) + 2.0)
    test = np.concatenate(split["test"]).astype(np.float64)
    valid = np.concatenate(split["valid"]).astype(bool)
    log_p = test @ np.log(p) + (1 - test) @ np.log1p(-p)
    row = Row("independent Bernoulli")
    row.cells["test NLL (nats/frame)"] = f"{-log_p.mean():.3f}"
    row.cells["± s.e."] = "exact"
    acc, threshold, acc_half = accuracy_report(
        np.broadcast_to(p, valid.shape), valid, np.broadcast_to(p, test.shape), test.astype(bool)
    )
    row.cells |= {"test accuracy": f"{acc:.2%}", "threshold": f"{threshold:.2f}", "acc. @0.5": f"{acc_half:.2%}"}
    row.cells["epochs"], row.cells["time"] = "-", f"{time.time() - start:.0f} s"
    return row


def train_early_stopping(model, split, args, label: str, max_epochs: int, budget_s: float) -> tuple[int, float]:
    """Train until valid NLL stops improving for --patience evaluations or the time budget runs out.

    Valid NLL here is a cheaper AIS estimate (--valid-* settings, the same frames and seed each time, so
    evaluations compare). After every --decay-after evaluations without improvement the best weights come
    back and the learning rate shrinks by --decay. Returns (the epoch of the best weights, seconds spent).
    """
    from tui_composer.api import EpochProgress

    start = time.time()
    best, best_epoch, best_weights, waited = math.inf, 0, model.network.get_weights(), 0
    learning_rate = model.network.optimizer.learning_rate
    for epoch in range(max_epochs):
        loss = model.train_epoch(split["train"], epoch, EpochProgress())
        elapsed = time.time() - start
        if (epoch + 1) % args.eval_every and epoch + 1 < max_epochs and elapsed < budget_s:
            continue
        nll = model.negative_log_likelihood(
            split["valid"], args.valid_chains, args.valid_temperatures, seed=0, max_frames=args.valid_frames
        )
        elapsed = time.time() - start
        mark = ""
        if nll.nats < best:
            best, best_epoch, best_weights, waited, mark = nll.nats, epoch + 1, model.network.get_weights(), 0, " *"
        else:
            waited += 1
            if waited % args.decay_after == 0:
                model.network.set_weights(best_weights)
                learning_rate.assign(float(learning_rate.numpy()) * args.decay)
                mark = f" (back to epoch {best_epoch}, learning rate {float(learning_rate.numpy()):.2g})"
        print(
            f"  {label} epoch {epoch + 1}: train rec. error {loss:.3f}, "
            f"valid NLL {nll.nats:.3f}{mark} ({elapsed:.0f} s)"
        )
        sys.stdout.flush()
        if waited >= args.patience or elapsed > budget_s:
            break
    model.network.set_weights(best_weights)
    return best_epoch, time.time() - start


def score(model, split, args, row: Row, test_chains: int) -> None:
    """Test NLL with the full AIS settings, and accuracy with the threshold chosen on valid."""
    from tui_composer_plugins.energy.functions import gibbs_marginals

    nll = model.negative_log_likelihood(split["test"], test_chains, args.test_temperatures, seed=12345)
    row.cells["test NLL (nats/frame)"] = f"{nll.nats:.3f}"
    row.cells["± s.e."] = f"{nll.standard_error:.3f}"
    marginals = {}
    for name in ("valid", "test"):
        v, vis_bias, hid_bias, weights = model.conditionals(split[name])
        marginals[name] = (
            gibbs_marginals(vis_bias, hid_bias, weights, args.predict_chains, args.predict_steps, seed=7),
            v.astype(bool),
        )
    acc, threshold, acc_half = accuracy_report(*marginals["valid"], *marginals["test"])
    row.cells |= {"test accuracy": f"{acc:.2%}", "threshold": f"{threshold:.2f}", "acc. @0.5": f"{acc_half:.2%}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--minutes", type=float, default=30.0, help="Training budget for the RNN-RBM.")
    parser.add_argument("--rbm-minutes", type=float, default=5.0, help="Training budget for the RBM.")
    parser.add_argument("--epochs", type=int, default=1000, help="Most RNN-RBM epochs.")
    parser.add_argument("--rbm-epochs", type=int, default=300, help="Most RBM epochs.")
    parser.add_argument("--eval-every", type=int, default=5, help="Epochs between valid evaluations.")
    parser.add_argument(
        "--patience", type=int, default=6, help="Valid evaluations without improvement before stopping."
    )
    parser.add_argument("--decay-after", type=int, default=2, help="Evaluations without improvement per decay.")
    parser.add_argument("--decay", type=float, default=0.3, help="Learning-rate factor at each decay.")
    parser.add_argument("--valid-chains", type=int, default=2, help="AIS chains per valid frame (early stopping).")
    parser.add_argument("--valid-temperatures", type=int, default=500, help="AIS temperatures for valid.")
    parser.add_argument("--valid-frames", type=int, default=1000, help="Valid frames scored (evenly spread).")
    parser.add_argument("--test-chains", type=int, default=16, help="AIS chains per test frame.")
    parser.add_argument("--test-temperatures", type=int, default=1000, help="AIS temperatures for test.")
    parser.add_argument("--predict-chains", type=int, default=10, help="Gibbs chains per frame for accuracy.")
    parser.add_argument("--predict-steps", type=int, default=50, help="Gibbs steps per chain for accuracy.")
    parser.add_argument("--set", action="append", default=[], help="rnn-rbm hyperparameter key=value.")
    parser.add_argument("--rbm-set", action="append", default=[], help="rbm hyperparameter key=value.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-rbm", action="store_true")
    args = parser.parse_args()

    split = load_split(args.data)
    counts = {k: f"{len(v)} chorales / {sum(len(s) for s in v)} frames" for k, v in split.items()}
    print(f"JSB chorales (quarter notes, {KEYS} keys): {counts}")

    import keras
    from tui_composer_plugins.rbm import PARAMS as RBM_PARAMS
    from tui_composer_plugins.rbm.model import RBM
    from tui_composer_plugins.rnn_rbm import PARAMS as RNN_RBM_PARAMS
    from tui_composer_plugins.rnn_rbm.model import RNNRBM

    from tui_composer.api import DataSpec
    from tui_composer.plugin.params import parse_assignments, resolve

    keras.utils.set_random_seed(args.seed)
    data = DataSpec("frames", KEYS)
    rows = [bernoulli_baseline(split)]

    if not args.skip_rbm:
        params = resolve(RBM_PARAMS, RBM_SETTINGS | parse_assignments(args.rbm_set), owner="model 'rbm'")
        print(f"rbm: {params}")
        rbm = RBM(params, data)
        row = Row(f"rbm (W={params['window']}, {params['hidden']} hidden, CD-{params['cd_steps']})")
        epochs, seconds = train_early_stopping(rbm, split, args, "rbm", args.rbm_epochs, args.rbm_minutes * 60)
        # One RBM serves every frame (W = 1): its single AIS estimate gets 64 x --test-chains chains.
        score(rbm, split, args, row, args.test_chains)
        row.cells["epochs"], row.cells["time"] = str(epochs), f"{seconds:.0f} s"
        rows.append(row)
        print_table(rows)

    params = resolve(RNN_RBM_PARAMS, RNN_RBM_SETTINGS | parse_assignments(args.set), owner="model 'rnn-rbm'")
    print(f"rnn-rbm: {params}")
    model = RNNRBM(params, data)
    row = Row(f"rnn-rbm ({params['hidden']} hidden, {params['recurrent']} {params['cell']}, CD-{params['cd_steps']})")
    epochs, seconds = train_early_stopping(model, split, args, "rnn-rbm", args.epochs, args.minutes * 60)
    start = time.time()
    score(model, split, args, row, args.test_chains)
    row.cells["epochs"], row.cells["time"] = str(epochs), f"{seconds:.0f} s"
    print(f"rnn-rbm scoring took {time.time() - start:.0f} s")
    rows.append(row)

    print()
    print(f"Paper (Boulanger-Lewandowski et al. 2012), RNN-RBM on this split: {PAPER_NATS} nats/frame")
    print(
        f"AIS: valid {args.valid_chains} chains x {args.valid_temperatures} temperatures on {args.valid_frames} frames "
        "(early stopping only); "
        f"test {args.test_chains} chains x {args.test_temperatures} temperatures per frame "
        f"(rbm: one shared RBM, {64 * args.test_chains} chains)"
    )
    print(
        f"Accuracy: marginals from {args.predict_chains} Gibbs chains x {args.predict_steps} steps per frame "
        "(second half averaged), threshold chosen on valid"
    )
    print(f"threads: {os.cpu_count()} cores visible; command: {' '.join(sys.argv)}")
    print_table(rows)


if __name__ == "__main__":
    main()
