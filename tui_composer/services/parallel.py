"""Run a function over many items on all cores, each call bounded by a timeout, one failure never fatal.

music21 can hang on malformed input (for example a repeat structure it can't resolve), so every call
runs under a SIGALRM timer inside its worker process.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from types import FrameType
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class ItemTimeout(Exception):
    pass


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """What one call gave: a value, or the reason it failed."""

    value: R | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# An exception raised inside a gc callback (hypothesis installs one) or a __del__ is swallowed by Python,
# so once the deadline has passed the timer repeats quickly until the exception gets through.
_ALARM_REPEAT_SECONDS = 0.001


def call_bounded(function: Callable[[T], R], item: T, timeout: float) -> Outcome[R]:
    """Call `function(item)`, turning any exception or a timeout into a reason.

    In the main thread a SIGALRM timer interrupts the call. Python delivers signals only there, so from
    another thread (the TUI's workers) the call runs in a daemon thread that is abandoned after `timeout`:
    the caller gets its answer in time even if music21 hangs.
    """
    if threading.current_thread() is not threading.main_thread():
        return _call_in_thread(function, item, timeout)
    armed = True

    def alarm(signum: int, frame: FrameType | None) -> None:
        if armed and not _in_gc_callback(frame):  # raised there it would be lost: wait for the next tick
            raise ItemTimeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout, _ALARM_REPEAT_SECONDS)
    try:
        try:
            return Outcome(value=function(item))
        finally:
            # Stop the timer before handling anything: a tick raised here still lands in the except below.
            signal.setitimer(signal.ITIMER_REAL, 0)
            armed = False
    except ItemTimeout:
        return Outcome(error=f"timed out after {timeout:g} s")
    except Exception as error:  # noqa: BLE001 - the reason is reported per item
        return Outcome(error=reason_of(error))
    finally:
        signal.signal(signal.SIGALRM, previous)


def _in_gc_callback(frame: FrameType | None) -> bool:
    callback_code = {getattr(getattr(c, "__func__", c), "__code__", None) for c in gc.callbacks}
    while frame is not None:
        if frame.f_code in callback_code:
            return True
        frame = frame.f_back
    return False


def _call_in_thread(function: Callable[[T], R], item: T, timeout: float) -> Outcome[R]:
    box: list[Outcome[R]] = []

    def target() -> None:
        try:
            box.append(Outcome(value=function(item)))
        except Exception as error:  # noqa: BLE001 - the reason is reported per item
            box.append(Outcome(error=reason_of(error)))

    worker = threading.Thread(target=target, name="bounded-call", daemon=True)
    worker.start()
    worker.join(timeout)
    return box[0] if box else Outcome(error=f"timed out after {timeout:g} s")


def reason_of(error: BaseException) -> str:
    """A one-line reason for a failed item: an EncodeError's own reason, else the exception's first line."""
    reason = getattr(error, "reason", None)  # EncodeError carries a plain reason
    if isinstance(reason, str):
        return reason
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:300] if text else type(error).__name__


def _call_chunk(function: Callable[[T], R], chunk: Sequence[T], timeout: float) -> list[Outcome[R]]:
    return [call_bounded(function, item, timeout) for item in chunk]


def worker_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def pool_context() -> multiprocessing.context.BaseContext:
    """How to start pool processes: forked, unless this process runs TensorFlow's threads, which can
    deadlock a forked child (spawned then)."""
    return multiprocessing.get_context("spawn" if "tensorflow" in sys.modules else "fork")


def map_bounded(
    function: Callable[[T], R],
    items: Sequence[T],
    *,
    timeout: float = 30.0,
    workers: int | None = None,
    chunk_size: int = 16,
) -> Generator[Outcome[R], None, None]:
    """Outcomes in the order of `items`. `function` must be picklable (a module-level function)."""
    workers = workers or worker_count()
    if workers == 1 or len(items) <= chunk_size:
        for item in items:
            yield call_bounded(function, item, timeout)
        return
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context()) as pool:
        futures = [pool.submit(_call_chunk, function, chunk, timeout) for chunk in chunks]
        try:
            for future, chunk in zip(futures, chunks, strict=True):
                try:
                    yield from future.result()
                except Exception as error:  # noqa: BLE001 - a worker died (e.g. out of memory)
                    yield from (Outcome(error=f"worker failed: {reason_of(error)}") for _ in chunk)
        finally:  # closed early (a stopped training): the chunks not started are dropped, not waited for
            pool.shutdown(wait=True, cancel_futures=True)
