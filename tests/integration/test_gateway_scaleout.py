"""Two gateway processes (``python -m gateway``) sharing one real redis-server, behind a
round-robin proxy that gives the browser one origin: a login made through one instance is a
session on the other, survives a kill and restart of an instance, and a logout through one
ends it on both. The destination is an echo upstream, so the forwarded request is visible.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import redis
import requests
from yarl import URL

from gateway.sessions import COOKIE_NAME
from tests.emulator.conftest import RunningEmulator, start_emulator
from tests.gateway.conftest import RedisServer, start_redis_server
from tests.integration.gateway_browser import browser, login, logout
from tests.integration.gateway_upstreams import EchoUpstream, RoundRobinProxy, headers_of
from tests.integration.processes import ROOT, clean_environ, free_port, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SECRET = "scaleout-test-session-secret-shared-0123456789ab"  # 48 characters, the same for both
SESSION_PREFIX = "frontrouter:session:"
STOP_DEADLINE_S = 10.0
XHR = {"X-Requested-With": "XMLHttpRequest", "Accept": "application/json"}
#: Settings of the outer environment that must not reach the gateway processes.
_GATEWAY_VARIABLES = ("destinations", "SESSION_TIMEOUT", "JWT_REFRESH", "SESSION_STORE_URL", "SESSION_SECRET",
                      "TRUSTED_PROXY_HOPS", "XS_APP_FILE", "XS_BIND_ADDRESS")


@dataclass
class GatewayProcess:
    """One ``python -m gateway`` on ``port``; ``start`` waits until /ready answers 200."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - a fixed argv of this interpreter
                [sys.executable, "-m", "gateway"], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_until_ready(self) -> None:
        """Poll /ready (the session store answers too); fail with the log if it never does."""
        assert self.process is not None
        with requests.Session() as http:
            http.trust_env = False

            def ready() -> bool:
                with http.get(self.origin + "/ready", timeout=1) as answer:
                    return answer.status_code == 200

            poll_until(ready, self.process, f"gateway {self.name}", self.log,
                       errors=(requests.ConnectionError,))

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_DEADLINE_S)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@dataclass
class Stack:
    emulator: RunningEmulator
    redis: RedisServer
    echo: EchoUpstream
    proxy: RoundRobinProxy
    a: GatewayProcess
    b: GatewayProcess
    gateway: str  # the public origin: the proxy

    def pin(self, instance: GatewayProcess | None) -> None:
        self.proxy.pin = None if instance is None else instance.port


@pytest.fixture(scope="module")
def stack_parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("scaleout")
    public_port = free_port()
    public = f"http://localhost:{public_port}"
    emulator = start_emulator(folder / "emulator", local_origins=(public,))
    redis_server = start_redis_server(folder)
    echo = EchoUpstream().start()
    instances: list[GatewayProcess] = []
    proxy: RoundRobinProxy | None = None
    try:
        env = {name: value for name, value in clean_environ().items() if name not in _GATEWAY_VARIABLES}
        env.update(
            VCAP_SERVICES=emulator.vcap_services, REQUESTS_CA_BUNDLE=str(emulator.pki.ca_file),
            SESSION_STORE_URL=redis_server.url, SESSION_SECRET=SECRET, TRUSTED_PROXY_HOPS="0",
            XS_BIND_ADDRESS="127.0.0.1",
            destinations=json.dumps([{"name": "frontapp", "url": echo.origin, "forwardAuthToken": True}]))
        for name in ("a", "b"):
            port = free_port()
            instances.append(GatewayProcess(name, port, {**env, "PORT": str(port)},
                                            folder / f"gateway-{name}.log"))
        for instance in instances:  # both start at once; then each is waited for
            instance.spawn()
        for instance in instances:
            instance.wait_until_ready()
        proxy = RoundRobinProxy([i.port for i in instances], public_port)
        proxy.start()
        yield Stack(emulator, redis_server, echo, proxy, instances[0], instances[1], public)
    finally:
        if proxy is not None:
            proxy.stop()
        for instance in instances:
            instance.stop()
        echo.stop()
        redis_server.stop()
        emulator.servers.stop()


@pytest.fixture
def stack(stack_parts: Stack) -> Stack:
    stack_parts.proxy.reset()
    stack_parts.echo.seen.clear()
    return stack_parts


