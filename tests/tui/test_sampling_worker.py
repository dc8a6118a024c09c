"""The sampling worker's protocol (`python -m tui_composer.services.worker`), spoken to as the TUI's client does:
JSON lines in, one reply per sample checked, one `done` or `error` per job, cancels that act at once on
a job still waiting its turn."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import env_for, write_run
from test_tui_samples import KESH, OCEAN, UNTITLED

from tui_composer.services.studio import Studio


class Worker:
    def __init__(self, studio: Studio) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tui_composer.services.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env_for(studio.workspace),
        )
        self.replies: list[dict[str, Any]] = []

    def send(self, **request: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def until(self, job: int, seconds: float = 90) -> list[dict[str, Any]]:
        """Replies until `job` ends; every reply read is kept in order."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            reply = json.loads(self.process.stdout.readline())
            self.replies.append(reply)
            if reply["id"] == job and reply["kind"] in ("done", "error"):
                return [r for r in self.replies if r["id"] == job]
        raise AssertionError(f"job {job} did not end within {seconds} s: {self.replies[-3:]}")

    def started(self, job: int, seconds: float = 90) -> None:
        """Replies until `job` has said anything: the worker is running it, no longer holding it in the queue."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + seconds
        while not any(r["id"] == job for r in self.replies):
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job} did not start within {seconds} s: {self.replies[-3:]}")
            self.replies.append(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        self.send(kind="quit")
        self.process.wait(timeout=20)


def samples_on_disk(studio: Studio, count: int) -> list[dict[str, Any]]:
    folder = write_run(studio.workspace, "jig-lstm", state="finished", epoch=1, epochs=1) / "samples"
    files = []
    for number in range(1, count + 1):
        path = folder / f"{number:03d}.abc"
        path.write_text((KESH, OCEAN, UNTITLED)[number % 3], encoding="utf-8")
        files.append({"number": number, "path": str(path)})
    return files


def test_checks_reply_per_sample_and_every_job_ends_once(tui_studio: Studio) -> None:
    files = samples_on_disk(tui_studio, 3)
    worker = Worker(tui_studio)
    try:
        worker.send(id=1, kind="check", run="jig-lstm", files=files)
        replies = worker.until(1)
        checks = [r for r in replies if r["kind"] == "check"]
        assert sorted(r["number"] for r in checks) == [1, 2, 3]
        assert all(r["verdict"].startswith("plays") and r["check"]["parses"] for r in checks)
        assert replies[-1]["kind"] == "done" and replies[-1]["cancelled"] is False
        assert worker.replies[0]["kind"] == "ready"

        worker.send(id=2, kind="shuffle", run="jig-lstm")
        assert worker.until(2)[-1] == {"id": 2, "kind": "error", "message": ANY_KIND_MESSAGE}
        worker.send(id=3, kind="prepare", run="jig-lstm")
        error = worker.until(3)[-1]
        assert error["kind"] == "error" and "has no model yet" in error["message"] and "jig-lstm" in error["message"]
        worker.send(id=4, kind="check", run="no-such-run", files=files)
        assert "no-such-run" in worker.until(4)[-1]["message"]
    finally:
        worker.close()


ANY_KIND_MESSAGE = "the sampling worker does not know requests of kind 'shuffle'"


# Enough checks to outlast the cancels below (a check takes some 30 ms since MIDI is written without music21's
# writer; 300 were all done before the cancel came on a loaded machine)
LONG_JOB = 1000


def test_a_cancelled_job_still_waiting_is_answered_at_once(tui_studio: Studio) -> None:
    files = samples_on_disk(tui_studio, LONG_JOB)
    worker = Worker(tui_studio)
    try:
        worker.send(id=1, kind="check", run="jig-lstm", files=files)  # seconds of work
        worker.send(id=2, kind="check", run="jig-lstm", files=files[:1])  # waits behind it
        worker.send(kind="cancel", target=2)
        second = worker.until(2)
        assert second == [{"id": 2, "kind": "done", "cancelled": True, "seconds": 0.0, "unchecked": []}]
        assert not any(r["id"] == 1 and r["kind"] == "done" for r in worker.replies)  # before the first ended
        # (Under load the worker may not have taken job 1 from its queue yet: a cancel then answers it unrun.)
        worker.started(1)
        worker.send(kind="cancel", target=1)  # the running one stops at its next sample
        first = worker.until(1)
        # (Under load the pool may have taken every file before the cancel came; then none is left unchecked.)
        assert first[-1]["cancelled"] is True, first[-1]
        checked = {r["number"] for r in first if r["kind"] == "check"}
        assert checked.isdisjoint(first[-1]["unchecked"])  # each sample is checked or said to be unchecked
        assert len(checked) + len(first[-1]["unchecked"]) == LONG_JOB
    finally:
        worker.close()


def test_samples_folder_agrees_with_the_sampling_service(tui_studio: Studio, tmp_path: Path) -> None:
    from tui_composer.services.sample_files import samples_folder
    from tui_composer.services.sampling import output_folder

    write_run(tui_studio.workspace, "jig-lstm", state="finished", epoch=1, epochs=1)
    run = tui_studio.runs.get("jig-lstm")
    assert samples_folder(tui_studio.workspace, run) == output_folder(tui_studio, run, None)


def test_the_worker_runs_tensorflow_on_one_thread_unless_told_otherwise() -> None:
    # More threads spun against the pool's processes: 2.2-2.7 s of CPU a generation instead of 1.7 s.
    from tui_composer.services.worker import pin_tensorflow_threads

    chosen = {"TF_NUM_INTEROP_THREADS": "4"}
    pin_tensorflow_threads(chosen)
    assert chosen == {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "4"}
