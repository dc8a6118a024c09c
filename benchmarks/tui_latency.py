"""TUI latency: first paint, key presses, screen switches and an 80-key burst while a training runs, and
warm sampling in the TUI's sampling worker.

Measured the way a user meets them: `tui-composer` runs in a pseudo-terminal of 80x24, and the clock stops
when the expected text reaches the terminal.

1. First paint: from spawning `tui-composer` until the Corpora screen's text has been written.
2. Key press: with a real training process busy on the same 2 cores, the Runs screen is open and the
   cursor moves between two runs; each press is timed until the selected run's title is written.
3. Screen switch: F1 to F5 in turn, each timed until a text only that screen has is written (the first
   visit of each screen builds it, and is reported apart).
4. Burst: 80 arrow presses 30 ms apart in the Runs table (14 runs with 15 minutes' worth of metrics each):
   the longest time the terminal got no output while keys were waiting, and the time from the last key
   to the last run's title.
5. Warm sampling: the TUI's own client (`tui_composer.tui.sampler`) asks its worker for 10 tunes from
   `oneills-default`, constrained, with checks: the first generation (TensorFlow and the model load),
   then every later one, from the request to the last check.

    .venv/bin/python benchmarks/tui_latency.py [--paints 5] [--presses 40] [--switches 6] [--generations 5]

Targets (issues 6 and 15): first paint within 1.5 s; key press p90 <= 100 ms; screen switch p90 <= 250 ms;
no stall over 1 s during the burst; a later generation of 10 checked tunes within 1.5 s on 2 cores.
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import json
import os
import pty
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUNES = """X:1
T:Kesh Jig
M:6/8
L:1/8
K:G
D|GAG GAB|ABA ABd|edd gdd|edB dBA|GAG GAB|ABA ABd|edd gdB|AGF G2:|

X:2
T:Out On The Ocean
M:6/8
L:1/8
K:G
D|GED DED|GAB d2e|dBA GBd|egf gdB|GED DED|GAB d2e|dBA GAB|AGE E2:|

