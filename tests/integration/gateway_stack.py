"""One gateway on real sockets for a test: the emulator (module-scoped) as its IdPs, an echo
upstream as its destination, the shipped routes plus a few test routes. The fixtures are
made visible to tests/integration through its conftest; ``await start_gateway(VAR=value)``
starts one with those settings, in the test's loop, stopped after the test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from yarl import URL

from gateway.app import create_app
from gateway.sessions import COOKIE_NAME, MemoryStore, SessionStore
from gateway.settings import GatewaySettings
from tests.emulator.conftest import RunningEmulator, start_emulator
from tests.integration.gateway_upstreams import EchoUpstream
from tests.integration.processes import free_port

__all__ = ["SECRET", "Stack", "StartGateway", "echo", "echo_server", "emulator", "gateway_port", "given",
           "routes_file", "session_cookie", "start_gateway"]

SECRET = "behaviour-test-session-secret-0123456789abcdefgh"  # 48 characters


@dataclass
class Stack:
    emulator: RunningEmulator
    echo: EchoUpstream
    gateway: str  # origin


StartGateway = Callable[..., Awaitable[Stack]]


@pytest.fixture(scope="module")
def gateway_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory, gateway_port: int) -> Iterator[RunningEmulator]:
    running = start_emulator(tmp_path_factory.mktemp("behaviour") / "emulator",
                             local_origins=(f"http://localhost:{gateway_port}",))
    try:
        yield running
    finally:
        running.servers.stop()


@pytest.fixture(scope="module")
def echo_server() -> Iterator[EchoUpstream]:
    server = EchoUpstream().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def echo(echo_server: EchoUpstream) -> EchoUpstream:
    echo_server.seen.clear()
    return echo_server


@pytest.fixture(scope="module")
def routes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped routes, one that needs a scope nobody has, and a prefix route (``^/homepage$``
    matches no query: approuter matches ``source`` against the path and query)."""
    shipped = json.loads((Path(__file__).resolve().parents[2] / "gateway" / "xs-app.json").read_text())
    shipped["routes"][:0] = [
        {"source": "^/admin$", "destination": "frontapp", "authenticationType": "xsuaa",
         "scope": "$XSAPPNAME.Admin"},
        {"source": "^/app/", "destination": "frontapp", "authenticationType": "ias"}]
    path = tmp_path_factory.mktemp("routes") / "xs-app.json"
    path.write_text(json.dumps(shipped), encoding="utf-8")
    return path


@pytest_asyncio.fixture
async def start_gateway(emulator: RunningEmulator, echo: EchoUpstream, routes_file: Path, gateway_port: int,
                        monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StartGateway]:
    """``await start_gateway(store=..., VAR=value)``: a gateway with these settings, stopped after."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.pki.ca_file))  # the gateway trusts the CA
    runners: list[web.AppRunner] = []

    async def start(store: SessionStore | None = None, **env: str) -> Stack:
        settings = GatewaySettings.from_env({
            "VCAP_SERVICES": emulator.vcap_services, "PORT": str(gateway_port),
            "XS_APP_FILE": str(routes_file), "SESSION_SECRET": SECRET, "TRUSTED_PROXY_HOPS": "0",
            "destinations": json.dumps([{"name": "frontapp", "url": echo.origin, "forwardAuthToken": True}]),
            **env})
        runner = web.AppRunner(create_app(settings, store=store))
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", gateway_port).start()
        return Stack(emulator, echo, f"http://localhost:{gateway_port}")

    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()


async def given(store: MemoryStore) -> MemoryStore:
    """``store`` as it is (create_app once ignored an empty one; see
    test_create_app_uses_the_store_it_is_given)."""
    return store


def session_cookie(http: aiohttp.ClientSession, stack: Stack) -> str:
    return http.cookie_jar.filter_cookies(URL(stack.gateway))[COOKIE_NAME].value
