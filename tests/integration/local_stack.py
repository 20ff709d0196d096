"""``python -m emulator.local_run`` (what ``./dev run`` starts) as a test fixture: free ports, a
private workspace, readiness by its banner's last line, and a Ctrl-C that leaves no child behind.

Shared by ``tests/integration/test_local_run.py`` (which checks the banner and the shutdown) and
``tests/browser`` (which drives a real browser against the running scenario).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from emulator.local_run import READY_LINE
from tests.integration.processes import ROOT, clean_environ, free_port

__all__ = ["READY_LINE", "START_DEADLINE_S", "STOP_DEADLINE_S", "EmulatorAdmin", "LocalStack", "Output",
           "alive", "descendants", "environ", "local_stack", "started_local_run"]

START_DEADLINE_S = 90.0
STOP_DEADLINE_S = 30.0


class Output:
    """The process's merged stdout and stderr, read line by line as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._process = process
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, wanted: str, deadline_s: float) -> None:
        """Block until the line ``wanted`` was printed; fail on the deadline or the process's end."""
        deadline = time.monotonic() + deadline_s
        while wanted not in self.lines:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {wanted!r} within {deadline_s} s:\n" + "\n".join(self.lines))
            if line is None:
                pytest.fail(f"the process ended (status {self._process.wait()}) before {wanted!r}:\n"
                            + "\n".join(self.lines))
            self.lines.append(line)

    def close(self) -> None:
        """After the process ended: the reader reaches the end of the pipe, then the pipe closes."""
        self._reader.join(timeout=STOP_DEADLINE_S)
        assert self._process.stdout is not None
        self._process.stdout.close()

    def rest(self) -> str:
        """Everything printed, once the process has ended (it waits for the end of the pipe)."""
        while (line := self._queue.get(timeout=STOP_DEADLINE_S)) is not None:
            self.lines.append(line)
        return "\n".join(self.lines)


def environ(workspace: Path, **extra: str) -> dict[str, str]:
    """A clean environment with four distinct free ports and ``workspace`` for the emulator, plus
    ``extra`` (e.g. ``SESSION_TIMEOUT``: ``./dev run`` passes its environment on)."""
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    https, http, app, gateway = sorted(ports)
    return clean_environ(EMULATOR_HTTPS_PORT=str(https), EMULATOR_HTTP_PORT=str(http), APP_PORT=str(app),
                         GATEWAY_PORT=str(gateway), EMULATOR_WORKSPACE=str(workspace), **extra)


def descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid``, with its command line (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                cmdline = (Path("/proc") / str(child) / "cmdline").read_bytes()
            except OSError:
                continue
            found[child] = cmdline.replace(b"\0", b" ").decode(errors="replace")
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie has ended: only its parent's wait is missing)."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextmanager
def started_local_run(workspace: Path, **extra: str) -> Iterator[tuple[subprocess.Popen[str], Output,
                                                                       dict[str, str]]]:
    """``python -m emulator.local_run`` on free ports, not yet waited for; on exit Ctrl-C (SIGINT)
    and SIGKILL for any child still alive, so that no gunicorn worker or emulator outlives a test.

    The children are listed just before the SIGINT: afterwards they would be orphans that
    ``descendants`` can no longer find.
    """
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the child processes")
    env = environ(workspace, **extra)
    process = subprocess.Popen(  # noqa: S603 - a fixed argv of this interpreter
        [sys.executable, "-m", "emulator.local_run"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(process)
    started: dict[int, str] = {}
    try:
        yield process, output, env
    finally:
        if process.poll() is None:
            started = descendants(process.pid)
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        output.close()
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


class EmulatorAdmin:
    """The emulator's admin API (``emulator/admin.py``, ``/_emu``) over HTTPS, verified against
    the workspace's CA: faults, key rotation, token lifetimes, claim overrides, minted tokens."""

    def __init__(self, origin: str, ca_file: Path) -> None:
        self.base = origin + "/_emu"
        self._http = requests.Session()
        self._http.trust_env = False  # loopback: no proxy, no netrc
        self._http.verify = str(ca_file)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """``method`` on ``/_emu<path>`` with a JSON ``body``; the JSON answer (asserts a 200)."""
        answer = self._http.request(method, self.base + path, json=body, timeout=10)
        assert answer.status_code == 200, f"{method} /_emu{path}: {answer.status_code} {answer.text}"
        return answer.json()

    def add_fault(self, endpoint: str, **spec: Any) -> list[dict[str, Any]]:
        """Queue a fault (``status``, ``delay``, ``json``, ``body``, ``count``...) for ``endpoint``,
        e.g. ``xsuaa.token``, ``ias.authorize``, ``cpi.iflow`` (emulator/faults.py); the active ones."""
        return self.call("POST", "/faults", {"endpoint": endpoint, **spec})["faults"]

    def clear_faults(self) -> None:
        self.call("DELETE", "/faults")

    def token(self, user: str = "jane", kind: str = "ias") -> str:
        """A token as if ``user`` had logged in (``kind`` ``ias`` or ``xsuaa``)."""
        answer = self._http.post(self.base + "/token", json={"user": user, "kind": kind}, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.text

    def close(self) -> None:
        self._http.close()


@dataclass(frozen=True)
class LocalStack:
    """The running scenario: where a browser goes, whom it must trust, and the emulator's controls."""

    #: http://localhost:<GATEWAY_PORT>, what a developer opens
    gateway: str
    #: https://localhost:<EMULATOR_HTTPS_PORT>: XSUAA (and its login page), CPI, the admin API
    emulator: str
    #: the workspace's CA, which signed the emulator's server certificate
    ca_file: Path
    admin: EmulatorAdmin
    env: dict[str, str]
    output: Output


@contextmanager
def local_stack(workspace: Path, **extra: str) -> Iterator[LocalStack]:
    """The whole ``./dev run`` scenario, ready (its banner ended), stopped on exit; ``extra``
    variables go into its environment."""
    with started_local_run(workspace, **extra) as (_, output, env):
        output.until(READY_LINE, START_DEADLINE_S)
        banner = "\n".join(output.lines)
        # The CA as the banner names it (the curl line's --cacert), not as we guess it.
        ca_file = Path(re.search(r"--cacert (\S+)", banner)[1])  # type: ignore[index]
        emulator = f"https://localhost:{env['EMULATOR_HTTPS_PORT']}"
        admin = EmulatorAdmin(emulator, ca_file)
        try:
            yield LocalStack(gateway=f"http://localhost:{env['GATEWAY_PORT']}", emulator=emulator,
                             ca_file=ca_file, admin=admin, env=env, output=output)
        finally:
            admin.close()
