"""Running ``tradebot sandbox`` as a subprocess, as a newcomer does: free ports, a temporary data
directory, the banner read from stdout, and SIGINT at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.ports import free_port
from tests.support.waiting import wait_for

TRADEBOT = str(Path(sys.executable).parent / "tradebot")
START_TIMEOUT = 90.0  # a deadline, not a wait: six agents on two cores took 51 s to the banner
STOP_TIMEOUT = 20.0


class Output:
    """The sandbox's stdout, read line by line on a thread (a pipe must be drained)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


@dataclass
class Running:
    proc: subprocess.Popen[str]
    url: str  # the engine's base URL (the page is at /sandbox)
    output: Output
    stderr_path: Path

    @property
    def banner(self) -> str:
        return self.output.text

    def get(self, path: str, timeout: float = 5.0) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return json.loads(resp.read())

    def stop(self) -> tuple[int, str]:
        """SIGINT (Ctrl-C), then the exit status and everything the sandbox printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the sandbox did not stop within {STOP_TIMEOUT} s after SIGINT") from None
        self.output.join(5.0)
        return self.proc.returncode, self.output.text

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()


PORT_TAKEN = "Address already in use"
START_ATTEMPTS = 3


def _start(tmp_path: Path, args: tuple[str, ...], signal_every: str) -> Running:
    """Start the sandbox on a free port and wait for its banner (or its exit)."""
    port = free_port()
    stderr_path = tmp_path / "sandbox.stderr"
    env = {**os.environ, "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
    command = [
        TRADEBOT, "sandbox", "--port", str(port), "--data-dir", str(tmp_path / "data"),
        "--signal-every", signal_every, *args,
    ]  # fmt: skip
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=tmp_path
        )
    running = Running(proc, f"http://127.0.0.1:{port}", Output(proc), stderr_path)
    wait_for(
        lambda: "Press Ctrl-C" in running.banner or proc.poll() is not None,
        START_TIMEOUT,
        "the sandbox's banner",
    )
    return running


@contextmanager
def sandbox_process(tmp_path: Path, *args: str, signal_every: str = "3") -> Iterator[Running]:
    """``tradebot sandbox`` on a free port. The port is picked before the process binds it, so
    another process on the machine may take it first: then (and only then) start again."""
    for _ in range(START_ATTEMPTS):
        running = _start(tmp_path, args, signal_every)
        if running.proc.poll() is None or PORT_TAKEN not in running.stderr:
            break
    proc = running.proc
    try:
        if proc.poll() is not None:
            raise AssertionError(
                f"the sandbox did not start (exit {proc.returncode}):\n{running.banner}\n{running.stderr[-4000:]}"
            )
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
