"""What the gateway passes on from a backend's response (security-catalogue PRX-14, SES-16): a
``Location`` on the backend's own origin becomes a path of the gateway, version banners are dropped,
and a backend cannot set, overwrite or expire the gateway's own cookies.

The real app (``create_app``) in front of a scripted upstream, both on loopback (as in
test_proxy.py); each test tells the upstream which headers to answer with.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpClient, AiohttpServer

from gateway.app import LOGIN_COOKIE, create_app
from gateway.sessions import COOKIE_NAME, MemoryStore, new_session_id, sign_session_id
from tests.gateway.conftest import gateway_settings

pytestmark = pytest.mark.asyncio

SECRET = "upstream-responses-session-secret-0123456789abcd"  # 48 characters
XHR = {"X-Requested-With": "XMLHttpRequest"}  # without a session: 401, never a trip to the IdP
BACKEND_VALUE = "backend-value-not-for-logs"
ANSWER = web.AppKey("answer", list)  # the (name, value) headers the upstream answers with


async def scripted(request: web.Request) -> web.Response:
    """Answer with the headers the test put into ``app[ANSWER]``: 302 if one is Location."""
    headers = CIMultiDict[str](request.app[ANSWER])
    return web.Response(status=302 if "Location" in headers else 200, text="from the backend",
                        headers=headers)


@pytest_asyncio.fixture
async def upstream(aiohttp_server: AiohttpServer) -> TestServer:
    app = web.Application()
    app[ANSWER] = []
    app.router.add_route("*", "/{tail:.*}", scripted)
    return await aiohttp_server(app)


def answer_with(upstream: TestServer, *headers: tuple[str, str]) -> None:
    """Script the upstream's next answers (the list is changed in place: the app has started)."""
    upstream.app[ANSWER][:] = headers


StartGateway = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def start_gateway(aiohttp_client: AiohttpClient, upstream: TestServer, tmp_path: Path) -> StartGateway:
    """``await start_gateway(host=..., store=...)``: the gateway with destination ``backend`` at
    ``http://<host>:<upstream port>``; ``/public/*`` needs no login, ``/private/*`` an XSUAA session."""
    routes = [
        {"source": "^/public/(.*)$", "target": "/$1", "destination": "backend", "authenticationType": "none"},
        {"source": "^/private/(.*)$", "target": "/$1", "destination": "backend",
         "authenticationType": "xsuaa", "csrfProtection": False}]

    async def start(host: str = "127.0.0.1", store: MemoryStore | None = None) -> TestClient[Any, Any]:
        settings = gateway_settings(tmp_path, routes, f"http://{host}:{upstream.port}", SECRET)
        return await aiohttp_client(create_app(settings, store=store))
    return start


# --- Location (PRX-14) --------------------------------------------------------------------------------

@pytest.mark.parametrize(("host", "location", "expected"), [
    pytest.param("127.0.0.1", "{origin}/x/y?a=1&b=%2F#top", "/x/y?a=1&b=%2F#top", id="upstream-origin"),
    pytest.param("localhost", "{origin}/x?a=1", "/x?a=1", id="destination-hostname"),
    pytest.param("127.0.0.1", "{origin}", "/", id="origin-without-path"),
    pytest.param("127.0.0.1", "HTTP://127.0.0.1:{port}/x", "/x", id="scheme-case"),
    pytest.param("127.0.0.1", "//127.0.0.1:{port}/x", "/x", id="scheme-relative"),
    pytest.param("127.0.0.1", "{origin}//evil.example/x", "/evil.example/x", id="no-double-slash-after"),
    pytest.param("127.0.0.1", "{origin}/\\evil.example/x", "/evil.example/x", id="no-backslash-after"),
    pytest.param("127.0.0.1", "https://idp.example/authorize?x=1", "https://idp.example/authorize?x=1",
                 id="other-origin"),
    pytest.param("127.0.0.1", "http://127.0.0.1:1/x", "http://127.0.0.1:1/x", id="same-host-other-port"),
    pytest.param("127.0.0.1", "https://127.0.0.1:{port}/x", "https://127.0.0.1:{port}/x",
                 id="same-host-other-scheme"),
    pytest.param("127.0.0.1", "/next?x=1#f", "/next?x=1#f", id="absolute-path"),
    pytest.param("127.0.0.1", "next", "next", id="relative-path"),
])
async def test_a_location_on_the_upstream_origin_becomes_a_gateway_path(
        start_gateway: StartGateway, upstream: TestServer, host: str, location: str, expected: str) -> None:
    gateway = await start_gateway(host=host)
    origin = f"http://{host}:{upstream.port}"
    answer_with(upstream, ("Location", location.format(origin=origin, port=upstream.port)))
    response = await gateway.get("/public/old", allow_redirects=False)
    assert response.status == 302
    assert response.headers.getall("Location") == [expected.format(origin=origin, port=upstream.port)]