def session_cookie(http: aiohttp.ClientSession, stack: Stack) -> str:
    """The signed session cookie's value: ``<session id>.<MAC>``."""
    return http.cookie_jar.filter_cookies(URL(stack.gateway))[COOKIE_NAME].value


def session_id(http: aiohttp.ClientSession, stack: Stack) -> str:
    return session_cookie(http, stack).partition(".")[0]


def in_redis(stack: Stack, sid: str) -> bool:
    with redis.Redis(host="127.0.0.1", port=stack.redis.port) as client:
        return bool(client.exists(SESSION_PREFIX + sid))


async def get_homepage(http: aiohttp.ClientSession, stack: Stack, via: GatewayProcess) -> dict[str, Any]:
    """GET /homepage through the proxy, pinned to ``via``; the echo's record of it."""
    stack.pin(via)
    async with http.get(stack.gateway + "/homepage", headers=XHR) as page:
        assert page.status == 200, f"via {via.name}: {page.status} {await page.text()}"
        record = await page.json()
    assert stack.proxy.served[-1] == via.port
    return record


async def test_a_login_through_one_instance_is_a_session_on_the_other(stack: Stack) -> None:
    async with browser(stack) as http:
        await login(http, stack, "/homepage")  # round robin: the redirect from A, the callback on B
        assert stack.proxy.served == [stack.a.port, stack.b.port]
        sid = session_id(http, stack)
        assert in_redis(stack, sid)
        seen = [await get_homepage(http, stack, via) for via in (stack.b, stack.a, stack.b)]
    bearers = {headers_of(record)["Authorization"] for record in seen}
    assert len(bearers) == 1  # one session, one token, whichever instance answers
    scheme, _, token = bearers.pop().partition(" ")
    assert scheme == "Bearer"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["email"] == "jane.doe@example.com"
    assert claims["iss"] == stack.emulator.config.urls.ias  # the IAS ID token
    for record in seen:
        cookies = headers_of(record).get("Cookie", "")
        assert COOKIE_NAME not in cookies and "frontrouter_login" not in cookies


async def test_a_session_survives_a_restart_of_the_instance_that_made_it(stack: Stack) -> None:
    async with browser(stack) as http:
        stack.pin(stack.a)
        await login(http, stack, "/homepage")
        before = headers_of(await get_homepage(http, stack, stack.a))["Authorization"]
        stack.a.stop(signal.SIGKILL)  # no clean shutdown: nothing of the session lived only in A
        try:
            assert headers_of(await get_homepage(http, stack, stack.b))["Authorization"] == before
        finally:
            stack.a.spawn()
            stack.a.wait_until_ready()
        assert headers_of(await get_homepage(http, stack, stack.a))["Authorization"] == before


async def test_a_logout_through_one_instance_ends_the_session_on_both(stack: Stack) -> None:
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        sid, cookie = session_id(http, stack), session_cookie(http, stack)
        await get_homepage(http, stack, stack.b)
        stack.pin(stack.a)
        idp_logout = await logout(http, stack)
        assert idp_logout.startswith(stack.emulator.config.urls.browser + "/oauth2/logout?")
        assert not in_redis(stack, sid)
        async with http.get(idp_logout, allow_redirects=False) as idp:
            assert idp.status == 302 and idp.headers["Location"].startswith(stack.gateway + "/logout.html")
    # The old cookie, replayed (as by a browser that missed the logout), is no session on either.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as replay:
        for via in (stack.a, stack.b):
            stack.pin(via)
            async with replay.get(stack.gateway + "/homepage", allow_redirects=False,
                                  headers={**XHR, "Cookie": f"{COOKIE_NAME}={cookie}"}) as xhr:
                assert xhr.status == 401, via.name
            async with replay.get(stack.gateway + "/homepage", allow_redirects=False,
                                  headers={"Cookie": f"{COOKIE_NAME}={cookie}"}) as page:
                assert page.status == 302, via.name
                assert "/oauth2/authorize?" in page.headers["Location"]
    assert stack.echo.seen and all(r["path"] == "/homepage" for r in stack.echo.seen)
    assert len(stack.echo.seen) == 1  # only the request before the logout was forwarded
