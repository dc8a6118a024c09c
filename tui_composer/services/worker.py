"""The sampling worker: one long-lived process that samples and checks tunes for the TUI.

`python -m tui_composer.services.worker` loads TensorFlow once (at its first model) and keeps the models it
loaded, so a generation after the first costs the sampling itself, not a process start, TensorFlow's
import and a model load. The TUI talks to it through `tui_composer.tui.sampler` and never imports
TensorFlow itself.

The protocol is JSON lines. Requests on stdin, each with an `id` the replies repeat:

    {"id": 1, "kind": "generate", "run": RUN, "options": {SampleOptions fields}, "check": true}
    {"id": 2, "kind": "check", "run": RUN, "files": [{"number": 6, "path": ".../006.abc"}, ...]}
    {"id": 3, "kind": "prepare", "run": RUN}          load the model ahead of a generation
    {"id": 4, "kind": "cancel", "target": 1}          stop job 1 at its next step
    {"kind": "quit"}

Replies on stdout:

    {"id": 0, "kind": "ready", "pid": PID}
    {"id", "kind": "progress", "phase": "loading|indexing|sampling|writing|checking", "done", "total", "message"}
    {"id", "kind": "sample", "sample": {Sample.to_json()}}     a sample's files are written
    {"id", "kind": "check", "number": N, "check": {TuneCheck.to_json()} | null, "verdict": "one line"}
    {"id", "kind": "done", "cancelled": bool, "seconds": float, "unchecked": [N, ...]}
    {"id", "kind": "error", "message": "names the run, option or file and what to do"}

Each job ends with exactly one `done` or `error`. Jobs run one at a time in order; `cancel` is read while
a job runs and takes effect between its steps (the model's own sampling call runs to its end: the client
restarts a worker that does not stop soon enough). Writing and checking each sample runs in a pool of
small processes (music21 is pure Python: two cores convert twice as fast); each sample is parsed and
written as MIDI once, and its check reuses both (`check_tune(wrote_midi=True, score=...)`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tui_composer.services.jobs import SampleOptions
from tui_composer.services.sample_files import samples_folder, verdict_line
from tui_composer.services.workspace import WorkspaceError

if TYPE_CHECKING:
    from tui_composer.music.checking import NoveltyIndex
    from tui_composer.services.runs import Run
    from tui_composer.services.studio import Studio

MODEL_CACHE_SIZE = 3  # models kept loaded (a char-LSTM holds a few MB of weights and its compiled steps)
INDEX_CACHE_SIZE = 4  # novelty indexes kept (one per corpus)
VERDICT_CACHE_SIZE = 10_000  # checks of files on disk, by path, size and mtime
MAX_CHECK_FILES = 1000  # files one `check` request may name
CONVERT_TIMEOUT = 120.0  # one sample's writing and checking, in a pool process (music21 may hang)
# TensorFlow's threads in the worker: one. A generation's steps are small matmuls (10 tunes x a few hundred
# units) while the pool parses and writes finished tunes on the other cores; TensorFlow's spinning thread
# pool took CPU from them. Measured on 2 cores, 10 checked tunes: 1.7 s of CPU a generation instead of
# 2.2-2.7 s, 1.8 s wall instead of 2.1-2.8 s. The environment may say otherwise: TensorFlow reads these.
TENSORFLOW_THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def convert_workers() -> int:
    """Pool processes for writing and checking: every core but never more than 4 (the gain flattens)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cores))


class JobCancelled(BaseException):
    """The client asked to stop this job. Raised from the decoder's `on_finished` inside a model's `sample`:
    a BaseException, like KeyboardInterrupt, so no plugin guard turns it into the plugin's error."""


# --- what runs in the pool processes ---------------------------------------------------------------------

_pool_studio: list[Studio] = []
_pool_encoders: dict[tuple[str, int], Any] = {}
_pool_indexes: dict[str, Any] = {}


