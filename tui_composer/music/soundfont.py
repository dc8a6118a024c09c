"""The project's own SoundFont: a small piano-like instrument, generated here and shipped with the package.

No free General MIDI soundfont small enough to ship (a few hundred KB) comes from the package
registries, so `tui_composer/music/soundfonts/tui-piano.sf2` is built by this module from nothing but
arithmetic (MIT, like the project): one sample per octave (C1 to C7), each a sum of harmonics with a
hammer-position comb, a short felt-hammer thump and upper partials that fade during the first 0.3 s,
then a seamless loop of the settled tone. The SoundFont's volume envelope makes it die away like a
piano string (slower in the bass) and damps it 0.3 s after the key is released.

Regenerate (the output is byte-for-byte reproducible) with

    .venv/bin/python -m tui_composer.music.soundfont tui_composer/music/soundfonts/tui-piano.sf2
"""

from __future__ import annotations

import math
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 32_000
ROOTS = (24, 36, 48, 60, 72, 84, 96)  # one sample per octave; each plays the six keys either side
ATTACK_SECONDS = 0.3  # upper partials settle within this, then the loop starts
LOOP_LENGTHS = range(2000, 4001)  # samples; long loops let many whole cycles fit with < 1 cent error
HAMMER_POSITION = 7  # the hammer strikes at 1/7 of the string: the 7th, 14th... partials are weak
SEED = 2024
PRESET_NAME = "tui-composer piano"
SF2_PADDING = 46  # zero samples the SoundFont 2 standard requires after each sample

# SoundFont 2.01 generator numbers (section 8.1.2 of the specification)
GEN_ATTACK_VOL, GEN_HOLD_VOL, GEN_DECAY_VOL, GEN_SUSTAIN_VOL, GEN_RELEASE_VOL = 34, 35, 36, 37, 38
GEN_KEYNUM_TO_DECAY, GEN_INSTRUMENT, GEN_KEY_RANGE, GEN_SAMPLE_ID, GEN_SAMPLE_MODES = 40, 41, 43, 53, 54
GEN_ROOT_KEY = 58
LOOP_CONTINUOUSLY = 1
DECAY_SECONDS_AT_C4 = 6.0  # 100 dB fall while a key is held
DECAY_TIMECENTS_PER_KEY = 50  # an octave up decays 0.71 times as long
RELEASE_SECONDS = 0.3


@dataclass(frozen=True)
class ToneSample:
    """One generated sample: 16-bit PCM, its loop in samples, and the key it sounds at."""

    name: str
    pcm: np.ndarray
    loop_start: int
    loop_end: int
    root: int
    correction: int  # cents, applied on playback


def timecents(seconds: float) -> int:
    return round(1200 * math.log2(seconds))


def _frequency(key: int) -> float:
    return 440.0 * 2 ** ((key - 69) / 12)


def loop_for(frequency: float) -> tuple[int, int]:
    """(loop length in samples, whole cycles in it) whose pitch is closest to `frequency`."""
    best = min(LOOP_LENGTHS, key=lambda length: _cents_off(frequency, length))
    return best, round(frequency * best / SAMPLE_RATE)


def _cents_off(frequency: float, length: int) -> float:
    cycles = max(1, round(frequency * length / SAMPLE_RATE))
    return abs(1200 * math.log2(cycles * SAMPLE_RATE / length / frequency))


def tone(root: int, rng: np.random.Generator) -> ToneSample:
    """A piano-like tone at `root`: attack segment, then an exactly periodic loop of the settled sound."""
    frequency = _frequency(root)
    loop_length, cycles = loop_for(frequency)
    played = cycles * SAMPLE_RATE / loop_length  # every partial is a whole number of cycles per loop
    attack = round(ATTACK_SECONDS * SAMPLE_RATE)
    total = attack + loop_length + 8  # a few periodic samples past the loop end, for interpolation
    t = np.arange(total) / SAMPLE_RATE
    wave = np.zeros(total)
    harmonics = [h for h in range(1, 17) if h * played < 0.45 * SAMPLE_RATE]
    for h in harmonics:
        amplitude = (abs(math.sin(math.pi * h / HAMMER_POSITION)) + 0.1) / h**1.1
        sustained = 1.0 / (1.0 + 0.6 * (h - 1))  # what is left of the partial after the attack
        tau = 0.12 / h  # upper partials fade faster
        # from 1 to exactly 0 at the loop start, so that the loop is the settled, periodic tone
        fading = (np.exp(-np.minimum(t, ATTACK_SECONDS) / tau) - math.exp(-ATTACK_SECONDS / tau)) / (
            1 - math.exp(-ATTACK_SECONDS / tau)
        )
        envelope = sustained + (1 - sustained) * fading
        wave += amplitude * envelope * np.sin(2 * np.pi * h * played * t + rng.uniform(0, 2 * np.pi))
    # the felt hammer's thump: 12 ms of low-passed noise
    thump = np.convolve(rng.standard_normal(total), np.ones(8) / 8, mode="same") * np.exp(-t / 0.004)
    wave += 0.25 * thump * (t < 0.012)
    wave *= np.minimum(1.0, t / 0.001)  # a 1 ms onset ramp avoids a click
    pcm = np.round(wave / np.max(np.abs(wave)) * 0.9 * 32767).astype("<i2")
    correction = round(1200 * math.log2(frequency / played))
    return ToneSample(f"piano {root}", pcm, attack, attack + loop_length, root, correction)