# --- version banners (PRX-14) -------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value"), [
    pytest.param("Server", "Apache/2.4.41 (Ubuntu)", id="server"),
    pytest.param("X-Powered-By", "PHP/8.1.2", id="x-powered-by"),
    pytest.param("x-aspnet-version", "4.0.30319", id="x-aspnet-version"),
    pytest.param("X-AspNetMvc-Version", "5.2", id="x-aspnetmvc-version"),
])
async def test_version_headers_of_the_backend_are_dropped(start_gateway: StartGateway, upstream: TestServer,
                                                          name: str, value: str) -> None:
    gateway = await start_gateway()
    answer_with(upstream, (name, value), ("X-Backend", "kept"))
    response = await gateway.get("/public/page")
    assert response.status == 200
    assert name not in response.headers
    assert response.headers["X-Backend"] == "kept"


@pytest.mark.parametrize("path", ["/public/page", "/health", "/nowhere", "/private/page"],
                         ids=["forwarded", "own-page", "404", "401"])
async def test_no_response_names_the_gateways_software(start_gateway: StartGateway, path: str) -> None:
    """aiohttp would add ``Server: Python/3.x aiohttp/3.y`` to every answer of the gateway."""
    gateway = await start_gateway()
    response = await gateway.get(path, headers=XHR)
    assert "Server" not in response.headers, response.headers["Server"]


# --- the gateway's cookies (SES-16) -------------------------------------------------------------------

@pytest.mark.parametrize(("set_cookie", "passes"), [
    pytest.param(f"{COOKIE_NAME}={BACKEND_VALUE}; Path=/", False, id="session"),
    pytest.param(f"{COOKIE_NAME}=; Max-Age=0; Path=/", False, id="session-expired"),
    pytest.param(f"__Host-{COOKIE_NAME}={BACKEND_VALUE}; Path=/; Secure", False, id="host-prefixed"),
    pytest.param(f"__Secure-{COOKIE_NAME}={BACKEND_VALUE}; Secure", False, id="secure-prefixed"),
    pytest.param(f"{LOGIN_COOKIE}={BACKEND_VALUE}; Path=/", False, id="login"),
    pytest.param(f"\t {COOKIE_NAME}={BACKEND_VALUE}", False, id="leading-whitespace"),
    pytest.param(f"{COOKIE_NAME} ={BACKEND_VALUE}", False, id="space-before-equals"),
    pytest.param(f"{COOKIE_NAME}; Path=/", False, id="name-without-value"),
    pytest.param(f"{COOKIE_NAME.upper()}={BACKEND_VALUE}", True, id="other-case-is-another-cookie"),
    pytest.param(f"{COOKIE_NAME}x={BACKEND_VALUE}", True, id="longer-name"),
    pytest.param(f"theme=dark; Path=/; {COOKIE_NAME}=1", True, id="name-only-in-attributes"),
    pytest.param("JSESSIONID=backend-session; Path=/; HttpOnly", True, id="backend-session"),
])
async def test_a_backend_cannot_set_the_gateways_cookies(
        start_gateway: StartGateway, upstream: TestServer, caplog: pytest.LogCaptureFixture,
        set_cookie: str, passes: bool) -> None:
    gateway = await start_gateway()
    unrelated = "lang=de; Path=/"
    answer_with(upstream, ("Set-Cookie", set_cookie), ("Set-Cookie", unrelated))
    with caplog.at_level(logging.WARNING, logger="gateway.proxy"):
        response = await gateway.get("/public/page")
    assert response.status == 200
    sent = [value.strip() for value in response.headers.getall("Set-Cookie", [])]
    assert sent == ([set_cookie.strip(), unrelated] if passes else [unrelated])
    warnings = [record.getMessage() for record in caplog.records if record.name == "gateway.proxy"]
    assert len(warnings) == (0 if passes else 1), warnings
    assert BACKEND_VALUE not in caplog.text


async def test_the_session_survives_a_backend_that_tries_to_end_it(start_gateway: StartGateway,
                                                                   upstream: TestServer) -> None:
    """The browser's jar would apply the backend's Set-Cookie; the session must still work after."""
    store, sid = MemoryStore(), new_session_id()
    tokens = {"forward": "user-token", "refresh_token": None, "expires_at": time.time() + 3600,
              "scopes": [], "id_token": None}
    await store.set(sid, {"tokens": {"xsuaa": tokens}, "created": time.time()}, 900)
    gateway = await start_gateway(store=store)
    jar, signed = gateway.session.cookie_jar, sign_session_id(sid, SECRET.encode())
    jar.update_cookies({COOKIE_NAME: signed}, gateway.make_url("/"))
    answer_with(upstream, ("Set-Cookie", f"{COOKIE_NAME}=; Max-Age=0; Path=/"),
                ("Set-Cookie", f"{COOKIE_NAME}={BACKEND_VALUE}; Path=/; HttpOnly"),
                ("Set-Cookie", f"{LOGIN_COOKIE}=; Max-Age=0; Path=/"))
    first = await gateway.get("/private/logout-attempt", headers=XHR)
    assert first.status == 200
    assert {cookie.key: cookie.value for cookie in jar} == {COOKIE_NAME: signed}
    answer_with(upstream)
    again = await gateway.get("/private/page", headers=XHR)
    assert again.status == 200, await again.text()
    assert await again.text() == "from the backend"
