"""Attacks on the gateway's forwarding (security-catalogue.md D, E, I) that need its real sockets,
or bytes an HTTP client would refuse or normalise: CR/LF/NUL and obs-fold (PRX-06), unknown paths
(PRX-10), public routes of a logged-in user (PRX-11), absolute-form targets (PRX-12), oversized
heads (PRX-13), slowloris (PRX-15), caching (PRX-18), clients that leave (PRX-21), charsets (XSS-08)
and the access log (LEAK-02).

``create_app`` serves on a loopback port as ``python -m gateway`` serves it (handler cancellation
on), in front of a recording upstream in the same loop. Sessions are planted in a MemoryStore, so
no IdP is needed; the routes are the shipped ones plus ``/public/`` (no login) and ``/private/``
(XSUAA).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from multidict import CIMultiDict

from gateway import __main__ as gateway_main
from gateway.app import create_app
from gateway.proxy import PRIVATE_CACHE_CONTROL
from gateway.sessions import COOKIE_NAME, MemoryStore, new_session_id, sign_session_id
from gateway.settings import GatewaySettings
from tests import factories

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SECRET = "proxy-attacks-session-secret-0123456789abcdefgh"  # 48 characters
USER_TOKEN = "user-token-of-jane"
SHIPPED = Path(__file__).resolve().parents[2] / "gateway" / "xs-app.json"
BAD_REQUEST_STATUSES = (400, 414, 431)  # 414/431 as the catalogue asks; aiohttp answers 400


# --- the recording upstream ---------------------------------------------------------------------------

@dataclass
class Upstream:
    """Records what arrives (``seen``) and what became of slow requests (``events``)."""

    port: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    async def answer(self, request: web.Request) -> web.StreamResponse:
        self.seen.append({"method": request.method, "path": request.raw_path,
                          "headers": CIMultiDict(request.headers)})
        if request.path.startswith("/slow"):
            return await self._slow(request)
        if request.path.startswith("/stream"):
            return await self._stream(request)
        cache_control = request.query.get("cc")  # the Cache-Control the test wants back
        return web.Response(text="from the backend",
                            headers={"Cache-Control": cache_control} if cache_control else {})

    async def _slow(self, request: web.Request) -> web.Response:
        try:
            await asyncio.sleep(30)  # the backend that takes its time, not test synchronisation
        except asyncio.CancelledError:
            self.events.append("cancelled")  # the gateway closed the connection: the client left
            raise
        self.events.append("answered")
        return web.Response(text="late")

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            for _ in range(600):
                await response.write(b"x" * 1024)
                await asyncio.sleep(0.05)
        except (asyncio.CancelledError, ConnectionError):
            self.events.append("cancelled")
            raise
        self.events.append("answered")
        return response


@dataclass
class Gateway:
    host: str
    port: int
    store: MemoryStore

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def login(self) -> dict[str, str]:
        """A session with XSUAA and IAS tokens, as after a login; the Cookie header that carries it."""
        sid = new_session_id()
        tokens = {"forward": USER_TOKEN, "refresh_token": None, "expires_at": time.time() + 3600,
                  "scopes": [], "id_token": None}
        await self.store.set(sid, {"tokens": {"xsuaa": tokens, "ias": tokens}, "created": time.time()}, 900)
        return {"Cookie": f"{COOKIE_NAME}={sign_session_id(sid, SECRET.encode())}; theme=dark"}


StartGateway = Callable[..., Awaitable[Gateway]]


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[Upstream]:
    recorder = Upstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.answer)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    recorder.port = runner.addresses[0][1]
    try:
        yield recorder
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def start_gateway(upstream: Upstream, tmp_path: Path) -> AsyncIterator[StartGateway]:
    """``await start_gateway(keepalive_timeout=...)``: the gateway, stopped after the test."""
    routes = json.loads(SHIPPED.read_text(encoding="utf-8"))
    routes["routes"] += [
        {"source": "^/public/(.*)$", "target": "/$1", "destination": "frontapp",
         "authenticationType": "none"},
        {"source": "^/private/(.*)$", "target": "/$1", "destination": "frontapp",
         "authenticationType": "xsuaa", "csrfProtection": False}]
    (tmp_path / "xs-app.json").write_text(json.dumps(routes), encoding="utf-8")
    settings = GatewaySettings.from_env({
        "VCAP_SERVICES": json.dumps(factories.vcap_services()), "SESSION_SECRET": SECRET,
        "XS_APP_FILE": str(tmp_path / "xs-app.json"), "TRUSTED_PROXY_HOPS": "0",
        "destinations": json.dumps([{"name": "frontapp", "url": f"http://127.0.0.1:{upstream.port}",
                                     "forwardAuthToken": True}])})
    runners: list[web.AppRunner] = []

    async def start(keepalive_timeout: float = 75.0) -> Gateway:
        store = MemoryStore()
        # As gateway/__main__.py runs it (run_app's keepalive_timeout default is 75 s).
        runner = web.AppRunner(create_app(settings, store=store), handler_cancellation=True, access_log=None,
                               keepalive_timeout=keepalive_timeout)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return Gateway("127.0.0.1", runner.addresses[0][1], store)

    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()


@dataclass
class RawAnswer:
    status: int
    head: bytes
    body: bytes


async def raw(gateway: Gateway, request: bytes) -> RawAnswer:
    """Send ``request`` as bytes (it should say ``Connection: close``) and read until the gateway closes."""
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return RawAnswer(int(head.split(b" ", 2)[1]), head, body)


async def send(gateway: Gateway, request_line: bytes, headers: bytes = b"") -> RawAnswer:
    """``request_line``, the gateway's Host, ``headers`` (CRLF-terminated lines), Connection: close."""
    return await raw(gateway, request_line + b"\r\n" + host_line(gateway) + headers
                     + b"Connection: close\r\n\r\n")


