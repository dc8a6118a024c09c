"""Hostile inputs, faults and misuses against the real command line (issue 12).

    .venv/bin/python benchmarks/hostile_inputs.py [--timeout 120] [--only NAME] [--verbose]

Each case builds its input in a fresh workspace, runs `tui-composer ...` as a separate process with a time
bound, and reads the process's peak resident memory (`wait4`). A case is

- handled cleanly: the command ended in time, without a traceback or a signal, said what the case expects
  (a refusal names the thing at fault) and lost nothing;
- crashed: a traceback, a signal, or an exit status the case does not expect;
- hung: still running at the time bound (it is killed);
- lost: good items beside the bad one are gone, or a listing that worked before the case no longer works.

It prints one line per case, then the counts and the peak memory of the worst case. The target: 0 crashed,
0 hung, 0 lost, peak under 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GOOD_TUNES = (
    "X:1\nT:Good jig\nM:6/8\nL:1/8\nK:G\nGAB cBA|GAB c2d|edc BAG|A3 G3|]\n\n"
    "X:2\nT:Good reel\nM:4/4\nL:1/8\nK:D\nDFAd fdAF|GBdg fdAF|DFAd fdAF|E2F2 D4|]\n"
)
TINY_CHAR_LSTM = ["--set", "embedding=8", "--set", "layers=1", "--set", "units=8", "--set", "streams=2"]
LONG_NOTE_TUNE = "X:1\nK:C\nC999999999|\n"  # the 60 bytes: music21 wants an L: to read it
LONG_NOTE_PLAYABLE = "X:1\nL:1/8\nK:C\nC999999999|\n"  # the same note in a tune that parses
GIB = 1 << 30
MEMORY_TARGET_MB = 1024


@dataclass
class Outcome:
    """What a command did: exit status (negative: killed by that signal), output, time and peak memory."""

    status: int | None  # None: it was still running at the time bound
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr


@dataclass
class Case:
    name: str
    run: Callable[[Path, float], tuple[list[Outcome], str | None]]  # outcomes, and what was lost (None: nothing)
    expect: Callable[[list[Outcome]], str | None]  # None when the outcomes are what a clean handling gives


@dataclass
class Verdict:
    case: str
    kind: str  # clean, crashed, hung, lost
    detail: str
    peak_mb: float
    seconds: float
    outcomes: list[Outcome] = field(default_factory=list)


# --- running the command line -----------------------------------------------------------------------------


def tui_composer(workspace: Path, *args: str, timeout: float, env: dict[str, str] | None = None) -> Outcome:
    """`tui-composer --workspace WS ARGS`, bounded in time, with its peak RSS from wait4."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    if "TUI_COMPOSER_PLUGINS" not in (env or {}):
        environment.pop("TUI_COMPOSER_PLUGINS", None)  # every installed plugin loads, as for a user
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tui_composer", "--workspace", str(workspace), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=environment,
            start_new_session=True,
        )
        status, usage = _wait(process.pid, started + timeout)
        if status is None:
            os.killpg(process.pid, signal.SIGKILL)
            _, usage = _wait(process.pid, None)
        process.returncode = 0  # reaped by wait4 above
        out.seek(0)
        err.seek(0)
        return Outcome(
            status=status,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            seconds=time.monotonic() - started,
            peak_mb=usage.ru_maxrss / 1024 if usage is not None else 0.0,
        )


def _wait(pid: int, deadline: float | None) -> tuple[int | None, os.struct_rusage | None]:  # type: ignore[name-defined]
    while True:
        done, raw, usage = os.wait4(pid, 0 if deadline is None else os.WNOHANG)
        if done:
            status = -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)
            return status, usage
        if deadline is not None and time.monotonic() > deadline:
            return None, None
        time.sleep(0.05)


# --- building inputs ---------------------------------------------------------------------------------------


def folder_with(tmp: Path, name: str, write: Callable[[Path], None]) -> Path:
    """A folder holding the two good tunes and whatever `write` adds."""
    folder = tmp / "music"
    folder.mkdir()
    (folder / "good.abc").write_text(GOOD_TUNES, encoding="utf-8")
    write(folder)
    return folder


