"""The data contract every encoder and model shares.

An encoder turns a piece into `tokens` (1-D integer ids over a vocabulary fitted on the training split)
or `frames` (2-D binary, time x feature) and decodes a model's output back into a music21 Score.
Every model accepts both kinds, so any encoder pairs with any model.

Nothing here imports TensorFlow, Keras or music21: plugins import those inside their methods.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    from music21.stream import Score

DataKind = Literal["tokens", "frames"]
DATA_KINDS: tuple[DataKind, ...] = ("tokens", "frames")
PieceFormat = Literal["abc", "midi", "musicxml", "audio"]  # audio: a recording, transcribed to midi on import


class EncodeError(Exception):
    """A piece that an encoder cannot turn into model input; the message says which and why."""

    def __init__(self, piece: str, reason: str) -> None:
        super().__init__(f"{piece}: {reason}")
        self.piece = piece
        self.reason = reason


@dataclass(frozen=True)
class Piece:
    """One piece of a corpus: a single ABC tune, a MIDI file or a MusicXML file."""

    key: str  # unique and stable within its corpus, e.g. "0001-0050.abc#12"
    title: str
    format: PieceFormat
    path: Path
    text: str | None = None  # the ABC text of this one tune; None for binary formats

    def content(self) -> bytes:
        """The bytes that define this piece (hashed for cache keys)."""
        if self.text is not None:
            return self.text.encode("utf-8")
        return self.path.read_bytes()

    def digest(self) -> str:
        return hashlib.sha256(self.content()).hexdigest()


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its input: the kind and size, and the special token ids."""

    kind: DataKind
    size: int  # vocabulary size for tokens, features per frame for frames
    bos: int | None = None  # begin-of-tune id (tokens only)
    eos: int | None = None  # end-of-tune id (tokens only)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size, "bos": self.bos, "eos": self.eos}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DataSpec:
        return cls(kind=data["kind"], size=int(data["size"]), bos=data.get("bos"), eos=data.get("eos"))


