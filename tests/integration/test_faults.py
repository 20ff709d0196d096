"""The fault rows of the security catalogue (F-01 .. F-29) that only show with the pieces
running: the gateway in the test's loop (tests/integration/gateway_stack.py) against the
emulator as IAS and XSUAA, a destination that can hang or stop, and a real redis-server.

Each test switches one fault on (an emulator fault, a closed listener, a stopped or frozen
process), checks what the catalogue expects while it lasts, switches it off and checks that
the same users carry on. Waits are bounded polls of a condition, never fixed sleeps. The
gateway's IdP timeout is shortened where a test waits for it; the app's is not (F-03 waits it
out).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import requests
from aiohttp import web
from multidict import CIMultiDictProxy
from werkzeug.serving import WSGIRequestHandler, make_server

from gateway.oidc import IdentityProvider
from gateway.sessions import COOKIE_NAME, MemoryStore
from tests.emulator.conftest import RunningEmulator
from tests.gateway.conftest import RedisServer, start_redis_server
from tests.integration.gateway_browser import browser, callback_of, csrf_token, landing_target, login
from tests.integration.gateway_stack import Stack, StartGateway, given, session_cookie
from tests.integration.gateway_upstreams import BackgroundServer, headers_of
from tests.integration.processes import RunningApp, clean_environ, free_port, poll_until, running_gunicorn

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

XHR = {"X-Requested-With": "XMLHttpRequest", "Accept": "application/json"}
#: The gateway's IdP timeout in these tests (10 s in production: gateway.oidc), so that a
#: token endpoint slower than it costs seconds, not tens of seconds.
IDP_TIMEOUT_S = 2.0
#: Longer than IDP_TIMEOUT_S: the emulator answers after the gateway has given up.
SLOW_IDP_S = IDP_TIMEOUT_S + 3.0
#: A token lifetime well inside the refresh margin (JWT_REFRESH=5 minutes) that runs out in the test.
SHORT_LIFETIME_S = 4
#: A destination timeout (ms) for the hanging-backend fault.
BACKEND_TIMEOUT_MS = 1000
WAIT_S = 15.0
POLL_S = 0.05


# --- helpers ----------------------------------------------------------------------------------------


def admin(emulator: RunningEmulator, method: str, path: str, body: object = None) -> Any:
    """A call of the emulator's admin API over a fresh connection (no pooled one can outlive an outage)."""
    with requests.Session() as http:
        http.trust_env = False
        answer = http.request(method, f"{emulator.https}/_emu{path}", json=body,
                              verify=str(emulator.pki.ca_file), timeout=10)
    assert answer.status_code == 200, f"{method} /_emu{path}: {answer.status_code} {answer.text}"
    return answer.json()


def grants(emulator: RunningEmulator, grant_type: str) -> list[int]:
    """The statuses of the emulator's answers to ``grant_type`` token requests, oldest first."""
    return [r["status"] for r in admin(emulator, "GET", "/requests")["requests"]
            if r["grant_type"] == grant_type]


async def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await asyncio.sleep(POLL_S)


