"""Tiny real corpora and model settings for the training and sampling tests."""

from __future__ import annotations

from pathlib import Path

from tui_composer.services.studio import Studio
from tui_composer.services.training import TrainingRequest

# Six short, playable tunes: enough for a train / valid / test split.
TUNES = [
    "X:{n}\nT:Jig {n}\nM:6/8\nL:1/8\nK:G\nGAB cBA|GAB c2d|edc BAG|A3 G3|]\n",
    "X:{n}\nT:Reel {n}\nM:4/4\nL:1/8\nK:D\nDFAd fdAF|GBdg fdAF|DFAd fdAF|E2F2 D4|]\n",
    "X:{n}\nT:Air {n}\nM:3/4\nL:1/4\nK:C\nC E G|c2 B|A G F|E3|]\n",
    "X:{n}\nT:Jig {n}\nM:6/8\nL:1/8\nK:D\nd2A FAd|f2d A2F|GBG FAF|E3 D3|]\n",
    "X:{n}\nT:Polka {n}\nM:2/4\nL:1/8\nK:G\nGB dB|GB dB|c2 A2|B2 G2|]\n",
    "X:{n}\nT:Reel {n}\nM:4/4\nL:1/8\nK:A\nA2cA eAcA|B2dB fBdB|A2cA eAcA|E2G2 A4|]\n",
]

# Small enough to train an epoch in well under a second once traced.
TINY_MODEL = {"embedding": "8", "layers": "2", "units": "16", "streams": "2", "steps": "16"}


def write_tunes(folder: Path, copies: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    texts = [tune.format(n=i + 1) for i, tune in enumerate(TUNES * copies)]
    path = folder / "tunes.abc"
    path.write_text("\n".join(texts), encoding="utf-8")
    return path


def tiny_corpus(studio: Studio, tmp_path: Path, name: str = "tiny") -> str:
    """Import the tiny tunes as a corpus (each is parsed once by music21)."""
    studio.catalogue.import_path(write_tunes(tmp_path / f"{name}-source"), name)
    return name


def tiny_request(corpus: str = "tiny", **overrides: object) -> TrainingRequest:
    fields: dict[str, object] = {
        "corpus": corpus,
        "encoder": "abc",
        "model": "char-lstm",
        "model_params": TINY_MODEL,
        "epochs": 2,
        "seed": 3,
    }
    fields.update(overrides)
    return TrainingRequest(**fields)  # type: ignore[arg-type]
