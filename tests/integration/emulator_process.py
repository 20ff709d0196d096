"""The local emulator (IAS, XSUAA, CPI) as a real process, and the app under gunicorn bound to it.

``running_emulator`` starts ``python -m emulator run`` on free loopback ports and waits for
its one JSON line on stdout; ``running_app`` starts gunicorn exactly as
``tests/integration/conftest.py`` does, with ``VCAP_SERVICES`` the bindings the emulator
wrote and ``REQUESTS_CA_BUNDLE`` its CA: certificate verification stays on. Both always
stop their process. ``deploy_copy`` copies the deploy files and the users file into a folder
so that a test can break exactly one of them, as a developer would on BTP.
"""

from __future__ import annotations

import json
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.processes import (
    READY_DEADLINE_S,
    ROOT,
    RunningApp,
    clean_environ,
    free_port,
    running_gunicorn,
    stop,
)

DEPLOY_FILES = ("xs-security.json", "config-cpi.json", "config-ias.json")
USERS_FILE = ROOT / "emulator" / "users.json"


@dataclass
class EmulatorProcess:
    """A running ``python -m emulator run`` and an HTTPS client that trusts only its CA."""

    process: subprocess.Popen[bytes]
    ready: dict[str, Any]
    stderr_path: Path
    session: requests.Session

    @property
    def https(self) -> str:
        """The XSUAA, CPI and admin origin (https://localhost:<port>)."""
        return str(self.ready["https"])

    @property
    def ca_file(self) -> Path:
        return Path(self.ready["ca_file"])

    @property
    def vcap_services(self) -> dict[str, Any]:
        return json.loads(Path(self.ready["vcap_services_file"]).read_text())

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def admin(self, method: str, path: str, body: object = None) -> requests.Response:
        response = self.session.request(method, f"{self.https}/_emu{path}", json=body, timeout=10)
        assert response.status_code == 200, f"{method} /_emu{path}: {response.status_code} {response.text}"
        return response

    def mint(self, user: str, kind: str) -> str:
        """A token as if ``user`` had logged in: an IAS ID token or an XSUAA user token."""
        return self.admin("POST", "/token", {"user": user, "kind": kind}).text

    def fault(self, endpoint: str, **spec: object) -> None:
        self.admin("POST", "/faults", {"endpoint": endpoint, **spec})

    def clear_faults(self) -> None:
        self.admin("DELETE", "/faults")

    def rotate_keys(self, service: str, overlap: float = 300) -> dict[str, Any]:
        return self.admin("POST", "/keys/rotate", {"service": service, "overlap": overlap}).json()

    def requests_log(self) -> list[dict[str, Any]]:
        """What the emulated services were asked and answered, oldest first (admin calls excluded)."""
        return self.admin("GET", "/requests").json()["requests"]


def deploy_copy(folder: Path, edits: dict[str, Callable[[dict[str, Any]], None]] | None = None) -> Path:
    """The three deploy files and the users file copied into ``folder``, each edited in place by
    ``edits[file name]`` (``users.json`` for the users file). Returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in DEPLOY_FILES:
        shutil.copyfile(ROOT / name, folder / name)
    shutil.copyfile(USERS_FILE, folder / "users.json")
    for name, edit in (edits or {}).items():
        path = folder / name
        assert path.exists(), f"no deploy file {name}"
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data, indent=1))
    return folder


@contextmanager
def running_emulator(workspace: Path, *, root: Path = ROOT, users: Path = USERS_FILE,
                     x509: bool = False) -> Iterator[EmulatorProcess]:
    """``python -m emulator run`` with the deploy files of ``root``; stopped on exit."""
    workspace.mkdir(parents=True, exist_ok=True)
    stderr_path = workspace / "emulator-stderr.log"
    argv = [sys.executable, "-m", "emulator", "run", "--root", str(root), "--users", str(users),
            "--workspace", str(workspace), "--https-port", "0", "--http-port", "0"]
    if x509:
        argv.append("--x509")
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - a fixed argv of this interpreter
            argv, cwd=ROOT, env=clean_environ(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=stderr, start_new_session=True)
    session = requests.Session()
    session.trust_env = False  # loopback only: no proxy, no netrc, no CA bundle from the environment
    try:
        ready = _read_ready_line(process, stderr_path)
        session.verify = ready["ca_file"]
        yield EmulatorProcess(process=process, ready=ready, stderr_path=stderr_path, session=session)
    finally:
        session.close()
        stop(process, signal.SIGTERM)  # the emulator stops its servers on SIGTERM
        if process.stdout is not None:
            process.stdout.close()


@contextmanager
def running_app(emulator: EmulatorProcess, log_path: Path, **settings: str) -> Iterator[RunningApp]:
    """The app under gunicorn, bound to ``emulator`` and trusting its CA."""
    env = clean_environ(
        PORT=str(free_port()), VCAP_SERVICES=json.dumps(emulator.vcap_services),
        REQUESTS_CA_BUNDLE=str(emulator.ca_file), LOG_FORMAT="json", WEB_CONCURRENCY="1",
        GUNICORN_THREADS="4", **settings)
    with running_gunicorn(env, log_path) as app:
        yield app


def _read_ready_line(process: subprocess.Popen[bytes], stderr_path: Path) -> dict[str, Any]:
    """The emulator's readiness JSON: its first stdout line, waited for up to the deadline."""
    assert process.stdout is not None
    deadline = time.monotonic() + READY_DEADLINE_S
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"the emulator printed no ready line within {READY_DEADLINE_S} s:\n"
                        f"{stderr_path.read_text(errors='replace')}")
        readable, _, _ = select.select([process.stdout], [], [], min(remaining, 0.5))
        if readable:
            line = process.stdout.readline()
            if line:
                ready = json.loads(line)
                assert ready.get("ready") is True, line
                return ready
        if process.poll() is not None:
            pytest.fail(f"the emulator exited with {process.returncode} before it was ready:\n"
                        f"{stderr_path.read_text(errors='replace')}")