@contextmanager
def idp_down(emulator: RunningEmulator) -> Iterator[None]:
    """The emulator's HTTPS listener closed: the token, key and discovery endpoints of IAS and
    XSUAA refuse connections. Opened again on the same port, with the same state, on exit.
    The browser-facing login pages (plain HTTP) stay up."""
    servers = emulator.servers
    servers.https.shutdown()
    servers.https.server_close()
    try:
        yield
    finally:
        # As emulator.server.bind makes it (that function binds both listeners at once).
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(emulator.pki.cert_file, emulator.pki.key_file)
        context.load_verify_locations(emulator.pki.ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
        servers.https = make_server("127.0.0.1", emulator.config.urls.https_port,
                                    emulator.app, threaded=True, ssl_context=context,  # type: ignore[arg-type]
                                    request_handler=_QuietHandler)
        threading.Thread(target=servers.https.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # request lines carry codes and states in their query strings


@contextmanager
def emulator_fault(emulator: RunningEmulator, endpoint: str, **spec: object) -> Iterator[None]:
    """An emulator fault (emulator/faults.py) on ``endpoint`` while inside."""
    admin(emulator, "POST", "/faults", {"endpoint": endpoint, **spec})
    try:
        yield
    finally:
        admin(emulator, "DELETE", "/faults")


@contextmanager
def lifetimes(emulator: RunningEmulator, seconds: int) -> Iterator[None]:
    """Tokens of both IdPs live ``seconds`` while inside."""
    before = admin(emulator, "POST", "/lifetimes", {})
    admin(emulator, "POST", "/lifetimes", {"ias": seconds, "xsuaa": seconds})
    try:
        yield
    finally:
        admin(emulator, "POST", "/lifetimes", before)


async def the_session(store: MemoryStore, http: aiohttp.ClientSession, stack: Stack) -> dict[str, Any]:
    """The server-side session of the browser ``http``."""
    sid = session_cookie(http, stack).partition(".")[0]
    session = await store.get(sid)
    assert session is not None
    return session


async def login_again(http: aiohttp.ClientSession, stack: Stack, path: str) -> None:
    """Log in once more in a browser the IdP still knows: it answers at once (single sign-on)."""
    async with http.get(stack.gateway + path, allow_redirects=False) as first:
        assert first.status == 302, await first.text()
        authorize = first.headers["Location"]
    async with http.get(authorize, allow_redirects=False) as idp:
        assert idp.status == 302, await idp.text()
        callback = idp.headers["Location"]
    async with http.get(callback, allow_redirects=False) as back:
        assert back.status == 200 and landing_target(await back.text()) == path


async def bearer_of(http: aiohttp.ClientSession, stack: Stack, path: str) -> str:
    """GET ``path`` as XHR; the bearer the upstream (the echo) received."""
    async with http.get(stack.gateway + path, headers=XHR) as page:
        assert page.status == 200, await page.text()
        return headers_of(await page.json())["Authorization"]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]


async def answer_of(request: AbstractAsyncContextManager[aiohttp.ClientResponse]) -> Answer:
    """Status and headers of ``request``'s answer, read to the end and released."""
    async with request as answer:
        await answer.read()
        return Answer(answer.status, answer.headers)


def post(http: aiohttp.ClientSession, url: str,
         csrf: str) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
    """An XHR POST with the session's CSRF token, as the page's script sends it."""
    return http.post(url, data=b"{}",
                     headers={**XHR, "x-csrf-token": csrf, "Content-Type": "application/json"})


@pytest.fixture(autouse=True)
def _no_faults(emulator: RunningEmulator) -> Iterator[None]:
    admin(emulator, "DELETE", "/faults")
    yield
    admin(emulator, "DELETE", "/faults")


@pytest.fixture
def short_idp_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gateways started after this call their IdPs with IDP_TIMEOUT_S."""
    monkeypatch.setattr("gateway.app.IdentityProvider",
                        functools.partial(IdentityProvider, timeout=IDP_TIMEOUT_S))


# --- F-01 / F-02: the IdP fails during the login's code exchange ---------------------------------------


@pytest.mark.parametrize(("fault", "redeemed"), [
    # Refused connections: the request never left, so the code cannot have been spent.
    pytest.param(idp_down, [], id="F-01 token endpoint refuses connections"),
    # A read timeout: the code may be spent, so it is not sent again (a retry would be invalid_grant).
    pytest.param(functools.partial(emulator_fault, endpoint="ias.token", delay=SLOW_IDP_S), [200],
                 id="F-02 token endpoint slower than the gateway's timeout"),
    pytest.param(functools.partial(emulator_fault, endpoint="ias.token", status=503), [503],
                 id="token endpoint answers 503"),
])
@pytest.mark.usefixtures("short_idp_timeout")
async def test_a_code_exchange_that_fails_shows_an_error_page_and_leaves_no_session(
        start_gateway: StartGateway, fault: Callable[[RunningEmulator], AbstractContextManager[None]],
        redeemed: list[int]) -> None:
    store = await given(MemoryStore())
    stack = await start_gateway(store=store)
    before = grants(stack.emulator, "authorization_code")
    async with browser(stack) as http:
        callback = await callback_of(http, stack, "/homepage")
        with fault(stack.emulator):
            started = time.monotonic()
            async with http.get(callback, allow_redirects=False) as failed:
                status, page, headers = failed.status, await failed.text(), failed.headers
            took = time.monotonic() - started
        assert status in (502, 504), page
        assert took < SLOW_IDP_S  # the gateway's own timeout ended it, not the IdP's answer
        assert "could not complete the login. Try again." in page and "Correlation ID:" in page
        assert "Location" not in headers
        assert not any(COOKIE_NAME in cookie for cookie in headers.getall("Set-Cookie", []))
        assert len(store) == 0  # no half session, and the pending login is spent
        # The code went to the token endpoint at most once (F-02: the slow answer arrives later).
        expected = len(before) + len(redeemed)
        await eventually(lambda: len(grants(stack.emulator, "authorization_code")) >= expected,
                         "the emulator logged the code exchange")
        assert grants(stack.emulator, "authorization_code")[len(before):] == redeemed
        # The same answer again (a reload of the callback): the state is used up, nothing is sent.
        async with http.get(callback, allow_redirects=False) as replay:
            assert replay.status == 400
        assert grants(stack.emulator, "authorization_code")[len(before):] == redeemed
        # Healthy again: the next login works in the same browser.
        await login_again(http, stack, "/homepage")
        assert (await bearer_of(http, stack, "/homepage")).startswith("Bearer ")


async def test_f01_the_login_error_page_leads_back_to_the_page_asked_for(start_gateway: StartGateway) -> None:
    stack = await start_gateway()
    asked = "/app/orders?id=7"
    async with browser(stack) as http:
        callback = await callback_of(http, stack, asked)
        with idp_down(stack.emulator):
            async with http.get(callback, allow_redirects=False) as failed:
                assert failed.status == 502
                page = await failed.text()
    assert f'href="{asked}"' in page.replace("&amp;", "&")


# --- F-27: the IdP goes down while users are logged in ---------------------------------------------------


@pytest.mark.parametrize(("path", "kind"), [pytest.param("/homepage", "ias", id="F-27 IAS"),
                                            pytest.param("/xsuaa/homepage", "xsuaa", id="F-27 XSUAA")])
async def test_sessions_outlive_an_idp_outage_until_their_token_expires(
        start_gateway: StartGateway, path: str, kind: str) -> None:
    store = await given(MemoryStore())
    stack = await start_gateway(store=store, JWT_REFRESH="5")
    async with browser(stack) as http:
        with lifetimes(stack.emulator, SHORT_LIFETIME_S):
            await login(http, stack, path)
        logged_in = (await the_session(store, http, stack))["tokens"][kind]
        with idp_down(stack.emulator):
            # Within the refresh margin from the start: every request tries a refresh, which fails.
            while True:
                sent = time.time()
                async with http.get(stack.gateway + path, headers=XHR) as answer:
                    status, body = answer.status, await answer.text()
                if status != 200:
                    break
                assert headers_of(json.loads(body))["Authorization"] == f"Bearer {logged_in['forward']}"
                assert sent < logged_in["expires_at"]
                # A failed refresh changes nothing: same token, same refresh token, same session.
                assert (await the_session(store, http, stack))["tokens"][kind] == logged_in
                await asyncio.sleep(0.2)  # the pace of a user; the loop ends at the token's expiry
            assert status == 401, body  # expired now (sent after the 200s): XHR is told to log in again ...
            assert time.time() >= logged_in["expires_at"]
            async with http.get(stack.gateway + path, allow_redirects=False) as page:
                assert page.status == 302  # ... and a browser is sent to the IdP's login
                assert "/authorize?" in page.headers["Location"]
        # Healthy again: the session was not ended, so its kept refresh token renews it.
        refreshed = len(grants(stack.emulator, "refresh_token"))
        assert await bearer_of(http, stack, path) != f"Bearer {logged_in['forward']}"
        assert grants(stack.emulator, "refresh_token")[refreshed:] == [200]


async def test_f27_once_the_idp_is_back_the_next_request_refreshes(start_gateway: StartGateway) -> None:
    store = await given(MemoryStore())
    stack = await start_gateway(store=store, JWT_REFRESH="5")
    async with browser(stack) as http:
        with lifetimes(stack.emulator, SHORT_LIFETIME_S * 60):  # inside the margin, far from expiry
            await login(http, stack, "/homepage")
        logged_in = (await the_session(store, http, stack))["tokens"]["ias"]
        refreshed = len(grants(stack.emulator, "refresh_token"))
        with idp_down(stack.emulator):
            assert await bearer_of(http, stack, "/homepage") == f"Bearer {logged_in['forward']}"
        assert await bearer_of(http, stack, "/homepage") != f"Bearer {logged_in['forward']}"
        assert grants(stack.emulator, "refresh_token")[refreshed:] == [200]  # the kept refresh token worked


async def test_f27_a_new_login_while_the_idp_is_down_gets_an_error_page(start_gateway: StartGateway) -> None:
    """A gateway that has not read the IAS discovery document yet (a restart during the outage)."""
    stack = await start_gateway()
    async with browser(stack) as http:
        with idp_down(stack.emulator):
            async with http.get(stack.gateway + "/homepage", allow_redirects=False) as page:
                status, text = page.status, await page.text()
        assert status in (502, 503, 504), f"{status} {text}"
        assert "Correlation ID" in text
        await login(http, stack, "/homepage")
        assert (await bearer_of(http, stack, "/homepage")).startswith("Bearer ")


# --- F-25: the route's backend stops or hangs ---------------------------------------------------------


class Backend:
    """The destination of the test routes on a fixed port: answers every request with what it got
    (as the echo upstream does), records method and path in ``seen``, and can hang or be stopped
    and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: list[tuple[str, str]] = []
        self.hanging = threading.Event()
        self._server: BackgroundServer | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Backend:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._server = BackgroundServer(app, self.port).start()
        return self

    def stop(self) -> None:
        self.hanging.clear()
        if self._server is not None:
            self._server.stop()
            self._server = None

    async def _answer(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen.append((request.method, request.raw_path))
        deadline = time.monotonic() + WAIT_S
        while self.hanging.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        return web.json_response({"method": request.method, "path": request.raw_path,
                                  "headers": [[name, value] for name, value in request.headers.items()]})


@contextmanager
def backend_stopped(backend: Backend) -> Iterator[None]:
    backend.stop()
    try:
        yield
    finally:
        backend.start()


@contextmanager
def backend_hanging(backend: Backend) -> Iterator[None]:
    backend.hanging.set()
    try:
        yield
    finally:
        backend.hanging.clear()


@pytest.mark.parametrize(("fault", "status", "arrived"), [
    pytest.param(backend_stopped, 502, 0, id="F-25 backend down"),
    pytest.param(backend_hanging, 504, 3, id="F-25 backend slower than the destination timeout"),
])
async def test_a_session_survives_a_backend_outage_and_a_post_is_not_replayed(
        start_gateway: StartGateway, fault: Callable[[Backend], AbstractContextManager[None]], status: int,
        arrived: int) -> None:
    backend = Backend().start()
    try:
        destination = {"name": "frontapp", "url": backend.origin, "forwardAuthToken": True,
                       "timeout": BACKEND_TIMEOUT_MS}
        stack = await start_gateway(destinations=json.dumps([destination]))
        async with browser(stack) as http:
            await login(http, stack, "/app/page")
            cookie, bearer = session_cookie(http, stack), await bearer_of(http, stack, "/app/page")
            token = await csrf_token(http, stack)
            backend.seen.clear()
            with fault(backend):
                answers = await asyncio.gather(
                    answer_of(http.get(stack.gateway + "/app/page", headers=XHR)),
                    answer_of(http.get(stack.gateway + "/app/page", allow_redirects=False)),
                    answer_of(post(http, stack.gateway + "/app/order", token)))
                assert [a.status for a in answers] == [status] * 3, answers
                assert all(a.headers["x-correlationid"] for a in answers)
                assert answers[0].headers["Content-Type"].startswith("application/json")  # XHR: JSON
                assert answers[1].headers["Content-Type"].startswith("text/html")  # a browser: a page
                # Sent at most once each; a POST that may have reached the backend is not sent again.
                await eventually(lambda: len(backend.seen) >= arrived, "the requests reached the backend")
                assert len(backend.seen) == arrived
            # Healthy again: the same session, the same token, no new login, nothing replayed.
            assert await bearer_of(http, stack, "/app/page") == bearer
            assert session_cookie(http, stack) == cookie
            assert (await answer_of(post(http, stack.gateway + "/app/order", token))).status == 200
            assert [m for m, _ in backend.seen].count("POST") == (1 if arrived else 0) + 1
    finally:
        backend.stop()


# --- F-26: the session store (Redis) stops or hangs -------------------------------------------------------


@contextmanager
def redis_stopped(server: RedisServer) -> Iterator[None]:
    """redis-server stopped after a snapshot, and started again on its port from that snapshot
    (a managed Redis with persistence failing over): the sessions are still there afterwards."""
    with redis.Redis(host="127.0.0.1", port=server.port) as client:
        client.save()
    server.stop()
    try:
        yield
    finally:
        executable = shutil.which("redis-server")
        assert executable is not None
        with server.log_path.open("ab") as log:
            server.process = subprocess.Popen(  # noqa: S603 - a fixed argv
                [executable, "--bind", "127.0.0.1", "--port", str(server.port), "--save", "",
                 "--appendonly", "no", "--dir", str(server.log_path.parent), "--daemonize", "no",
                 "--logfile", ""], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        def answers() -> bool:
            with redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=0.5) as client:
                return bool(client.ping())

        poll_until(answers, server.process, "redis-server", server.log, errors=(redis.RedisError,))


@contextmanager
def redis_hanging(server: RedisServer) -> Iterator[None]:
    """redis-server frozen (SIGSTOP): connections are accepted by the kernel, nothing answers."""
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


@pytest.mark.parametrize("fault", [pytest.param(redis_stopped, id="F-26 store stopped"),
                                   pytest.param(redis_hanging, id="F-26 store hangs")])
async def test_without_its_session_store_the_gateway_answers_503_never_anonymously(
        start_gateway: StartGateway, tmp_path: Path,
        fault: Callable[[RedisServer], AbstractContextManager[None]]) -> None:
    server = start_redis_server(tmp_path)
    try:
        stack = await start_gateway(SESSION_STORE_URL=server.url)
        async with browser(stack) as http, browser(stack) as stranger:
            await login(http, stack, "/homepage")
            bearer, token = await bearer_of(http, stack, "/homepage"), await csrf_token(http, stack)
            stack.echo.seen.clear()
            with fault(server):
                # All at once: against a hanging store each waits for the store's timeouts.
                answers = await asyncio.gather(
                    answer_of(http.get(stack.gateway + "/homepage", headers=XHR)),
                    answer_of(http.get(stack.gateway + "/homepage", allow_redirects=False)),
                    answer_of(post(http, stack.gateway + "/homepage", token)),
                    answer_of(stranger.get(stack.gateway + "/homepage", allow_redirects=False)),
                    answer_of(http.get(stack.gateway + "/ready")))
                # Fail closed: no login redirect, no 401, nothing forwarded without the session.
                assert [a.status for a in answers] == [503] * 5, answers
                assert all(a.headers["Retry-After"].isdigit() for a in answers[:4])
                async with http.get(stack.gateway + "/health") as alive:
                    assert alive.status == 200  # the process lives; only readiness is down
            assert stack.echo.seen == []  # nothing went to the backend without a session
            # Healthy again: ready, and the same session carries on without a new login.
            async with http.get(stack.gateway + "/ready") as ready:
                assert ready.status == 200
            assert await bearer_of(http, stack, "/homepage") == bearer
    finally:
        server.stop()


# --- the app's jwt-bearer exchange against the emulator (F-03, F-07) ----------------------------------

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: The app's read timeout for the exchange (app/__init__.py; the catalogue asks for 5 s).
EXCHANGE_READ_TIMEOUT_S = 10.0
#: Consecutive transient failures that open a breaker (seccore.outbound.CircuitBreaker).
BREAKER_THRESHOLD = 5


@pytest.fixture(scope="module")
def app_on_emulator(emulator: RunningEmulator,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """The app under gunicorn, bound to the module's emulator and trusting its CA."""
    env = clean_environ(PORT=str(free_port()), VCAP_SERVICES=emulator.vcap_services,
                        REQUESTS_CA_BUNDLE=str(emulator.pki.ca_file), LOG_FORMAT="json", WEB_CONCURRENCY="1",
                        GUNICORN_THREADS="4")
    with running_gunicorn(env, tmp_path_factory.mktemp("app") / "gunicorn.log") as app:
        yield app


def homepage(app: RunningApp, emulator: RunningEmulator) -> requests.Response:
    """The app's page for a new login of jane (a new token: the app caches per token)."""
    with requests.Session() as http:
        http.trust_env = False
        minted = http.post(f"{emulator.https}/_emu/token", json={"user": "jane", "kind": "ias"},
                           verify=str(emulator.pki.ca_file), timeout=10)
    assert minted.status_code == 200, minted.text
    return app.get("/homepage", headers={"Accept": "application/json",
                                         "Authorization": f"Bearer {minted.text}"})


INVALID_CLIENT = {"error": "invalid_client", "error_description": "Bad credentials"}


async def test_f07_a_refused_cpi_client_is_a_502_every_time_and_never_opens_the_breaker(
        app_on_emulator: RunningApp, emulator: RunningEmulator) -> None:
    before = len(grants(emulator, JWT_BEARER))
    with emulator_fault(emulator, "xsuaa.token", status=401, count=0, json=INVALID_CLIENT):
        for _ in range(BREAKER_THRESHOLD + 1):
            refused = homepage(app_on_emulator, emulator)
            assert refused.status_code == 502, refused.text
            assert refused.json()["error"]["cause"] == "XSUAA refused the CPI client's credentials"
        # Each request asked once: a refusal is not retried, and it does not count as an outage.
        assert grants(emulator, JWT_BEARER)[before:] == [401] * (BREAKER_THRESHOLD + 1)
    assert homepage(app_on_emulator, emulator).status_code == 200  # healthy again at once


async def test_f07_a_refused_cpi_client_is_logged_for_an_alert(app_on_emulator: RunningApp,
                                                                emulator: RunningEmulator) -> None:
    with emulator_fault(emulator, "xsuaa.token", status=401, json=INVALID_CLIENT):
        refused = homepage(app_on_emulator, emulator)
    assert refused.status_code == 502
    cid = refused.headers["x-correlationid"]
    await eventually(lambda: cid in app_on_emulator.log(), "the app logged the request")
    records = [json.loads(line) for line in app_on_emulator.log().splitlines() if cid in line]
    assert any(r["level"] in ("warning", "error", "critical") for r in records), records


async def test_f03_a_token_endpoint_slower_than_the_read_timeout_is_a_504_and_not_retried(
        app_on_emulator: RunningApp, emulator: RunningEmulator) -> None:
    """What holds is checked first (one call, recovery); the status, which does not, last."""
    before = len(grants(emulator, JWT_BEARER))
    with emulator_fault(emulator, "xsuaa.token", delay=EXCHANGE_READ_TIMEOUT_S + 1):
        started = time.monotonic()
        slow = homepage(app_on_emulator, emulator)
        took = time.monotonic() - started
    assert took < EXCHANGE_READ_TIMEOUT_S + 2, took  # gave up at its read timeout
    assert slow.headers["x-correlationid"]
    # The one call is answered late; none other was made (a read timeout is not retried).
    await eventually(lambda: len(grants(emulator, JWT_BEARER)) > before, "the slow exchange was answered")
    assert grants(emulator, JWT_BEARER)[before:] == [200]
    assert homepage(app_on_emulator, emulator).status_code == 200  # healthy again
    assert slow.status_code == 504, slow.text
    assert slow.json()["error"]["cause"] == "the token endpoint did not answer in time"
