"""Fixtures of the gateway tests: real ``redis-server`` processes on free loopback ports.

One server lives for the whole test session (``redis_server``); tests that stop a server,
need a password or TLS start a throwaway one of their own. A server is ready when PING
answers; nothing waits a fixed time. ``redis-server`` is required, not optional: .ci/run
installs it (Debian package ``redis-server``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import pytest_asyncio
import redis
import redis.asyncio

from gateway.settings import GatewaySettings
from tests import factories
from tests.integration.processes import free_port, poll_until
from tests.integration.servers import Pki, make_pki

STOP_DEADLINE_S = 5.0


@dataclass
class RedisServer:
    """A running ``redis-server`` and how to reach it."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    password: str | None = None
    pki: Pki | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"{'rediss' if self.pki else 'redis'}://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.asyncio.Redis:
        """A plain client (no retries) to inspect keys behind a store's back."""
        return redis.asyncio.Redis(host="127.0.0.1", port=self.port, password=self.password)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start_redis_server(folder: Path, *, password: str | None = None, pki: Pki | None = None) -> RedisServer:
    """``redis-server`` on a free port of 127.0.0.1, without persistence; TLS-only with ``pki``."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail("redis-server is not installed; install it with 'apt-get install -y redis-server' "
                    "(.ci/run does this on a bare machine)", pytrace=False)
    port = free_port()
    argv = [executable, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(folder), "--daemonize", "no", "--logfile", ""]
    if password:
        argv += ["--requirepass", password]
    if pki:
        argv += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(pki.cert_file),
                 "--tls-key-file", str(pki.key_file), "--tls-auth-clients", "no"]
    log_path = folder / f"redis-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,  # noqa: S603 - fixed argv
                                   stderr=subprocess.STDOUT)
    server = RedisServer(port=port, process=process, log_path=log_path, password=password, pki=pki)
    try:
        _wait_for_ping(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_ping(server: RedisServer) -> None:
    tls = {"ssl": True, "ssl_ca_certs": str(server.pki.ca_file)} if server.pki else {}

    def answers() -> bool:
        with redis.Redis(host="127.0.0.1", port=server.port, password=server.password,
                         socket_timeout=0.5, socket_connect_timeout=0.5, **tls) as client:
            return bool(client.ping())

    poll_until(answers, server.process, "redis-server", server.log, errors=(redis.RedisError,))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the test session; tests keep apart through ``key_prefix``."""
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, which the test may stop."""
    server = start_redis_server(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA made for this run and a certificate for 127.0.0.1 / localhost signed by it."""
    return make_pki(tmp_path_factory.mktemp("redis-pki"))


@pytest_asyncio.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of the session's server, closed after the test."""
    client = redis_server.client()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test:{uuid.uuid4().hex}:"


def gateway_settings(folder: Path, routes: list[dict[str, object]], backend_url: str,
                     secret: str) -> GatewaySettings:
    """The gateway's settings for ``routes`` (written as ``folder/xs-app.json``) to one destination
    ``backend`` at ``backend_url``, with the factories' bindings; no proxy in front."""
    (folder / "xs-app.json").write_text(json.dumps({"authenticationMethod": "route", "routes": routes}),
                                        encoding="utf-8")
    return GatewaySettings.from_env({
        "VCAP_SERVICES": json.dumps(factories.vcap_services()), "SESSION_SECRET": secret,
        "XS_APP_FILE": str(folder / "xs-app.json"), "TRUSTED_PROXY_HOPS": "0",
        "destinations": json.dumps([{"name": "backend", "url": backend_url}])})