def _studio() -> Studio:
    if not _pool_studio:
        from tui_composer.services.studio import Studio

        _pool_studio.append(Studio())
    return _pool_studio[0]


def _encoder_of(run_name: str) -> Any:
    """A pool process's copy of the run's fitted encoder, loaded once per encoder.json (plugins wrap their
    classes' methods, so an encoder does not pickle: each process loads its own)."""
    from tui_composer.services.training import encoder_spec, load_encoder

    run = _studio().runs.get(run_name)
    key = (run_name, run.encoder_path.stat().st_mtime_ns)
    if key not in _pool_encoders:
        if len(_pool_encoders) >= MODEL_CACHE_SIZE:
            _pool_encoders.clear()
        spec = encoder_spec(_studio(), run.config["encoder"])
        _pool_encoders[key] = load_encoder(run, spec, run.config["encoder_params"])
    return _pool_encoders[key]


def _index_at(path: str | None) -> NoveltyIndex | None:
    """A pool process's copy of a novelty index, loaded once per path."""
    if path is None:
        return None
    if path not in _pool_indexes:
        from tui_composer.music.checking import NoveltyIndex

        if len(_pool_indexes) >= INDEX_CACHE_SIZE:
            _pool_indexes.clear()
        _pool_indexes[path] = NoveltyIndex.load(Path(path))
    return _pool_indexes[path]


def warm_pool_process() -> None:
    """Load the plugins and run one tiny tune through parsing and MIDI, so the first real sample is quick."""
    from tui_composer.music.checking import check_tune

    _studio().registry  # noqa: B018 - loads the plugins now
    check_tune("X:1\nM:4/4\nL:1/8\nK:C\nCDEF GABc|\n")