def build() -> bytes:
    """The SoundFont 2 file: one preset (bank 0, program 0) of one instrument with a zone per sample."""
    rng = np.random.default_rng(SEED)
    samples = [tone(root, rng) for root in ROOTS]
    data = b""
    headers = b""
    for sample in samples:
        start = len(data) // 2
        data += sample.pcm.tobytes() + bytes(2 * SF2_PADDING)
        headers += struct.pack(
            "<20sIIIIIBbHH",
            sample.name.encode(),
            start,
            start + len(sample.pcm),
            start + sample.loop_start,
            start + sample.loop_end,
            SAMPLE_RATE,
            sample.root,
            sample.correction,
            0,
            1,  # mono sample
        )
    headers += struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)

    generators = b""
    bags = b""
    for index, sample in enumerate(samples):
        low = 0 if index == 0 else sample.root - 6
        high = 127 if index == len(samples) - 1 else sample.root + 5
        zone = [
            (GEN_KEY_RANGE, low | (high << 8)),  # keyRange must come first
            (GEN_ATTACK_VOL, timecents(0.001)),
            (GEN_HOLD_VOL, timecents(0.02)),
            (GEN_DECAY_VOL, timecents(DECAY_SECONDS_AT_C4)),
            (GEN_KEYNUM_TO_DECAY, DECAY_TIMECENTS_PER_KEY),
            (GEN_SUSTAIN_VOL, 1000),  # 100 dB: the note dies away while held, as on a piano
            (GEN_RELEASE_VOL, timecents(RELEASE_SECONDS)),
            (GEN_SAMPLE_MODES, LOOP_CONTINUOUSLY),
            (GEN_ROOT_KEY, sample.root),
            (GEN_SAMPLE_ID, index),  # sampleID must come last
        ]
        bags += struct.pack("<HH", len(generators) // 4, 0)
        generators += b"".join(struct.pack("<Hh" if amount < 0 else "<HH", op, amount) for op, amount in zone)
    bags += struct.pack("<HH", len(generators) // 4, 0)
    generators += struct.pack("<HH", 0, 0)

    pdta = b"".join(
        [
            _chunk(b"phdr", _preset(PRESET_NAME, 0) + _preset("EOP", 1)),
            _chunk(b"pbag", struct.pack("<HH", 0, 0) + struct.pack("<HH", 1, 0)),
            _chunk(b"pmod", bytes(10)),
            _chunk(b"pgen", struct.pack("<HH", GEN_INSTRUMENT, 0) + struct.pack("<HH", 0, 0)),
            _chunk(b"inst", struct.pack("<20sH", b"piano", 0) + struct.pack("<20sH", b"EOI", len(samples))),
            _chunk(b"ibag", bags),
            _chunk(b"imod", bytes(10)),
            _chunk(b"igen", generators),
            _chunk(b"shdr", headers),
        ]
    )
    info = b"".join(
        [
            _chunk(b"ifil", struct.pack("<HH", 2, 1)),
            _chunk(b"isng", _text("EMU8000")),
            _chunk(b"INAM", _text(PRESET_NAME)),
            _chunk(b"ICOP", _text("MIT licence, generated by tui_composer.music.soundfont")),
            _chunk(b"ICMT", _text("A piano-like tone computed from harmonics; no recorded samples.")),
        ]
    )
    body = _list(b"INFO", info) + _list(b"sdta", _chunk(b"smpl", data)) + _list(b"pdta", pdta)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"sfbk" + body


def _preset(name: str, bag: int) -> bytes:
    return struct.pack("<20sHHHIII", name.encode(), 0, 0, bag, 0, 0, 0)


def _text(value: str) -> bytes:
    raw = value.encode("ascii") + b"\x00"
    return raw + b"\x00" * (len(raw) % 2)  # chunks hold an even number of bytes


def _chunk(name: bytes, payload: bytes) -> bytes:
    return name + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) % 2)


def _list(kind: bytes, payload: bytes) -> bytes:
    return _chunk(b"LIST", kind + payload)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "tui-piano.sf2")
    target.write_bytes(build())
    print(f"wrote {target} ({target.stat().st_size:,} bytes)")
