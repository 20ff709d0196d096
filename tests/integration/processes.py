"""The app under a real gunicorn, for integration tests: a clean environment, a free port,
readiness by polling /health, and a shutdown that leaves no worker behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
READY_DEADLINE_S = 20.0
POLL_INTERVAL_S = 0.05
#: Variables that must not reach the app from the outer environment: bindings, app settings,
#: other trusted CAs (the test CA must be the only one), gunicorn options and proxies.
_STRIPPED_PREFIXES = ("VCAP_", "CF_", "IFLOW_", "CPI_", "REQUIRED_SCOPE", "LOG_", "PORT",
                      "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_", "WEB_CONCURRENCY",
                      "GUNICORN_", "SESSION_", "JWT_REFRESH", "XS_", "TRUSTED_PROXY_HOPS", "destinations",
                      "EMULATOR_", "APP_PORT", "GATEWAY_PORT")
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@dataclass
class RunningApp:
    """The gunicorn process and a plain-http client for it."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    session: requests.Session
    #: every user token a test sent, for the check that none reaches the log
    sent_tokens: list[str] = field(default_factory=list)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 15)
        kwargs.setdefault("allow_redirects", False)
        return self.session.get(self.base_url + path, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def clean_environ(**extra: str) -> dict[str, str]:
    """This environment without bindings, app settings, other CAs, gunicorn options or
    proxies, plus ``extra``."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(_STRIPPED_PREFIXES) and name.lower() not in _PROXY_VARS}
    env.update(NO_PROXY="localhost,127.0.0.1", PYTHONUNBUFFERED="1", **extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_gunicorn(env: dict[str, str], log_path: Path) -> Iterator[RunningApp]:
    """``gunicorn --config gunicorn.conf.py 'app:create_app()'`` with ``env`` (which names
    the PORT); ready when /health answers; stopped with its workers on exit."""
    port = int(env["PORT"])
    session = requests.Session()
    session.trust_env = False  # plain http to loopback: no proxy, no netrc
    with log_path.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - a fixed argv of this interpreter
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True)  # its own process group: see stop()
    app = RunningApp(base_url=f"http://127.0.0.1:{port}", process=process, log_path=log_path,
                     session=session)
    try:
        wait_until_ready(app)
        yield app
    finally:
        # SIGINT is gunicorn's quick shutdown (SIGTERM waits for its arbiter's next tick). It is
        # sent while the client's keep-alive connection is still open and idle: closing it first
        # wakes the worker, and a SIGQUIT from the arbiter that lands inside the worker's
        # ThreadPoolExecutor.submit() deadlocks it (gunicorn 27.0.1 gthread handle_quit calls
        # tpool.shutdown(), which takes the lock submit() holds).
        stop(process, signal.SIGINT)
        session.close()


def stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Ask ``process`` to stop; after 10 s kill its whole process group (it leads one of its
    own), so that no gunicorn worker outlives a killed arbiter."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def wait_until_ready(app: RunningApp) -> None:
    def healthy() -> bool:
        with app.get("/health", timeout=1) as response:
            return response.status_code == 200

    poll_until(healthy, app.process, "gunicorn", app.log, errors=(requests.ConnectionError,))


def poll_until(ready: Callable[[], bool], process: subprocess.Popen[Any], what: str, log: Callable[[], str],
               *, errors: tuple[type[BaseException], ...] = ()) -> None:
    """Poll ``ready`` until it says so; fail at once when ``process`` exits, or at the deadline."""
    deadline = time.monotonic() + READY_DEADLINE_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode} before it was ready:\n{log()}")
        try:
            if ready():
                return
        except errors:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} was not ready within {READY_DEADLINE_S} s:\n{log()}")
        time.sleep(POLL_INTERVAL_S)