class Vocabulary:
    """Symbols <-> ids, fitted on the training split, with begin, end and unknown tokens."""

    BOS = "<bos>"
    EOS = "<eos>"
    UNK = "<unk>"
    SPECIALS = (BOS, EOS, UNK)

    def __init__(self, symbols: Iterable[str]) -> None:
        ordered = list(self.SPECIALS) + [s for s in symbols if s not in self.SPECIALS]
        self.symbols: list[str] = list(dict.fromkeys(ordered))
        self._ids = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def fit(cls, sequences: Iterable[Sequence[str]]) -> Vocabulary:
        seen: set[str] = set()
        for sequence in sequences:
            seen.update(sequence)
        return cls(sorted(seen))

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def bos(self) -> int:
        return self._ids[self.BOS]

    @property
    def eos(self) -> int:
        return self._ids[self.EOS]

    @property
    def unk(self) -> int:
        return self._ids[self.UNK]

    def id(self, symbol: str) -> int:
        return self._ids.get(symbol, self.unk)

    def encode(self, symbols: Sequence[str]) -> np.ndarray:
        """bos, the symbols' ids, eos."""
        ids = [self.bos, *(self.id(s) for s in symbols), self.eos]
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Symbols up to the first eos, without specials; unknown and out-of-range ids are dropped."""
        out: list[str] = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if 0 <= i < len(self.symbols) and self.symbols[i] not in self.SPECIALS:
                out.append(self.symbols[i])
        return out

    def to_json(self) -> list[str]:
        return list(self.symbols)

    @classmethod
    def from_json(cls, symbols: Sequence[str]) -> Vocabulary:
        return cls(symbols)


class Encoder(ABC):
    """Turns pieces into model input and model output back into music.

    Lifecycle, driven by the host: `read` every piece (parallel, cached per piece: it must depend only
    on the piece and the parameters), `fit` on the training split's readings, then `encode` readings
    into arrays. `state`/`load_state` save what `fit` learned with the run.
    """

    kind: ClassVar[DataKind]

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def read(self, piece: Piece) -> Any:
        """The piece as symbols (tokens: a list of str) or frames (a 2-D uint8 array).

        Raises EncodeError naming the piece and the reason when the piece can't be used.
        """

    def fit(self, readings: Sequence[Any]) -> None:  # noqa: B027 - optional for stateless encoders
        """Learn what depends on the training split (vocabulary, pitch range)."""

    @abstractmethod
    def encode(self, reading: Any) -> np.ndarray:
        """A reading as model input: int32 ids (tokens) or a uint8 time x feature array (frames)."""

    @abstractmethod
    def decode(self, array: np.ndarray) -> Score:
        """Model output (ids or frames) back into a music21 Score."""

    def to_abc(self, array: np.ndarray) -> str:
        """Model output as ABC text; the default writes the decoded Score with the ABC writer."""
        from tui_composer.abc_writer import score_to_abc

        return score_to_abc(self.decode(array))

    @abstractmethod
    def data_spec(self) -> DataSpec:
        """Kind, size and special ids of what `encode` produces (after `fit`)."""

    def state(self) -> dict[str, Any]:
        """JSON-serialisable state learned by `fit`."""
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional for stateless encoders
        """Restore what `state` returned."""

    def constraint(self) -> TokenConstraint | None:
        """Optional capability: a checker that says which next tokens can still lead to a valid piece."""
        return None


class TokenEncoder(Encoder):
    """An encoder whose readings are lists of symbols, encoded over a Vocabulary fitted on the training split.

    Subclasses implement `read` and `decode`, and set `name` for messages.
    """

    kind: ClassVar[DataKind] = "tokens"
    name: ClassVar[str] = "tokens"
    vocabulary: Vocabulary | None = None

    def fit(self, readings: Sequence[Sequence[str]]) -> None:
        self.vocabulary = Vocabulary.fit(readings)

    def fitted_vocabulary(self) -> Vocabulary:
        if self.vocabulary is None:
            raise RuntimeError(f"{self.name}: fit the encoder (or load its state) before encoding or decoding")
        return self.vocabulary

    def encode(self, reading: Sequence[str]) -> np.ndarray:
        return self.fitted_vocabulary().encode(reading)

    def data_spec(self) -> DataSpec:
        vocabulary = self.fitted_vocabulary()
        return DataSpec(kind="tokens", size=len(vocabulary), bos=vocabulary.bos, eos=vocabulary.eos)

    def state(self) -> dict[str, Any]:
        return {"vocabulary": self.fitted_vocabulary().to_json()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.vocabulary = Vocabulary.from_json(state["vocabulary"])


class TokenConstraint(Protocol):
    """Incremental validity check for token samplers (one state per sequence being sampled)."""

    def start(self) -> Any:
        """A fresh state at the beginning of a piece (after bos)."""

    def allowed(self, state: Any) -> np.ndarray:
        """A boolean mask over the vocabulary: the tokens that may come next."""

    def advance(self, state: Any, token: int) -> Any:
        """The state after `token`."""


@dataclass(frozen=True)
class Evaluation:
    """Loss on a split, and the same cross-entropy in bits per token (tokens) or per frame (frames)."""

    loss: float
    bits: float


@dataclass
class EpochProgress:
    """What a model reports while it trains one epoch, and how the host asks it to stop early."""

    on_batch: Callable[[int, int, float], None] = lambda done, total, loss: None
    stop_requested: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class SampleRequest:
    n: int = 10
    max_length: int = 1000  # tokens or frames per sample
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    seed: int = 0
    primer: np.ndarray | None = None  # ids (without bos: the model adds it) or frames to continue
    constraint: TokenConstraint | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class Model(ABC):
    """One run's model, built from its hyperparameters and the encoder's DataSpec.

    The host drives training epoch by epoch (checkpoints, metrics, early stopping and resume are the
    host's job); the model owns its batching, its Keras model(s) and its sampler.
    """

    def __init__(self, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> None:
        self.params = dict(params)
        self.data = data
        self.strategy = strategy

    @abstractmethod
    def train_epoch(self, sequences: Sequence[np.ndarray], epoch: int, progress: EpochProgress) -> float:
        """Train one epoch over the training sequences; returns the mean training loss."""

    @abstractmethod
    def evaluate(self, sequences: Sequence[np.ndarray]) -> Evaluation:
        """Loss and bits per token (or frame) on held-out sequences."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the model, optimizer state included, as a `.keras` file."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> Model:
        """Read what `save` wrote (Keras safe mode on)."""

    @abstractmethod
    def sample(self, request: SampleRequest) -> list[np.ndarray]:
        """`request.n` new sequences: ids ending before eos (tokens) or binary frames."""