def host_line(gateway: Gateway) -> bytes:
    return f"Host: {gateway.host}:{gateway.port}\r\n".encode()


async def eventually(condition: Callable[[], bool], deadline_s: float = 5.0) -> bool:
    """Poll ``condition`` until it holds or the deadline passes (what another task does, not time)."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.02)
    return True


# --- PRX-06: CR, LF and NUL in the head, obs-fold --------------------------------------------------

GET_STATIC = b"GET /static/x HTTP/1.1"  # a public GET route: anything accepted would be forwarded


@pytest.mark.parametrize(("request_line", "headers", "status"), [
    pytest.param(GET_STATIC, b"X-A: a\rSet-Cookie: evil=1\r\n", 400, id="PRX-06 CR in a value"),
    pytest.param(GET_STATIC, b"X-A: a\nSet-Cookie: evil=1\r\n", 400, id="PRX-06 LF in a value"),
    pytest.param(GET_STATIC, b"X-A: a\x00Set-Cookie: evil=1\r\n", 400, id="PRX-06 NUL in a value"),
    pytest.param(GET_STATIC, b"X-A: a\r\n Set-Cookie: evil=1\r\n", 400, id="PRX-06 obs-fold space"),
    pytest.param(GET_STATIC, b"X-A: a\r\n\tSet-Cookie: evil=1\r\n", 400, id="PRX-06 obs-fold tab"),
    pytest.param(GET_STATIC, b"X-A\r\n: evil\r\n", 400, id="PRX-06 header name split by CRLF"),
    pytest.param(b"GET /static/x\rSet-Cookie: evil=1 HTTP/1.1", b"", 400, id="PRX-06 CR in the target"),
    # 404, not normalize_path's 400: aiohttp's router ("/{tail:.*}") never matches a decoded newline.
    pytest.param(b"GET /static/x%0d%0aSet-Cookie:%20evil=1 HTTP/1.1", b"", 404, id="PRX-06 CRLF in the path"),
])
async def test_prx06_cr_lf_nul_and_obs_fold_are_refused_and_never_forwarded(
        start_gateway: StartGateway, upstream: Upstream, request_line: bytes, headers: bytes,
        status: int) -> None:
    gateway = await start_gateway()
    answer = await send(gateway, request_line, headers)
    assert answer.status == status, answer.head
    assert b"set-cookie" not in answer.head.lower()  # no response splitting
    assert upstream.seen == []


async def test_prx06_crlf_encoded_in_the_query_stays_encoded(start_gateway: StartGateway,
                                                             upstream: Upstream) -> None:
    """A query is the backend's to decode (a form's textarea sends %0D%0A): it passes as it came, and
    nothing of it turns into a header on either side."""
    gateway = await start_gateway()
    answer = await send(gateway, b"GET /static/x?a=%0d%0aSet-Cookie:%20evil=1 HTTP/1.1")
    assert answer.status == 200
    assert b"set-cookie" not in answer.head.lower()
    [seen] = upstream.seen
    assert seen["path"] == "/static/x?a=%0d%0aSet-Cookie:%20evil=1" and "Set-Cookie" not in seen["headers"]


# --- PRX-10: an unknown path -----------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    pytest.param("/nope", id="PRX-10 unknown"),
    pytest.param("/nope/deeper?next=/homepage", id="PRX-10 unknown with a query naming a route"),
    pytest.param("/homepage/x", id="PRX-10 below a login route"),
    pytest.param("/private", id="PRX-10 a login route's prefix"),
    pytest.param("/xsuaa", id="PRX-10 part of a login route"),
])
async def test_prx10_an_anonymous_browser_gets_404_for_an_unknown_path_no_login_nothing_forwarded(
        start_gateway: StartGateway, upstream: Upstream, path: str) -> None:
    gateway = await start_gateway()
    async with aiohttp.ClientSession() as browser, browser.get(
            gateway.origin + path, allow_redirects=False,
            headers={"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}) as page:
        assert page.status == 404
        assert "Location" not in page.headers and "Set-Cookie" not in page.headers  # no login started
        assert "404 Not Found" in await page.text()
    assert upstream.seen == []


# --- PRX-11: public routes never carry the user's token ----------------------------------------------

@pytest.mark.parametrize(("path", "client_authorization", "authorization"), [
    pytest.param("/static/app.css", None, None, id="PRX-11 shipped public route"),
    pytest.param("/public/page", None, None, id="PRX-11 public route"),
    pytest.param("/public/page", "Bearer client-chosen", None, id="PRX-11 public route, client's own token"),
    pytest.param("/private/page", "Bearer client-chosen", f"Bearer {USER_TOKEN}",
                 id="login route: the user's token"),
])
async def test_prx11_a_logged_in_user_s_token_goes_to_login_routes_only(
        start_gateway: StartGateway, upstream: Upstream, path: str, client_authorization: str | None,
        authorization: str | None) -> None:
    gateway = await start_gateway()
    headers = await gateway.login()
    if client_authorization:
        headers["Authorization"] = client_authorization
    async with aiohttp.ClientSession() as browser, \
            browser.get(gateway.origin + path, headers=headers) as page:
        assert page.status == 200, await page.text()
    [seen] = upstream.seen
    assert seen["headers"].get("Authorization") == authorization
    assert seen["headers"]["Cookie"] == "theme=dark"  # the session cookie stays with the gateway


# --- PRX-12: absolute-form targets -----------------------------------------------------------------

@pytest.mark.parametrize(("target", "host"), [
    pytest.param("http://169.254.169.254/latest/meta-data/", "{gateway}", id="PRX-12 metadata address"),
    pytest.param("http://169.254.169.254/public/x", "{gateway}", id="PRX-12 metadata address, routed path"),
    pytest.param("http://evil.example/static/x", "evil.example", id="PRX-12 another host, Host agrees"),
    pytest.param("https://evil.example:443/public/x", "{gateway}", id="PRX-12 https to another host"),
])
async def test_prx12_an_absolute_form_target_naming_another_host_is_refused(
        start_gateway: StartGateway, upstream: Upstream, target: str, host: str) -> None:
    """RFC 9112 §3.2.2: the target's authority, not Host, says whom the request is for."""
    gateway = await start_gateway()
    host = host.format(gateway=f"{gateway.host}:{gateway.port}")
    answer = await raw(gateway, f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                       .encode())
    assert answer.status == 400, answer.head
    assert upstream.seen == []


