"""`SampleRequest.on_finished`: the core decoder hands each token sample over as it ends, while the others
are still being sampled (the TUI's sampling worker writes and checks it meanwhile), and can be stopped."""

from __future__ import annotations

import numpy as np
import pytest
from test_decoding import TOKENS, FixedScores, cycle_table

from tui_composer.api import SampleRequest, decode


def test_each_sample_is_handed_over_as_it_ends_while_the_others_go_on() -> None:
    step = FixedScores(np.log(cycle_table(stay=0.3)[2]))
    handed: list[tuple[int, list[int], int]] = []  # sample, its ids, rows still being sampled then

    def finished(i: int, sample: np.ndarray) -> None:
        handed.append((i, sample.tolist(), step.rows_seen[-1]))

    tunes = decode(step, SampleRequest(n=6, max_length=200, seed=4, on_finished=finished), TOKENS)
    ended = [i for i, tune in enumerate(tunes) if len(tune) < 200]  # those that drew their end-of-tune
    assert sorted(i for i, _, _ in handed) == ended and len(set(ended)) == len(ended)
    assert all(ids == tunes[i].tolist() for i, ids, _ in handed)  # what is handed over is the final sample
    assert handed[0][2] == 6  # the first one while all six were still in the batch
    assert [len(tunes[i]) for i, _, _ in handed] == sorted(len(tunes[i]) for i in ended)  # shortest first


def test_raising_in_on_finished_stops_the_sampling() -> None:
    class Enough(Exception):
        pass

    def finished(i: int, sample: np.ndarray) -> None:
        raise Enough

    step = FixedScores(np.log(cycle_table(stay=0.3)[2]))
    with pytest.raises(Enough):
        decode(step, SampleRequest(n=6, max_length=200, seed=4, on_finished=finished), TOKENS)
    assert len(step.rows_seen) < 200  # it stopped when the first sample ended
