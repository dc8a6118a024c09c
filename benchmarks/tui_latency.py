"""TUI latency: first paint after the command, and key press -> screen update while a training runs.

Both are measured the way a user meets them: `tui-composer` runs in a pseudo-terminal of 80x24, and the
clock stops when the expected text reaches the terminal.

1. First paint: from spawning `tui-composer` until the Corpora screen's text has been written.
2. Key press: with a real training process busy on the same 2 cores, the Runs screen is open and the
   cursor moves between two runs; each press is timed until the selected run's title is written.

    .venv/bin/python benchmarks/tui_latency.py [--paints 5] [--presses 40]

Targets (issue 6): first paint within 1.5 s; a key press updates the screen within 100 ms.
"""

from __future__ import annotations

import argparse
import fcntl
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
import time
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
                    self.output += os.read(self.master, 65536)
                except OSError:
                    raise TimeoutError("the program exited") from None

    def drain(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                self.output += os.read(self.master, 65536)

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


def key_latency(workspace: Path, presses: int) -> tuple[list[float], bool, str]:
    train = ["train", "--corpus", "tunes", "--encoder", "abc", "--model", "char-lstm"]
    # A finished run to move to, and a live one keeping both cores busy.
    tiny = ["--set", "units=8", "--set", "layers=1", "--set", "embedding=8"]
    subprocess.run(cli(workspace, *train, "--name", "a-done", "--epochs", "1", *tiny), check=True, capture_output=True)
    log = open(workspace / "b-live.log", "wb")  # noqa: SIM115 - closed below
    busy = ["--epochs", "10000", "--patience", "10000", "--set", "units=256", "--set", "layers=2"]
    trainer = subprocess.Popen(
        cli(workspace, *train, "--name", "b-live", *busy),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    terminal = None
    try:
        status = workspace / "runs" / "b-live" / "status.json"
        deadline = time.monotonic() + 120
        while b'"training"' not in (status.read_bytes() if status.exists() else b""):
            if time.monotonic() > deadline or trainer.poll() is not None:
                raise RuntimeError(f"training did not start: {(workspace / 'b-live.log').read_text()[-2000:]}")
            time.sleep(0.2)
        terminal = Terminal(cli(workspace))
        terminal.read_until(b"Runs", b"b-live")  # opens on Runs: a run is training
        terminal.drain(1.0)
        latencies = []
        for i in range(presses):
            key, title = (b"\x1b[A", b"a-done  finished") if i % 2 == 0 else (b"\x1b[B", b"b-live  training")
            mark = len(terminal.output)
            sent = time.perf_counter()
            terminal.press(key)
            latencies.append(terminal.read_until(title, since=mark, timeout=5) - sent)
            terminal.drain(0.15)  # let the repaint finish, like a person between presses
        cpu = f"training process CPU: {trainer_cpu(trainer.pid):.0f}% of one core while measuring"
        return latencies, tensorflow_loaded(terminal.process.pid), cpu
    finally:
        if terminal is not None:
            terminal.close()
        trainer.send_signal(signal.SIGINT)
        try:
            trainer.wait(timeout=60)
        except subprocess.TimeoutExpired:
            trainer.kill()
        log.close()


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
        print(f"cores: {len(os.sched_getaffinity(0))}, load average {load}, terminal 80x24")
        # The nav line, the corpora table's header and the imported corpus: the Corpora screen's first frame.
        paints, cpus = first_paint(cli(workspace), (b"Corpora", b"licence", b"tunes"), args.paints)
        print(summary("first paint: tui-composer (spawn -> Corpora screen written)", paints))
        print(summary("  CPU time it used until then", cpus))
        hello, hello_cpus = first_paint([sys.executable, "-c", HELLO], (b"hello Corpora",), args.paints)
        print(summary("reference: a one-widget Textual app, same measure", hello))
        print(summary("  CPU time it used until then", hello_cpus))
        latencies, tf_loaded, cpu = key_latency(workspace, args.presses)
        print(summary("key press -> Runs title rewritten, training running", latencies, 1000, "ms"))
        print(cpu)
        print(f"TensorFlow mapped into the TUI process: {'yes' if tf_loaded else 'no'}")
        print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    main()