async def test_prx12_an_absolute_form_target_goes_where_the_route_table_says_never_to_its_port(
        start_gateway: StartGateway, upstream: Upstream) -> None:
    """A loopback name passes the host check, but the port in the target chooses nothing: the
    route's destination gets the request, the decoy listening there gets no connection."""
    connections: list[object] = []
    decoy = await asyncio.start_server(lambda r, w: connections.append(w), "127.0.0.1", 0)
    decoy_port = decoy.sockets[0].getsockname()[1]
    gateway = await start_gateway()
    try:
        answer = await raw(gateway, f"GET http://127.0.0.1:{decoy_port}/public/x HTTP/1.1\r\n"
                                    "Host: evil.example\r\nConnection: close\r\n\r\n".encode())
    finally:
        decoy.close()
        await decoy.wait_closed()
    assert answer.status == 200 and connections == []
    [seen] = upstream.seen
    assert seen["path"] == "/x"
    # The authority the gateway checked (aiohttp keeps no port of it), not the Host header it ignored.
    assert seen["headers"]["X-Forwarded-Host"].partition(":")[0] == "127.0.0.1"


# --- PRX-13: heads over the limits ------------------------------------------------------------------

@pytest.mark.parametrize(("request_line", "headers"), [
    pytest.param(b"GET /static/" + b"a" * 9000 + b" HTTP/1.1", b"", id="PRX-13 9 KB URL"),
    pytest.param(b"GET /static/x?q=" + b"a" * 100_000 + b" HTTP/1.1", b"", id="PRX-13 100 KB URL"),
    pytest.param(GET_STATIC, b"X-Big: " + b"a" * 9000 + b"\r\n", id="PRX-13 9 KB header"),
    pytest.param(GET_STATIC, b"Cookie: " + b"a" * 200_000 + b"\r\n", id="PRX-13 200 KB header"),
    pytest.param(GET_STATIC, b"".join(b"X-%d: %s\r\n" % (i, b"a" * 2000) for i in range(200)),
                 id="PRX-13 400 KB head"),
    pytest.param(GET_STATIC, b"".join(b"X-%d: a\r\n" % i for i in range(200)), id="PRX-13 200 headers"),
])
async def test_prx13_a_head_over_the_limits_is_a_clean_4xx_and_never_forwarded(
        start_gateway: StartGateway, upstream: Upstream, request_line: bytes, headers: bytes) -> None:
    """aiohttp's parser stops at 8190 bytes a line or field and 128 header lines. It answers 400, not
    414/431 (the status is fixed inside aiohttp's protocol), never a 5xx."""
    gateway = await start_gateway()
    answer = await send(gateway, request_line, headers)
    assert answer.status in BAD_REQUEST_STATUSES, answer.head
    assert b"charset=utf-8" in answer.head.lower()  # XSS-08 also for aiohttp's own answer
    assert upstream.seen == []


