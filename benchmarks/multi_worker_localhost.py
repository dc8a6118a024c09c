"""The README's two-host launch, on localhost: two `tui-composer train --strategy multi-worker` processes.

Each worker gets its own workspace (as two hosts would), the same tiny ABC corpus and the same command;
TF_CONFIG lists both on 127.0.0.1. Prints each worker's output, its epoch losses and which run folder
got the model (only the chief's should). Usage: python benchmarks/multi_worker_localhost.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TUNES = [
    "X:{n}\nT:Jig {n}\nM:6/8\nL:1/8\nK:G\nGAB cBA|GAB c2d|edc BAG|A3 G3|]\n",
    "X:{n}\nT:Reel {n}\nM:4/4\nL:1/8\nK:D\nDFAd fdAF|GBdg fdAF|DFAd fdAF|E2F2 D4|]\n",
    "X:{n}\nT:Air {n}\nM:3/4\nL:1/4\nK:C\nC E G|c2 B|A G F|E3|]\n",
    "X:{n}\nT:Jig {n}\nM:6/8\nL:1/8\nK:D\nd2A FAd|f2d A2F|GBG FAF|E3 D3|]\n",
    "X:{n}\nT:Polka {n}\nM:2/4\nL:1/8\nK:G\nGB dB|GB dB|c2 A2|B2 G2|]\n",
    "X:{n}\nT:Reel {n}\nM:4/4\nL:1/8\nK:A\nA2cA eAcA|B2dB fBdB|A2cA eAcA|E2G2 A4|]\n",
]
CLI = [sys.executable, "-c", "from tui_composer.cli.app import main; main()"]
TRAIN = [
    "train", "--corpus", "tiny", "--encoder", "abc", "--model", "char-lstm", "--epochs", "2", "--seed", "1",
    "--set", "streams=4", "--set", "units=16", "--set", "layers=1", "--set", "steps=16", "--name", "mw",
    "--strategy", "multi-worker",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="multi-worker-"))
    source = root / "tunes.abc"
    source.write_text("\n".join(t.format(n=i + 1) for i, t in enumerate(TUNES * 2)), encoding="utf-8")
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    processes = []
    started = time.monotonic()
    for index in range(2):
        workspace = root / f"worker-{index}"
        subprocess.run(
            [*CLI, "--workspace", str(workspace), "corpus", "import", str(source), "--name", "tiny"], check=True
        )
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(config), TF_CPP_MIN_LOG_LEVEL="2")
        print(f"worker {index}: TF_CONFIG={json.dumps(config)}")
        command = [*CLI, "--workspace", str(workspace), *TRAIN]
        processes.append(
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    for index, process in enumerate(processes):
        output, _ = process.communicate(timeout=600)
        lines = [line for line in output.splitlines() if not line.startswith(("I0000", "W0000", "E0000", "WARNING"))]
        print(f"--- worker {index} (exit {process.returncode})")
        print("\n".join(lines[-8:]))
        run = root / f"worker-{index}" / "runs" / "mw"
        print(f"model.keras written: {(run / 'model.keras').is_file()}")
    print(f"two-worker training took {time.monotonic() - started:.1f} s (workspaces under {root})")


if __name__ == "__main__":
    main()