def write_and_check(
    run_name: str, array: Any, folder: str, number: int, index_path: str | None, check: bool
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One sample written as NNN.abc and NNN.mid (`sampling.write_sample`), then checked (its bars measured,
    its novelty looked up) on the Score it was written from: neither parsed nor written as MIDI again."""
    from tui_composer.services.sampling import write_sample_and_score

    sample, score = write_sample_and_score(_encoder_of(run_name), array, Path(folder), number)
    if not check or not sample.abc:
        return sample.to_json(), None
    wrote = sample.midi_path is not None
    return sample.to_json(), _check_sample(sample.abc, number, index_path, wrote, sample.error, score)


def check_file(path: str, number: int, index_path: str | None) -> dict[str, Any]:
    """The check of one sample file on disk; its .mid beside it counts as written."""
    from tui_composer.services.corpora import read_abc_file

    abc = Path(path)
    return _check_sample(read_abc_file(abc), number, index_path, abc.with_suffix(".mid").is_file(), None)


def _check_sample(
    text: str, number: int, index_path: str | None, wrote_midi: bool, error: str | None, score: Any = None
) -> dict[str, Any]:
    from tui_composer.music.checking import check_tune

    result = check_tune(text, number, _index_at(index_path), wrote_midi=wrote_midi, score=score)
    if not wrote_midi and error:
        result.error = result.error or error  # why the sampler could not write its MIDI
    return result.to_json()


# --- the worker -----------------------------------------------------------------------------------------------


@dataclass
class _Loaded:
    encoder: Any
    data: Any
    model: Any


class Worker:
    """Answers requests one job at a time; `cancel` requests are read by the reader thread meanwhile."""

    def __init__(self, studio: Studio, replies: IO[str]) -> None:
        self.studio = studio
        self._replies = replies
        self._send_lock = threading.Lock()
        self._cancelled: set[int] = set()
        self._running = 0  # the job being done; others wait in the queue
        self._answered: set[int] = set()  # queued jobs cancelled (and answered) before they started
        self._jobs_lock = threading.Lock()
        self._models: OrderedDict[tuple[str, str, int], _Loaded] = OrderedDict()
        self._indexes: OrderedDict[str, str] = OrderedDict()  # corpus -> its index file
        self._verdicts: OrderedDict[tuple[str, int, int], dict[str, Any]] = OrderedDict()
        self._pool: ProcessPoolExecutor | None = None

    # --- plumbing ---

    def send(self, job: int, kind: str, **fields: Any) -> None:
        with self._send_lock:
            self._replies.write(json.dumps({"id": job, "kind": kind, **fields}) + "\n")
            self._replies.flush()

    def progress(self, job: int, phase: str, done: int = 0, total: int = 0, message: str = "") -> None:
        self.send(job, "progress", phase=phase, done=done, total=total, message=message)

    def cancel(self, job: int) -> None:
        """Stop `job` at its next step; a job still waiting in the queue is answered at once, never run."""
        with self._jobs_lock:
            if job != self._running:
                self._answered.add(job)
                self.send(job, "done", cancelled=True, seconds=0.0, unchecked=[])
                return
            self._cancelled.add(job)

    def _check_cancel(self, job: int) -> None:
        if job in self._cancelled:
            raise JobCancelled

    def start_pool(self) -> None:
        """The conversion pool, started before TensorFlow loads (its processes must not fork TensorFlow)."""
        if self._pool is not None or convert_workers() < 2:
            return
        context = multiprocessing.get_context("forkserver")
        # Forked from a server that already imported music21: a new pool process is ready in milliseconds.
        context.set_forkserver_preload(["tui_composer.music.checking", "tui_composer.music.export", "music21"])
        self._pool = ProcessPoolExecutor(convert_workers(), mp_context=context, initializer=warm_pool_process)
        for _ in range(convert_workers()):
            self._pool.submit(time.sleep, 0.05)  # starts every process now, not at the first sample

    def _run_in_pool(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        if self._pool is None:  # one core: in this process, one after the other
            future: Future[Any] = Future()
            try:
                future.set_result(function(*args))
            except Exception as error:  # noqa: BLE001 - delivered with the future, like the pool's
                future.set_exception(error)
            return future
        return self._pool.submit(function, *args)

    def _restart_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            self.start_pool()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # --- requests ---

    def handle(self, request: dict[str, Any]) -> None:
        """Run one job to its `done` or `error` reply; nothing it raises stops the worker."""
        job = int(request.get("id", 0))
        kind = request.get("kind")
        started = time.monotonic()
        with self._jobs_lock:
            if job in self._answered:
                self._answered.discard(job)
                return
            self._running = job
        try:
            if kind == "generate":
                unchecked = self.generate(job, str(request["run"]), request.get("options") or {}, request.get("check"))
            elif kind == "check":
                unchecked = self.check_files(job, str(request["run"]), list(request.get("files") or []))
            elif kind == "prepare":
                self.prepare(job, str(request["run"]))
                unchecked = []
            else:
                self.send(job, "error", message=f"the sampling worker does not know requests of kind {kind!r}")
                return
        except JobCancelled:
            self.send(job, "done", cancelled=True, seconds=round(time.monotonic() - started, 3), unchecked=[])
        except Exception as error:  # noqa: BLE001 - every failure goes back to the TUI with its reason
            traceback.print_exc()  # into the worker's log, for a bug report
            self.send(job, "error", message=_message(error))
        else:
            cancelled = job in self._cancelled
            seconds = round(time.monotonic() - started, 3)
            self.send(job, "done", cancelled=cancelled, seconds=seconds, unchecked=unchecked)
        finally:
            with self._jobs_lock:
                self._cancelled.discard(job)
                self._running = 0

    def _run(self, name: str) -> Run:
        return self.studio.runs.get(name)  # WorkspaceError names the run

    def model(self, job: int, run: Run) -> _Loaded:
        """The run's encoder and best model, from the cache while model.keras is unchanged."""
        from tui_composer.services.sampling import SamplingError, load_model

        if not run.model_path.is_file():
            raise SamplingError(f"run {run.name!r} has no model yet: it writes model.keras after its first epoch")
        key = (run.name, str(run.model_path), run.model_path.stat().st_mtime_ns)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        self.progress(job, "loading", message=f"loading the model of {run.name} (TensorFlow loads the first time)")
        encoder, data, model = load_model(self.studio, run)
        for old in [k for k in self._models if k[0] == run.name]:
            del self._models[old]  # an older model.keras of the same run
        self._models[key] = _Loaded(encoder, data, model)
        while len(self._models) > MODEL_CACHE_SIZE:
            self._models.popitem(last=False)
        return self._models[key]

    def index_path(self, job: int, run: Run) -> str | None:
        """The novelty index file of the run's corpus, built the first time (with progress)."""
        from tui_composer.music.checking import corpus_novelty_index, novelty_index_path

        corpus = run.settings().get("corpus")  # checks need only the corpus
        if not corpus:
            return None
        path = self._indexes.get(corpus)
        if path is None or not Path(path).is_file():

            def indexing(done: int, total: int) -> None:
                self._check_cancel(job)  # the first index of a corpus takes minutes: it stops here
                if done == total or done % 25 == 0:
                    self.progress(job, "indexing", done, total, f"indexing the training tunes of {corpus}")

            corpus_novelty_index(self.studio, corpus, progress=indexing)
            path = str(novelty_index_path(self.studio, corpus))
            self._indexes[corpus] = path
            while len(self._indexes) > INDEX_CACHE_SIZE:
                self._indexes.popitem(last=False)
        return path

    def prepare(self, job: int, run_name: str) -> None:
        """The model and the novelty index loaded (or built) before the user asks for samples."""
        run = self._run(run_name)
        self.model(job, run)
        self._check_cancel(job)
        self.index_path(job, run)

    def generate(self, job: int, run_name: str, given: dict[str, Any], check: Any) -> list[int]:
        """Sample, and write and check each sample in the pool as soon as it ends (the core decoder says so
        through `SampleRequest.on_finished`), each reply as its sample is done. When the corpus has no
        novelty index yet, the samples are written first and checked once it is built."""
        from tui_composer.services.sampling import check_options, next_number, sample_request, with_length

        known = {f.name for f in fields(SampleOptions)} - {"out", "audio"}
        options = SampleOptions(**{k: v for k, v in given.items() if k in known})
        check_options(options)  # SamplingError names the option and its bound
        run = self._run(run_name)
        options = with_length(options, run)
        loaded = self.model(job, run)
        self._check_cancel(job)
        folder = samples_folder(self.studio.workspace, run)
        folder.mkdir(parents=True, exist_ok=True)
        index = self._ready_index(run) if check else None
        check_now = bool(check) and (index is not None or not run.settings().get("corpus"))
        writer = _SampleWriter(self, job, run.name, folder, next_number(folder), index, check_now, options.n)

        def finished(i: int, array: Any) -> None:
            self._check_cancel(job)  # stops the sampling itself, at the next sample that ends
            writer.submit(i, array)

        request = sample_request(loaded.encoder, loaded.data, options, on_finished=finished)
        self.progress(job, "sampling", 0, options.n, f"sampling {options.n} from {run.name}")
        for i, array in enumerate(loaded.model.sample(request)):
            writer.submit(i, array)  # those the model's own loop did not hand over as they ended
        self._check_cancel(job)
        for _ in self._as_completed(job, writer.futures):
            pass  # each one replies as it ends (writer.done)
        writer.wait_for_replies()
        if check and not check_now:
            try:
                index = self.index_path(job, run)
            except JobCancelled:
                return [number for number, _ in writer.written]
            return self._check_paths(job, run, writer.written, index)
        return []

    def _ready_index(self, run: Run) -> str | None:
        """The run's corpus index file when it is known and built, else None (building it takes minutes)."""
        path = self._indexes.get(str(run.settings().get("corpus")))
        return path if path is not None and Path(path).is_file() else None

    def check_files(self, job: int, run_name: str, files: list[dict[str, Any]]) -> list[int]:
        """Checks of samples on disk, each reply as it finishes; those left when cancelled are returned."""
        if len(files) > MAX_CHECK_FILES:
            raise ValueError(f"{len(files)} files in one check request; at most {MAX_CHECK_FILES} (ask in parts)")
        run = self._run(run_name)
        items = [(int(f["number"]), str(f["path"])) for f in files]
        try:
            index = self.index_path(job, run)
        except JobCancelled:  # while the corpus was indexed: none of them was checked
            return [number for number, _ in items]
        return self._check_paths(job, run, items, index)

    def _check_paths(self, job: int, run: Run, items: list[tuple[int, str]], index: str | None) -> list[int]:
        futures: dict[Future[Any], int] = {}
        keys: dict[int, tuple[str, int, int]] = {}
        for number, path in items:
            try:
                stat = os.stat(path)
            except OSError as error:
                self.send(job, "check", number=number, check=None, verdict=f"not checked: {error.strerror}")
                continue
            key = keys[number] = (path, stat.st_size, stat.st_mtime_ns)
            if key in self._verdicts:
                result = self._verdicts[key]
                self.send(job, "check", number=number, check=result, verdict=verdict_line(result))
                continue
            futures[self._run_in_pool(check_file, path, number, index)] = number
        total = len(futures)
        if total:
            self.progress(job, "checking", 0, total, f"checking {total} samples of {run.name}")
        answered: set[int] = set()
        try:
            for done, (future, number) in enumerate(self._as_completed(job, futures), start=1):
                answered.add(number)
                try:
                    result = future.result()
                except Exception as error:  # noqa: BLE001 - a file that can't be read is said, the rest go on
                    self.send(job, "check", number=number, check=None, verdict=f"not checked: {_message(error)}")
                    continue
                self._verdicts[keys[number]] = result
                while len(self._verdicts) > VERDICT_CACHE_SIZE:
                    self._verdicts.popitem(last=False)
                self.send(job, "check", number=number, check=result, verdict=verdict_line(result))
                self.progress(job, "checking", done, total, f"{done} of {total} samples checked")
        except JobCancelled:  # the rest stay unchecked, and the client is told which
            return sorted(n for n in futures.values() if n not in answered)
        return []

    def _as_completed(self, job: int, futures: dict[Future[Any], int]) -> Iterator[tuple[Future[Any], int]]:
        """Futures as they finish; a cancel drops the ones not started, a dead pool process restarts the pool."""
        pending = set(futures)
        deadline = time.monotonic() + CONVERT_TIMEOUT * max(1, len(futures))
        while pending:
            if job in self._cancelled:
                for future in pending:
                    future.cancel()
                raise JobCancelled
            finished, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future, futures[future]
            if time.monotonic() > deadline:
                self._restart_pool()
                raise TimeoutError(f"writing and checking took over {CONVERT_TIMEOUT:g} s a sample; the pool restarted")
            if any(f.done() and _broken(f) for f in finished):
                self._restart_pool()


class _SampleWriter:
    """The samples of one generation: each goes to the pool as it ends, and its replies are sent the moment
    the pool has written (and checked) it, from the pool's result thread."""

    def __init__(
        self, worker: Worker, job: int, run: str, folder: Path, first: int, index: str | None, check: bool, n: int
    ) -> None:
        self.worker, self.job, self.run, self.folder = worker, job, run, folder
        self.first, self.index, self.check, self.n = first, index, check, n
        self.futures: dict[Future[Any], int] = {}
        self.written: list[tuple[int, str]] = []  # written but not checked yet (no novelty index then)
        self._submitted: set[int] = set()
        self._done = 0
        self._replied = threading.Condition()  # callbacks that have sent their replies
        self._answered = 0
        self._lock = threading.Lock()

    def submit(self, i: int, array: Any) -> None:
        if i in self._submitted:
            return
        self._submitted.add(i)
        number = self.first + i
        future = self.worker._run_in_pool(
            write_and_check, self.run, array, str(self.folder), number, self.index, self.check
        )
        self.futures[future] = number
        future.add_done_callback(lambda done: self.done(done, number))

    def done(self, future: Future[Any], number: int) -> None:
        try:
            self._reply(future, number)
        finally:
            with self._replied:
                self._answered += int(not future.cancelled())
                self._replied.notify_all()

    def wait_for_replies(self) -> None:
        """Until every sample written has been replied for: the job's `done` must come after them."""
        with self._replied:
            self._replied.wait_for(lambda: self._answered >= self._finished, timeout=CONVERT_TIMEOUT)

    @property
    def _finished(self) -> int:
        return sum(1 for f in self.futures if f.done() and not f.cancelled())

    def _reply(self, future: Future[Any], number: int) -> None:
        worker, job = self.worker, self.job
        if future.cancelled():
            return
        with self._lock:
            self._done += 1
            count = self._done
        try:
            sample, result = future.result()
        except Exception as error:  # noqa: BLE001 - one sample's failure never stops the others
            worker.send(job, "check", number=number, check=None, verdict=f"not written: {_message(error)}")
            return
        worker.send(job, "sample", sample=sample)
        if self.check:
            worker.send(job, "check", number=number, check=result, verdict=verdict_line(result, sample["error"] or ""))
        elif sample["abc_path"] and sample["abc"]:
            with self._lock:
                self.written.append((number, sample["abc_path"]))
        else:  # kept as text only: nothing to check, and the reason is the verdict
            worker.send(job, "check", number=number, check=None, verdict=verdict_line(None, sample["error"] or ""))
        worker.progress(job, "writing", count, self.n, f"{count} of {self.n} samples written")


def _broken(future: Future[Any]) -> bool:
    from concurrent.futures.process import BrokenProcessPool

    return not future.cancelled() and isinstance(future.exception(), BrokenProcessPool)


def _message(error: BaseException) -> str:
    """The user-facing line for a failure: our own errors say what to do; others get their type."""
    from tui_composer.services.sampling import SamplingError

    if isinstance(error, SamplingError | WorkspaceError | ValueError | TimeoutError):
        return str(error)
    return f"{type(error).__name__}: {error}"[:500]


def read_requests(lines: IO[str], jobs: queue.Queue[dict[str, Any] | None], worker: Worker) -> None:
    """The reader thread: cancels act at once, everything else waits its turn; EOF or `quit` ends the worker."""
    for line in lines:
        try:
            request = json.loads(line)
        except ValueError:
            worker.send(0, "error", message=f"not a JSON request: {line.strip()[:100]!r}")
            continue
        if not isinstance(request, dict):
            continue
        if request.get("kind") == "cancel":
            worker.cancel(int(request.get("target", 0)))
        elif request.get("kind") == "quit":
            break
        else:
            jobs.put(request)
    jobs.put(None)


def pin_tensorflow_threads(environ: MutableMapping[str, str]) -> None:
    """TENSORFLOW_THREADS, where the environment does not choose."""
    for variable, threads in TENSORFLOW_THREADS.items():
        environ.setdefault(variable, threads)


def main() -> None:
    """Serve requests until stdin closes. Replies go to the original stdout; anything a library prints goes
    to stderr (the client's log file), so it can never break the protocol."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    pin_tensorflow_threads(os.environ)  # before TensorFlow loads (at the first model)
    from tui_composer.services.studio import Studio

    worker = Worker(Studio(), replies)
    worker.start_pool()
    jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
    reader = threading.Thread(target=read_requests, args=(sys.stdin, jobs, worker), name="requests", daemon=True)
    reader.start()
    worker.send(0, "ready", pid=os.getpid())
    try:
        while (request := jobs.get()) is not None:
            worker.handle(request)
    finally:
        worker.close()


if __name__ == "__main__":
    main()