# --- PRX-15: slowloris ----------------------------------------------------------------------------

async def test_prx15_a_slowloris_client_is_cut_off_however_steadily_it_trickles(
        start_gateway: StartGateway, upstream: Upstream) -> None:
    """aiohttp's keep-alive timer starts with the connection and a trickled head does not push it
    back: the connection closes at ``keepalive_timeout`` (75 s in production, 0.5 s here)."""
    gateway = await start_gateway(keepalive_timeout=0.5)
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(b"GET /static/x HTTP/1.1\r\n" + host_line(gateway))
    started = time.monotonic()

    async def trickle() -> None:
        for i in range(100):  # 10 s of headers, one every 0.1 s: the attacker's pace
            writer.write(b"X-%d: a\r\n" % i)
            await writer.drain()
            await asyncio.sleep(0.1)

    sender = asyncio.create_task(trickle())
    try:
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        sender.cancel()
        writer.close()
    assert time.monotonic() - started < 3
    assert not answer.startswith(b"HTTP/1.1 2")  # closed (or refused), never served
    assert upstream.seen == []


async def test_prx15_prx21_python_m_gateway_closes_idle_clients_and_cancels_for_those_that_leave(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the tests above rely on, as ``python -m gateway`` starts the server."""
    run_app: dict[str, Any] = {}
    default = inspect.signature(web.run_app).parameters["keepalive_timeout"].default
    settings = SimpleNamespace(host="127.0.0.1", port=0)
    monkeypatch.setattr(gateway_main, "configure_logging", lambda **_: None)  # leave the loggers alone
    monkeypatch.setattr(gateway_main.GatewaySettings, "from_env", staticmethod(lambda: settings))
    monkeypatch.setattr(gateway_main, "create_app", lambda _: web.Application())
    monkeypatch.setattr(gateway_main.web, "run_app", lambda _, **kwargs: run_app.update(kwargs))
    assert gateway_main.main() == 0
    assert run_app["handler_cancellation"] is True  # PRX-21: a client that leaves cancels the upstream call
    assert 0 < run_app.get("keepalive_timeout", default) <= 120  # PRX-15: approuter closes idle ones at 120 s


# --- PRX-18: caching of authenticated answers -----------------------------------------------------

@pytest.mark.parametrize(("path", "logged_in", "cache_control"), [
    pytest.param("/private/page", True, PRIVATE_CACHE_CONTROL, id="PRX-18 login route, backend silent"),
    pytest.param("/private/page?cc=max-age%3D60", True, "max-age=60", id="login route, backend's own kept"),
    pytest.param("/public/page", True, None, id="public route, logged in: nothing added"),
    pytest.param("/public/page?cc=public%2C%20max-age%3D600", False, "public, max-age=600",
                 id="public route, backend's own passes"),
])
async def test_prx18_an_authenticated_answer_is_never_left_cacheable(
        start_gateway: StartGateway, path: str, logged_in: bool, cache_control: str | None) -> None:
    gateway = await start_gateway()
    headers = await gateway.login() if logged_in else {}
    async with aiohttp.ClientSession() as browser, \
            browser.get(gateway.origin + path, headers=headers) as page:
        assert page.status == 200
        assert page.headers.getall("Cache-Control", []) == ([cache_control] if cache_control else [])


# --- PRX-21: clients that leave ----------------------------------------------------------------------

@pytest.mark.parametrize(("path", "leave_after"), [
    pytest.param("/private/slow", b"", id="PRX-21 while the backend works"),
    pytest.param("/private/stream", b"\r\n\r\n", id="PRX-21 while the answer streams"),
])
async def test_prx21_clients_that_leave_close_the_backend_s_connections_and_log_no_errors(
        start_gateway: StartGateway, upstream: Upstream, caplog: pytest.LogCaptureFixture, path: str,
        leave_after: bytes) -> None:
    gateway = await start_gateway()
    cookie = (await gateway.login())["Cookie"]
    request = f"GET {path} HTTP/1.1\r\nHost: {gateway.host}:{gateway.port}\r\nCookie: {cookie}\r\n\r\n"
    clients = 10
    with caplog.at_level(logging.INFO):
        connections = [await asyncio.open_connection(gateway.host, gateway.port) for _ in range(clients)]
        for _, writer in connections:
            writer.write(request.encode())
        assert await eventually(lambda: len(upstream.seen) == clients)  # each backend call under way
        if leave_after:  # the answer has started to arrive
            for reader, _ in connections:
                await reader.readuntil(leave_after)
        for _, writer in connections:
            writer.close()
        assert await eventually(lambda: len(upstream.events) == clients), upstream.events
    assert upstream.events == ["cancelled"] * clients and len(upstream.seen) == clients
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    statuses = [r.args[2] for r in caplog.records if r.name == "gateway" and isinstance(r.args, tuple)
                and len(r.args) == 3]
    assert all(status < 500 for status in statuses), statuses


# --- XSS-08: the gateway's own pages ------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "headers", "status"), [
    pytest.param("GET", "/nope", {"Accept": "text/html"}, 404, id="XSS-08 404 page"),
    pytest.param("GET", "/nope", {"Accept": "application/json"}, 404, id="XSS-08 404 JSON"),
    pytest.param("GET", "/homepage", {"X-Requested-With": "XMLHttpRequest"}, 401, id="XSS-08 401"),
    pytest.param("TRACE", "/homepage", {}, 405, id="XSS-08 405"),
    pytest.param("GET", "/static//x", {}, 400, id="XSS-08 400 path"),
    pytest.param("GET", "/static/x", {"Host": "evil.example"}, 400, id="XSS-08 400 host"),
    pytest.param("GET", "/login/callback?state=x&code=y", {}, 400, id="XSS-08 callback page"),
    pytest.param("GET", "/logout.html", {}, 200, id="XSS-08 logged-out page"),
    pytest.param("POST", "/logout", {}, 200, id="XSS-08 logout answer"),
    pytest.param("GET", "/health", {}, 200, id="XSS-08 health"),
    pytest.param("GET", "/ready", {}, 200, id="XSS-08 ready"),
])
async def test_xss08_every_page_of_the_gateway_names_its_charset(
        start_gateway: StartGateway, method: str, path: str, headers: dict[str, str], status: int) -> None:
    gateway = await start_gateway()
    async with aiohttp.ClientSession() as browser, browser.request(
            method, gateway.origin + path, headers=headers, allow_redirects=False) as page:
        assert page.status == status
        assert page.headers["Content-Type"].endswith("; charset=utf-8"), page.headers["Content-Type"]
        assert page.headers["X-Content-Type-Options"] == "nosniff"


# --- LEAK-02: the access log ----------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    pytest.param("/x%0d%0aFAKE%20200%20GET%20/admin", id="LEAK-02 CRLF"),
    pytest.param("/static/%0aFAKE", id="LEAK-02 LF on a route"),
    pytest.param("/x%1b[2J%1b[31mRED", id="LEAK-02 ANSI escapes"),
    pytest.param("/x%e2%80%a8FAKE%c2%85NEL", id="LEAK-02 Unicode line separators"),
])
async def test_leak02_a_path_cannot_forge_or_colour_a_gateway_log_line(
        start_gateway: StartGateway, caplog: pytest.LogCaptureFixture, path: str) -> None:
    gateway = await start_gateway()
    with caplog.at_level(logging.INFO, logger="gateway"):
        answer = await send(gateway, f"GET {path} HTTP/1.1".encode())
    assert answer.status in (400, 404)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("gateway")]
    assert any(line.startswith("GET /x") or line.startswith("GET /static/") for line in lines), lines
    for line in lines:
        assert line.isprintable(), repr(line)  # no CR, LF, ESC, U+2028, NEL: one record, one line