X:3
T:The Silver Spear
M:4/4
L:1/8
K:D
A|:FA (3AAA BAFA|dfed BddB|FA (3AAA BAFA|dfed BAAB|FAAF BAFA|dfed BAA:|
"""


def cli(workspace: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tui_composer", "--workspace", str(workspace), *args]


class Terminal:
    """A program running in an 80x24 pseudo-terminal; output is collected as it arrives."""

    def __init__(self, argv: list[str], columns: int = 80, rows: int = 24) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows)}
        # As installed by pip: modules come from their bytecode cache, not compiled on every start.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True
        )
        os.close(slave)
        self.output = b""
        self.chunk_times: list[float] = []  # when each piece of output arrived (for stalls)

    def _read(self) -> None:
        data = os.read(self.master, 65536)
        self.output += data
        self.chunk_times.append(time.perf_counter())

    def read_until(self, *needles: bytes, since: int = 0, timeout: float = 30.0) -> float:
        """Seconds (perf_counter) when every needle has appeared in the output after offset `since`."""
        deadline = time.perf_counter() + timeout
        while True:
            if all(needle in self.output[since:] for needle in needles):
                return time.perf_counter()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"no {needles!r} within {timeout} s; last output: {self.output[-400:]!r}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self._read()
                except OSError:
                    raise TimeoutError("the program exited") from None

    def drain(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                self._read()

    def press(self, key: bytes) -> None:
        os.write(self.master, key)

    def close(self) -> None:
        self.press(b"\x11")  # ctrl+q
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


# The floor on this machine at this moment: Python plus Textual painting one widget.
HELLO = """
from textual.app import App
from textual.widgets import Static
class Hello(App):
    def compose(self):
        yield Static("hello Corpora")
Hello().run()
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far: unlike wall time, not inflated by a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_paint(argv: list[str], needles: tuple[bytes, ...], repeats: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds from spawn to the needles on the terminal (a first, uncounted start fills the
    bytecode cache, as pip does at install)."""
    walls, cpus = [], []
    for attempt in range(repeats + 1):
        terminal = Terminal(argv)
        painted = terminal.read_until(*needles)
        cpu = cpu_seconds(terminal.process.pid)
        if attempt:
            walls.append(painted - terminal.started)
            cpus.append(cpu)
        terminal.close()
    return walls, cpus


def tensorflow_loaded(pid: int) -> bool:
    """Whether a process has TensorFlow's shared library mapped (i.e. imported it)."""
    try:
        return "tensorflow" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


RUN_COPIES = 12  # finished runs beside the two trained ones, for the burst to move across
BATCH_RECORDS = 900  # each copy's batch records: 15 minutes of training at one record a second
SCREENS = (  # key, and a text only that screen writes
    (b"\x1bOP", b"licence"),
    (b"\x1bOQ", b"Start training"),
    (b"\x1bOR", b"encoder/model"),
    (b"\x1bOS", b"Generate (ctrl+g)"),
    (b"\x1b[15~", b"distribution"),
)
UP, DOWN = b"\x1b[A", b"\x1b[B"


def copy_runs(workspace: Path, source: str, copies: int) -> None:
    """Finished runs like `source`, each with a long metrics.jsonl (a run view reads the selected one's)."""
    for i in range(1, copies + 1):
        name = f"c-{i:02d}"
        target = workspace / "runs" / name
        shutil.copytree(workspace / "runs" / source, target)
        config = json.loads((target / "config.json").read_text())
        (target / "config.json").write_text(json.dumps({**config, "name": name}))
        records = [
            {"kind": "batch", "epoch": 1 + b // 64, "batch": 1 + b % 64, "batches": 64, "loss": 3.0 / (1 + b / 100)}
            for b in range(BATCH_RECORDS)
        ]
        (target / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def burst_keys(rows: int, count: int = 80) -> list[bytes]:
    """`count` arrows that sweep the table down and up (a held arrow key, reversed at each end)."""
    keys, position, step = [], 0, 1
    for _ in range(count):
        if not 0 <= position + step < rows:
            step = -step
        position += step
        keys.append(DOWN if step > 0 else UP)
    return keys


class Training:
    """A finished tiny run to move to, and a live one keeping both cores busy (stopped on exit)."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace

    def __enter__(self) -> Training:
        train = ["train", "--corpus", "tunes", "--encoder", "abc", "--model", "char-lstm"]
        tiny = ["--set", "units=8", "--set", "layers=1", "--set", "embedding=8"]
        done = cli(self.workspace, *train, "--name", "a-done", "--epochs", "1", *tiny)
        subprocess.run(done, check=True, capture_output=True)
        copy_runs(self.workspace, "a-done", RUN_COPIES)
        self.log = open(self.workspace / "b-live.log", "wb")
        busy = ["--epochs", "10000", "--patience", "10000", "--set", "units=256", "--set", "layers=2"]
        self.trainer = subprocess.Popen(
            cli(self.workspace, *train, "--name", "b-live", *busy),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        status = self.workspace / "runs" / "b-live" / "status.json"
        deadline = time.monotonic() + 180
        while b'"training"' not in (status.read_bytes() if status.exists() else b""):
            if time.monotonic() > deadline or self.trainer.poll() is not None:
                raise RuntimeError(f"training did not start: {(self.workspace / 'b-live.log').read_text()[-2000:]}")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        self.trainer.send_signal(signal.SIGINT)
        try:
            self.trainer.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.trainer.kill()
        self.log.close()


@dataclass
class Latencies:
    keys: list[float] = field(default_factory=list)
    first_visits: list[float] = field(default_factory=list)
    switches: list[float] = field(default_factory=list)
    by_screen: dict[str, list[float]] = field(default_factory=dict)  # later switches, per target screen
    burst_stall: float = 0.0
    burst_settle: float = 0.0
    tensorflow: bool = False
    trainer: str = ""


def under_training(workspace: Path, presses: int, switches: int) -> Latencies:
    """Key presses, screen switches and the burst, in one TUI session while a training runs."""
    found = Latencies()
    with Training(workspace) as training:
        terminal = Terminal(cli(workspace))
        try:
            terminal.read_until(b"Runs", b"b-live")  # opens on Runs: a run is training
            terminal.drain(1.0)
            mark = len(terminal.output)
            terminal.press(DOWN)  # the rows are in name order, the cursor on the first: a-done, then b-live
            terminal.read_until(b"b-live  training", since=mark)
            terminal.drain(0.5)
            for i in range(presses):
                key, title = (UP, b"a-done  finished") if i % 2 == 0 else (DOWN, b"b-live  training")
                mark, sent = len(terminal.output), time.perf_counter()
                terminal.press(key)
                found.keys.append(terminal.read_until(title, since=mark, timeout=10) - sent)
                terminal.drain(0.15)  # let the repaint finish, like a person between presses
            found.trainer = f"training process CPU: {trainer_cpu(training.trainer.pid):.0f}% of one core"
            found.burst_stall, found.burst_settle = burst(terminal, 2 + RUN_COPIES)
            for round_ in range(switches):
                for key, needle in SCREENS:
                    mark, sent = len(terminal.output), time.perf_counter()
                    terminal.press(key)
                    took = terminal.read_until(needle, since=mark, timeout=20) - sent
                    (found.switches if round_ else found.first_visits).append(took)
                    if round_:
                        found.by_screen.setdefault(needle.decode(), []).append(took)
                    terminal.drain(0.3)
            found.tensorflow = tensorflow_loaded(terminal.process.pid)
        finally:
            terminal.close()
    return found


def burst(terminal: Terminal, rows: int) -> tuple[float, float]:
    """80 arrows 30 ms apart, then F5: the longest wait for output until the Plugins screen (the app takes
    keys in order, so it appears once every arrow is handled), and how long after the last arrow it did."""
    keys = burst_keys(rows)
    first_chunk = len(terminal.chunk_times)
    started = time.perf_counter()
    for key in keys:
        terminal.press(key)
        terminal.drain(0.03)
    last_key = time.perf_counter()
    mark = len(terminal.output)
    terminal.press(SCREENS[-1][0])
    caught_up = terminal.read_until(SCREENS[-1][1], since=mark, timeout=120)
    times = [started, *(t for t in terminal.chunk_times[first_chunk:] if t <= caught_up)]
    stall = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
    terminal.drain(0.5)
    return stall, max(0.0, caught_up - last_key)


def sampling(workspace: Path, generations: int) -> list[str]:
    """Warm sampling through the TUI's own client: 10 tunes from oneills-default, constrained, checked."""
    sys.path.insert(0, str(ROOT))
    from tui_composer.services.workspace import Workspace
    from tui_composer.tui.sampler import SamplerClient

    lines = []
    space = Workspace(workspace)
    client = SamplerClient(space)
    started = time.perf_counter()
    ask(client, "prepare", {})  # builds the novelty index of oneills once per workspace (cached after)
    lines.append(f"novelty index of oneills and the model, once per workspace: {time.perf_counter() - started:.1f} s")
    client.close()
    client = SamplerClient(space)  # a fresh worker: what a new TUI session meets
    client.start()
    time.sleep(3.0)  # the worker is up and its pool warm (the TUI starts it on the Samples screen)
    walls, cpus = [], []
    for seed in range(generations + 1):
        cpu = process_tree_cpu(client.pid)
        wall, checks = ask(client, "generate", {"n": 10, "seed": seed, "max_length": 500, "constrain": True})
        if checks != 10:
            raise RuntimeError(f"generation {seed}: {checks} checks, expected 10")
        if seed == 0:
            lines.append(f"first generation (TensorFlow and the model load in the worker): {wall:.2f} s")
        else:
            walls.append(wall)
            cpus.append(process_tree_cpu(client.pid) - cpu)
    client.close()
    lines.append(summary("later generation of 10 checked tunes, request -> last check", walls))
    lines.append(summary("  CPU time of the worker and its pool", cpus))
    return lines


def ask(client: object, kind: str, options: dict[str, object]) -> tuple[float, int]:
    """One job to its end: wall seconds and how many check replies came."""
    done = threading.Event()
    replies: list[dict[str, object]] = []

    def listen(reply: dict[str, object]) -> None:
        replies.append(reply)
        if reply.get("kind") in ("done", "error"):
            done.set()

    started = time.perf_counter()
    if kind == "prepare":
        client.prepare("oneills-default", listen)  # type: ignore[attr-defined]
    else:
        client.generate("oneills-default", options, listen)  # type: ignore[attr-defined]
    if not done.wait(1800):
        raise TimeoutError(f"{kind} did not finish in 30 minutes")
    if replies[-1].get("kind") == "error":
        raise RuntimeError(f"{kind}: {replies[-1].get('message')}")
    return time.perf_counter() - started, sum(1 for r in replies if r.get("kind") == "check")


def process_tree_cpu(pid: int | None) -> float:
    """CPU seconds used so far by a process and its children (the worker and its pool)."""
    if pid is None:
        return 0.0
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            total += cpu_seconds(current)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


def trainer_cpu(pid: int, seconds: float = 1.0) -> float:
    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    before = ticks()
    time.sleep(seconds)
    return (ticks() - before) / os.sysconf("SC_CLK_TCK") / seconds * 100


def summary(label: str, seconds: list[float], unit: float = 1.0, suffix: str = "s") -> str:
    values = sorted(s * unit for s in seconds)
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return (
        f"{label}: median {statistics.median(values):.3f} {suffix}, p90 {p90:.3f} {suffix}, "
        f"min {values[0]:.3f} {suffix}, max {values[-1]:.3f} {suffix} (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paints", type=int, default=5)
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--switches", type=int, default=6, help="rounds of F1..F5 (the first is reported apart)")
    parser.add_argument("--generations", type=int, default=5, help="warm generations after the first")
    parser.add_argument("--skip", nargs="*", default=[], choices=["paint", "training", "sampling"])
    parser.add_argument(
        "--novelty-cache", type=Path, help="a workspace's cache/novelty folder: its oneills index is not built again"
    )
    args = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="tui-latency-"))
    try:
        music = workspace.parent / f"{workspace.name}-music"
        music.mkdir()
        (music / "tunes.abc").write_text(TUNES, encoding="utf-8")
        subprocess.run(
            cli(workspace, "corpus", "import", str(music), "--name", "tunes"), check=True, capture_output=True
        )
        shutil.rmtree(music)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"cores: {len(os.sched_getaffinity(0))}, load average {load}, terminal 80x24", flush=True)
        if "paint" not in args.skip:
            # The nav line, the corpora table's header and the imported corpus: the Corpora screen's first frame.
            paints, cpus = first_paint(cli(workspace), (b"Corpora", b"licence", b"tunes"), args.paints)
            print(summary("first paint: tui-composer (spawn -> Corpora screen written)", paints))
            print(summary("  CPU time it used until then", cpus))
            hello, hello_cpus = first_paint([sys.executable, "-c", HELLO], (b"hello Corpora",), args.paints)
            print(summary("reference: a one-widget Textual app, same measure", hello))
            print(summary("  CPU time it used until then", hello_cpus), flush=True)
        if "training" not in args.skip:
            found = under_training(workspace, args.presses, args.switches)
            print(summary("key press -> Runs title rewritten, training running", found.keys, 1000, "ms"))
            print(summary("screen switch (F1..F5) -> its screen written, training running", found.switches, 1000, "ms"))
            for needle, times in found.by_screen.items():
                print(summary(f"  to the screen showing {needle!r}", times, 1000, "ms"))
            print(summary("  first visit of each screen (builds it)", found.first_visits, 1000, "ms"))
            print(
                f"80-key burst in the run view ({2 + RUN_COPIES} runs): longest wait for output "
                f"{found.burst_stall * 1000:.0f} ms (target 1,000 ms), all keys handled "
                f"{found.burst_settle * 1000:.0f} ms after the last one"
            )
            print(found.trainer)
            print(f"TensorFlow mapped into the TUI process: {'yes' if found.tensorflow else 'no'}", flush=True)
        if "sampling" not in args.skip:
            if args.novelty_cache is not None:
                shutil.copytree(args.novelty_cache, workspace / "cache" / "novelty", dirs_exist_ok=True)
            for line in sampling(workspace, args.generations):
                print(line, flush=True)
        print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    main()