def mxl_bomb(path: Path) -> None:
    """About 1 MB of zip that claims to unpack to 1 GiB of MusicXML."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(
            "META-INF/container.xml", '<container><rootfiles><rootfile full-path="s.xml"/></rootfiles></container>'
        )
        with archive.open("s.xml", "w", force_zip64=True) as member:
            block = b"<!-- padding -->" * (1 << 16)
            for _ in range(GIB // len(block)):
                member.write(block)


def zip_slip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("../../escaped.xml", "<score-partwise/>")


XXE = (
    '<?xml version="1.0"?>\n<!DOCTYPE score-partwise [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    "<score-partwise><work><work-title>&x;</work-title></work></score-partwise>\n"
)
LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY a "lollollollollol">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
    + "]>\n<score-partwise><work><work-title>&i;</work-title></work></score-partwise>\n"
)


def writer(name: str, data: bytes | str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        path = folder / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    return write


def big_midi(folder: Path) -> None:
    with open(folder / "huge.mid", "wb") as handle:
        handle.write(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk" + (50 << 20).to_bytes(4, "big"))
        handle.truncate(50 << 20)


def non_utf8_name(folder: Path) -> None:
    name = os.fsdecode(b"caf\xe9.abc")
    (folder / name).write_text("X:1\nT:Latin-1 name\nL:1/8\nK:C\nCDEF|\n", encoding="utf-8")


def fifo(folder: Path) -> None:
    os.mkfifo(folder / "pipe.abc")


def outside_link(folder: Path) -> None:
    secret = folder.parent / "secret.abc"
    secret.write_text("X:1\nT:Outside\nL:1/8\nK:C\nCDEF|\n", encoding="utf-8")
    (folder / "link.abc").symlink_to(secret)


# --- the cases ---------------------------------------------------------------------------------------------


def import_case(write: Callable[[Path], None], said: Sequence[str] = ()) -> tuple[Callable, Callable]:
    """Import a folder holding a bad item and two good tunes; the good ones stay, listings keep working."""

    def run(tmp: Path, timeout: float) -> tuple[list[Outcome], str | None]:
        workspace = tmp / "ws"
        folder = folder_with(tmp, "music", write)
        outcomes = [tui_composer(workspace, "corpus", "import", str(folder), "--name", "hostile", timeout=timeout)]
        outcomes.append(tui_composer(workspace, "corpus", "show", "hostile", "--json", timeout=timeout))
        outcomes.append(tui_composer(workspace, "corpus", "list", "--json", timeout=timeout))
        lost = None
        try:
            shown = json.loads(outcomes[1].stdout)
            if shown["pieces"] < 2:
                lost = f"only {shown['pieces']} of the 2 good tunes kept"
            json.loads(outcomes[2].stdout)
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            lost = f"corpus show/list no longer work: {error}"
        if (tmp.parent / "escaped.xml").exists():
            lost = "a zip member was written outside the workspace"
        return outcomes, lost

    def expect(outcomes: list[Outcome]) -> str | None:
        if outcomes[0].status != 0:
            return f"import exited {outcomes[0].status}: {last_line(outcomes[0])}"
        if said and not any(word in outcomes[0].stdout + outcomes[0].stderr for word in said):
            return f"the import did not say {' or '.join(said)!r}"
        return None

    return run, expect


def command_case(
    args: Sequence[str], codes: Sequence[int], said: Sequence[str], prepare: Callable[[Path], list[str]] | None = None
) -> tuple[Callable, Callable]:
    """One command that must end with one of `codes` and say one of `said` (a refusal naming the thing)."""

    def run(tmp: Path, timeout: float) -> tuple[list[Outcome], str | None]:
        workspace = tmp / "ws"
        extra = prepare(tmp) if prepare else []
        outcome = tui_composer(workspace, *[a.format(tmp=tmp) for a in args], *extra, timeout=timeout)
        listing = tui_composer(workspace, "runs", "--json", timeout=timeout)
        lost = None if listing.status == 0 else f"`runs` no longer works: {last_line(listing)}"
        return [outcome, listing], lost

    def expect(outcomes: list[Outcome]) -> str | None:
        outcome = outcomes[0]
        if outcome.status not in codes:
            return f"exited {outcome.status}, expected {codes}: {last_line(outcome)}"
        if said and not any(word in outcome.stdout + outcome.stderr for word in said):
            return f"did not say {' or '.join(said)!r}: {last_line(outcome)}"
        return None

    return run, expect


def tiny_corpus(tmp: Path, text: str = GOOD_TUNES * 3) -> Path:
    folder = tmp / "tiny"
    folder.mkdir(exist_ok=True)
    (folder / "tunes.abc").write_text(text.replace("X:2", "X:3").replace("X:1", "X:4") + "\n" + text, "utf-8")
    return folder


def long_note_case(encoder: str) -> tuple[Callable, Callable]:
    """A 60-byte tune holding a note of 999,999,999 eighths, next to good tunes: read, skipped, bounded."""

    def run(tmp: Path, timeout: float) -> tuple[list[Outcome], str | None]:
        workspace = tmp / "ws"
        folder = tiny_corpus(tmp)
        (folder / "long.abc").write_text(LONG_NOTE_TUNE, encoding="utf-8")
        (folder / "long-playable.abc").write_text(LONG_NOTE_PLAYABLE, encoding="utf-8")
        outcomes = [tui_composer(workspace, "corpus", "import", str(folder), "--name", "long", timeout=timeout)]
        outcomes.append(
            tui_composer(
                workspace,
                "train",
                *("--corpus", "long", "--encoder", encoder, "--model", "char-lstm", "--epochs", "1"),
                *TINY_CHAR_LSTM,
                *("--name", "long-run"),
                timeout=timeout,
            )
        )
        return outcomes, None

    def expect(outcomes: list[Outcome]) -> str | None:
        if outcomes[1].status != 0:
            return f"train exited {outcomes[1].status}: {last_line(outcomes[1])}"
        return None

    return run, expect


def damaged_run_case(file: str, content: bytes) -> tuple[Callable, Callable]:
    """A run folder whose config or status is damaged: listed as damaged, the other run still listed."""

    def run(tmp: Path, timeout: float) -> tuple[list[Outcome], str | None]:
        workspace = tmp / "ws"
        for name in ("intact", "broken"):
            folder = workspace / "runs" / name
            (folder / "checkpoints").mkdir(parents=True)
            config = {"corpus": "oneills", "encoder": "abc", "model": "char-lstm", "epochs": 1, "seed": 0}
            (folder / "config.json").write_text(json.dumps(config))
            (folder / "status.json").write_text(json.dumps({"state": "finished", "epoch": 1}))
        (workspace / "runs" / "broken" / file).write_bytes(content)
        outcomes = [tui_composer(workspace, "runs", "--json", timeout=timeout)]
        outcomes.append(tui_composer(workspace, "runs", timeout=timeout))
        lost = None
        try:
            rows = {row["name"]: row for row in json.loads(outcomes[0].stdout)}
            if "intact" not in rows or "broken" not in rows:
                lost = f"runs listed: {sorted(rows)}"
            elif rows["broken"]["state"] != "damaged":
                lost = f"the broken run shows as {rows['broken']['state']!r}, not damaged"
        except (json.JSONDecodeError, TypeError, KeyError) as error:
            lost = f"`runs --json` is not a listing: {error}"
        return outcomes, lost

    def expect(outcomes: list[Outcome]) -> str | None:
        bad = [o for o in outcomes if o.status != 0]
        return f"exited {bad[0].status}: {last_line(bad[0])}" if bad else None

    return run, expect


def plugin_case(body: str, args: Sequence[str], said: Sequence[str], fails: bool = True) -> tuple[Callable, Callable]:
    """A third-party plugin (a real distribution on the path) that misbehaves; every command still works.

    `fails`: the plugin must be listed as failed or partial (a plugin that only prints loads as ok)."""

    def run(tmp: Path, timeout: float) -> tuple[list[Outcome], str | None]:
        site = tmp / "site"
        info = site / "hostile_plugin-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hostile-plugin\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("[tui_composer]\nhostile = hostile_plugin\n")
        (site / "hostile_plugin.py").write_text(body)
        env = {
            "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "TUI_COMPOSER_PLUGIN_TIMEOUT": "3",
        }
        outcomes = [tui_composer(tmp / "ws", *args, timeout=timeout, env=env)]
        outcomes.append(tui_composer(tmp / "ws", "plugins", "--json", timeout=timeout, env=env))
        lost = None
        try:
            plugins = {p["name"]: p for p in json.loads(outcomes[1].stdout)["plugins"]}
            if fails and plugins.get("hostile", {}).get("status") == "ok":
                lost = "the hostile plugin is listed as ok"
            if plugins.get("abc", {}).get("status") != "ok":
                lost = "a built-in plugin stopped loading"
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            lost = f"`plugins --json` is not JSON any more: {error}"
        return outcomes, lost

    def expect(outcomes: list[Outcome]) -> str | None:
        if outcomes[0].status != 0:
            return f"`{' '.join(args)}` exited {outcomes[0].status}: {last_line(outcomes[0])}"
        if said and not any(word in outcomes[0].stdout + outcomes[0].stderr for word in said):
            return f"did not say {' or '.join(said)!r}"
        return None

    return run, expect


def serve_case() -> tuple[Callable, Callable]:
    """`serve` on localhost: the page without the token, and a websocket from another origin, get 403."""

    def run(tmp: Path, timeout: float) -> tuple[list[Outcome], str | None]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "tui_composer", "--workspace", str(tmp / "ws"), "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        codes = []
        try:
            deadline = time.monotonic() + min(timeout, 30)
            for url, headers in (
                (f"http://127.0.0.1:{port}/", {}),
                (
                    f"http://127.0.0.1:{port}/ws",
                    {
                        "Origin": "http://evil.example",
                        "Upgrade": "websocket",
                        "Connection": "Upgrade",
                        "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    },
                ),
            ):
                while True:
                    try:
                        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as answer:
                            codes.append(answer.status)
                        break
                    except urllib.error.HTTPError as error:
                        codes.append(error.code)
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            codes.append(0)
                            break
                        time.sleep(0.2)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(10)
        outcome = Outcome(0, json.dumps(codes), "", 0.0, 0.0)
        return [outcome], None

    def expect(outcomes: list[Outcome]) -> str | None:
        codes = json.loads(outcomes[0].stdout)
        return None if codes and all(code in (403, 404) for code in codes) else f"answers {codes}, expected 403"

    return run, expect


def last_line(outcome: Outcome) -> str:
    """What the command said last: its error when it failed, else its last line of output."""
    said = outcome.stdout if outcome.status == 0 and outcome.stdout.strip() else (outcome.stderr or outcome.stdout)
    lines = said.strip().splitlines()
    return lines[-1][:200] if lines else "(no output)"


def cases() -> list[Case]:
    found: list[tuple[str, tuple[Callable, Callable]]] = [
        (
            "import: .mxl that unpacks to 1 GiB",
            import_case(lambda f: mxl_bomb(f / "bomb.mxl"), ("unpack", "MiB", "compress")),
        ),
        ("import: .mxl zip slip", import_case(lambda f: zip_slip(f / "slip.mxl"))),
        ("import: MusicXML with an external entity (XXE)", import_case(writer("xxe.xml", XXE))),
        ("import: MusicXML billion laughs", import_case(writer("laughs.xml", LAUGHS))),
        ("import: 50 MB MIDI file", import_case(big_midi, ("MiB", "cap", "limit"))),
        ("import: file named hash#1.abc", import_case(writer("hash#1.abc", "X:1\nT:Hash\nL:1/8\nK:C\nCDEF|\n"))),
        ("import: file name not UTF-8", import_case(non_utf8_name)),
        ("import: UTF-8 with a BOM", import_case(writer("bom.abc", "\ufeffX:1\nT:BOM\nL:1/8\nK:C\nCDEF|\n"))),
        (
            "import: UTF-16 file",
            import_case(writer("utf16.abc", "X:1\nT:Wide\nL:1/8\nK:C\nCDEF|\n".encode("utf-16")), ("UTF-16",)),
        ),
        ("import: a FIFO", import_case(fifo)),
        ("import: symlink out of the folder", import_case(outside_link)),
        (
            "import: empty, binary and truncated files",
            import_case(
                lambda f: (
                    writer("empty.abc", "")(f),
                    writer("bin.abc", b"\x00\x01\x02" * 100)(f),
                    writer("cut.mid", b"MThd\x00\x00")(f),
                )
            ),
        ),
        ("import: 60-byte tune with a 999999999 note", import_case(writer("long.abc", LONG_NOTE_TUNE))),
        ("import: the same note with an L: line", import_case(writer("long.abc", LONG_NOTE_PLAYABLE))),
        *[(f"train {e}: tune with a 999999999 note", long_note_case(e)) for e in ("abc", "midi-events", "piano-roll")],
        (
            "sample -n 1000000",
            command_case(["sample", "oneills-default", "-n", "1000000"], (1, 2), ("1000", "cap", "TUI_COMPOSER_MAX")),
        ),
        (
            "sample --max-length 1000000000",
            command_case(
                ["sample", "oneills-default", "--max-length", "1000000000"], (1, 2), ("cap", "TUI_COMPOSER_MAX")
            ),
        ),
        (
            "sample --temperature nan",
            command_case(["sample", "oneills-default", "--temperature", "nan"], (1, 2), ("temperature",)),
        ),
        ("sample --seed -1", command_case(["sample", "oneills-default", "--seed", "-1"], (1, 2), ("seed",))),
        (
            "sample --out unwritable",
            command_case(
                ["sample", "oneills-default", "-n", "1", "--out", "/proc/version/x"], (1, 2), ("--out", "out")
            ),
        ),
        (
            "train --set learning_rate=nan",
            command_case(
                [
                    "train",
                    "--corpus",
                    "oneills",
                    "--encoder",
                    "abc",
                    "--model",
                    "char-lstm",
                    "--set",
                    "learning_rate=nan",
                ],
                (1, 2),
                ("learning_rate",),
            ),
        ),
        (
            "train --time-limit inf",
            command_case(
                ["train", "--corpus", "oneills", "--encoder", "abc", "--model", "char-lstm", "--time-limit", "inf"],
                (1, 2),
                ("time-limit", "time_limit"),
            ),
        ),
        (
            "train piano-roll low=100 high=20",
            command_case(
                [
                    "train",
                    "--corpus",
                    "oneills",
                    "--encoder",
                    "piano-roll",
                    "--model",
                    "rbm",
                    "--encoder-set",
                    "low=100",
                    "--encoder-set",
                    "high=20",
                ],
                (1, 2),
                ("low",),
            ),
        ),
        (
            "train --name with a newline",
            command_case(
                ["train", "--corpus", "oneills", "--encoder", "abc", "--model", "char-lstm", "--name", "nl\n"],
                (1, 2),
                ("name",),
            ),
        ),
        (
            "check on a FIFO",
            command_case(
                ["check", "{tmp}/pipe.abc"],
                (1, 2),
                ("regular", "FIFO", "not a file"),
                lambda t: (os.mkfifo(t / "pipe.abc"), [])[1],
            ),
        ),
        (
            "check on a file with no tune",
            command_case(
                ["check", "{tmp}/none.abc"],
                (1, 2),
                ("no tune", "no ABC", "tune"),
                lambda t: ((t / "none.abc").write_text("just words\n"), [])[1],
            ),
        ),
        *[
            (f"runs: {file} {label}", damaged_run_case(file, content))
            for file in ("config.json", "status.json")
            for label, content in (
                ("truncated", b'{"corpus": "onei'),
                ("empty", b""),
                ("binary", b"\x00\xff\xfe"),
                ("a list", b"[1,2]"),
                ("wrong type", b'{"epoch": "abc", "state": 3}'),
            )
        ],
        ("runs: config {}", damaged_run_case("config.json", b"{}")),
        ("plugin: SystemExit at import", plugin_case("raise SystemExit(3)\n", ["--help"], ("Usage",))),
        ("plugin: KeyboardInterrupt at import", plugin_case("raise KeyboardInterrupt\n", ["runs", "--json"], ("[",))),
        (
            "plugin: prints at import",
            plugin_case("print('hello from a plugin')\n", ["runs", "--json"], (), fails=False),
        ),
        ("plugin: hangs at import", plugin_case("import time\ntime.sleep(600)\n", ["--version"], ("version",))),
        (
            "plugin: a command named runs",
            plugin_case(
                "import click\nfrom tui_composer.api import hookimpl\n@hookimpl\ndef register_commands(cli):\n"
                "    @cli.command('runs')\n    def runs():\n        print('hijacked')\n",
                ["runs", "--json"],
                ("[",),
            ),
        ),
        ("serve: no token, foreign Origin", serve_case()),
    ]
    return [Case(name, run, expect) for name, (run, expect) in found]


def judge(case: Case, timeout: float) -> Verdict:
    with tempfile.TemporaryDirectory(prefix="hostile-") as folder:
        tmp = Path(folder)
        started = time.monotonic()
        try:
            outcomes, lost = case.run(tmp, timeout)
        except Exception as error:  # noqa: BLE001 - a case that can't even be set up is reported, not fatal
            return Verdict(case.name, "crashed", f"the case itself failed: {error!r}", 0.0, 0.0)
        seconds = time.monotonic() - started
        peak = max((o.peak_mb for o in outcomes), default=0.0)
        if any(o.status is None for o in outcomes):
            return Verdict(case.name, "hung", "killed at the time bound", peak, seconds, outcomes)
        crashed = [o for o in outcomes if o.traceback or (o.status is not None and o.status < 0)]
        if crashed:
            return Verdict(case.name, "crashed", last_line(crashed[0]), peak, seconds, outcomes)
        if lost:
            return Verdict(case.name, "lost", lost, peak, seconds, outcomes)
        problem = case.expect(outcomes)
        if problem:
            return Verdict(case.name, "crashed", problem, peak, seconds, outcomes)
        said = last_line(outcomes[0])
        return Verdict(case.name, "clean", said, peak, seconds, outcomes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds each command may take")
    parser.add_argument("--only", default="", help="run only the cases whose name holds this text")
    parser.add_argument("--verbose", action="store_true", help="print each case's output")
    args = parser.parse_args(argv)
    verdicts = []
    for case in cases():
        if args.only and args.only not in case.name:
            continue
        verdict = judge(case, args.timeout)
        verdicts.append(verdict)
        print(
            f"{verdict.kind:8} {verdict.peak_mb:7.0f} MB {verdict.seconds:6.1f} s  {case.name}: {verdict.detail}",
            flush=True,
        )
        if args.verbose:
            for outcome in verdict.outcomes:
                print(f"    exit {outcome.status}; stdout {outcome.stdout[-300:]!r}; stderr {outcome.stderr[-300:]!r}")
    counts = {kind: sum(v.kind == kind for v in verdicts) for kind in ("clean", "crashed", "hung", "lost")}
    worst = max(verdicts, key=lambda v: v.peak_mb, default=None)
    print(
        f"cases tried {len(verdicts)}, handled cleanly {counts['clean']}, crashed {counts['crashed']}, "
        f"hung {counts['hung']}, items lost {counts['lost']}"
    )
    if worst is not None:
        print(f"peak RSS of the worst case: {worst.peak_mb:.0f} MB ({worst.case}); target under {MEMORY_TARGET_MB} MB")
    return 0 if counts["clean"] == len(verdicts) and (worst is None or worst.peak_mb < MEMORY_TARGET_MB) else 1


if __name__ == "__main__":
    sys.exit(main())
