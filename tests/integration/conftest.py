"""The app under a real gunicorn, talking HTTPS to the local stand-ins of XSUAA and CPI.

One CA and one upstream server per test session; one gunicorn process per session whose
stderr goes to a file the tests read. The process trusts the local server only through
``REQUESTS_CA_BUNDLE`` (the test CA): certificate verification stays on.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import factories
from tests.integration.servers import TOKEN_PATH, Pki, Upstream, make_pki

ROOT = Path(__file__).resolve().parents[2]
READY_DEADLINE_S = 20.0
POLL_INTERVAL_S = 0.05
#: Variables that must not reach the app from the outer environment: bindings, app settings,
#: other trusted CAs (the test CA must be the only one), gunicorn options and proxies.
_STRIPPED_PREFIXES = ("VCAP_", "CF_", "IFLOW_", "CPI_", "REQUIRED_SCOPE", "LOG_", "PORT",
                      "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_", "WEB_CONCURRENCY",
                      "GUNICORN_")
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


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def upstream_server(pki: Pki) -> Iterator[Upstream]:
    server = Upstream(client_id=factories.CPI_CLIENT_ID, client_secret=factories.CPI_SECRET,
                      zone_id=factories.ZONE_ID)
    server.start(pki)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def upstream(upstream_server: Upstream) -> Upstream:
    """The upstream server in its normal mode, with no calls recorded yet."""
    upstream_server.reset()
    return upstream_server


def vcap_services(upstream: Upstream) -> dict[str, Any]:
    """The xsuaa and it-rt bindings as Cloud Foundry writes them, pointing at the local server."""
    services = factories.vcap_services(with_ias=False)
    xsuaa = services["xsuaa"][0]["credentials"]
    # The app derives https://<uaadomain>/token_keys?zid=<zid>; the zone must be the tokens' zid.
    xsuaa.update(uaadomain=f"localhost:{upstream.port}", url=upstream.origin, zoneid=factories.ZONE_ID,
                 identityzoneid=factories.ZONE_ID)
    services["it-rt"][0]["credentials"]["oauth"].update(url=upstream.origin,
                                                        tokenurl=upstream.origin + TOKEN_PATH)
    return services


def app_environ(upstream: Upstream, pki: Pki, port: int) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(_STRIPPED_PREFIXES) and name.lower() not in _PROXY_VARS}
    env.update(
        PORT=str(port),
        VCAP_SERVICES=json.dumps(vcap_services(upstream)),
        REQUESTS_CA_BUNDLE=str(pki.ca_file),
        LOG_FORMAT="json",
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="4",
        NO_PROXY="localhost,127.0.0.1",
        PYTHONUNBUFFERED="1",
    )
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def gunicorn_app(upstream_server: Upstream, pki: Pki,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("gunicorn") / "stderr.log"
    session = requests.Session()
    session.trust_env = False  # plain http to loopback: no proxy, no netrc
    with log_path.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - a fixed argv of this interpreter
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"],
            cwd=ROOT, env=app_environ(upstream_server, pki, port), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    app = RunningApp(base_url=f"http://127.0.0.1:{port}", process=process, log_path=log_path,
                     session=session)
    try:
        _wait_until_ready(app)
        yield app
    finally:
        # SIGINT is gunicorn's quick shutdown (SIGTERM waits for its arbiter's next tick).
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the worker too, not only the arbiter
            process.wait(timeout=5)
        # Closed after the signal: closing a keep-alive connection first can wake a gthread
        # worker into submit() just as it handles the quit, and deadlock it (gunicorn 27.0.1).
        session.close()


def _wait_until_ready(app: RunningApp) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    while True:
        if app.process.poll() is not None:
            pytest.fail(f"gunicorn exited with {app.process.returncode} before it was ready:\n{app.log()}")
        try:
            with app.get("/health", timeout=1) as response:
                if response.status_code == 200:
                    return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"gunicorn did not answer /health within {READY_DEADLINE_S} s:\n{app.log()}")
        time.sleep(POLL_INTERVAL_S)
