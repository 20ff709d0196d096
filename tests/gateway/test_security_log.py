"""LEAK-07: the gateway logs its security events (ASVS5 16.3.1-16.3.3): a login that succeeds, one
that fails or is refused, a CSRF refusal and a session cookie it did not sign; each line under the
request's correlation id, none with a token, a code, a state or a cookie value.

The real app (``create_app``) with the IdP's two calls replaced (``authorize_url`` and ``redeem``),
in front of an upstream that answers 200 to everything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpClient, AiohttpServer

from gateway.app import LOGIN_COOKIE, create_app
from gateway.oidc import CodeRefused, IdentityProvider, LoginFailed, Tokens
from gateway.sessions import COOKIE_NAME, MemoryStore, new_session_id, sign_session_id
from seccore.logs import correlation_id
from tests.gateway.conftest import gateway_settings

pytestmark = pytest.mark.asyncio

SECRET = "security-log-session-secret-0123456789abcdefghij"  # 48 characters
FORWARD = "eyJhbGciOiJSUzI1NiJ9.forwarded-token-not-for-logs.c2lnbmF0dXJl"
REFRESH = "refresh-token-not-for-logs"
CODE = "authorization-code-not-for-logs"
BROWSER = {"Accept": "text/html"}
Client = TestClient[Any, Any]


@pytest_asyncio.fixture
async def upstream(aiohttp_server: AiohttpServer) -> TestServer:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="from the backend")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    return await aiohttp_server(app)


@pytest.fixture
def idp(monkeypatch: pytest.MonkeyPatch) -> dict[str, Exception | None]:
    """The IdP's answer to the code: tokens, or ``idp["raises"]``; no network."""
    outcome: dict[str, Exception | None] = {"raises": None}

    async def authorize_url(self: IdentityProvider, redirect_uri: str, *, state: str, nonce: str,
                            code_verifier: str) -> str:
        return f"https://idp.example/authorize?state={state}"

    async def redeem(self: IdentityProvider, code: str, **_: str) -> Tokens:
        if outcome["raises"] is not None:
            raise outcome["raises"]
        return Tokens(forward=FORWARD, refresh_token=REFRESH, expires_at=time.time() + 3600,
                      scopes=("frontapp!t1.Display",), id_token=None, claims={"sub": "jane"})

    monkeypatch.setattr(IdentityProvider, "authorize_url", authorize_url)
    monkeypatch.setattr(IdentityProvider, "redeem", redeem)
    return outcome


@pytest.fixture
def start_gateway(aiohttp_client: AiohttpClient, upstream: TestServer,
                  tmp_path: Path) -> Callable[[MemoryStore], Awaitable[Client]]:
    routes = [{"source": "^/private/(.*)$", "target": "/$1", "destination": "backend",
               "authenticationType": "xsuaa", "csrfProtection": True}]

    async def start(store: MemoryStore) -> Client:
        settings = gateway_settings(tmp_path, routes, f"http://127.0.0.1:{upstream.port}", SECRET)
        return await aiohttp_client(create_app(settings, store=store))
    return start


@pytest.fixture
def events(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The gateway's records, each with the correlation id of its request (as the handler of
    gateway.__main__ adds it)."""
    def with_cid(record: logging.LogRecord) -> bool:
        record.cid = correlation_id.get()
        return True
    caplog.handler.addFilter(with_cid)
    with caplog.at_level(logging.INFO, logger="gateway"):
        yield caplog
    caplog.handler.removeFilter(with_cid)


def lines(caplog: pytest.LogCaptureFixture, response: Any) -> list[tuple[str, str]]:
    """(level, message) of the security records of ``response``'s request (not the access line)."""
    cid = response.headers["x-correlationid"]
    return [(r.levelname, r.getMessage()) for r in caplog.records
            if r.name == "gateway" and getattr(r, "cid", None) == cid
            and not r.getMessage().startswith(("GET ", "POST "))]


def assert_nothing_secret(caplog: pytest.LogCaptureFixture, *values: str) -> None:
    for value in (FORWARD, REFRESH, CODE, SECRET, *values):
        assert value not in caplog.text


async def start_login(gateway: Client) -> tuple[str, str]:
    """The state of a new login and the signed login cookie bound to it."""
    response = await gateway.get("/private/page", headers=BROWSER, allow_redirects=False)
    assert response.status == 302
    state = parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]
    return state, response.cookies[LOGIN_COOKIE].value


async def callback(gateway: Client, query: str, login_cookie: str) -> Any:
    return await gateway.get(f"/login/callback?{query}", headers=BROWSER, allow_redirects=False,
                             cookies={LOGIN_COOKIE: login_cookie})


async def test_a_login_that_succeeds_is_logged_without_its_tokens(
        start_gateway: Callable[[MemoryStore], Awaitable[Client]], idp: dict[str, Any],
        events: pytest.LogCaptureFixture) -> None:
    gateway = await start_gateway(MemoryStore())
    state, cookie = await start_login(gateway)
    response = await callback(gateway, f"state={state}&code={CODE}", cookie)
    assert response.status == 200  # the landing page, which sends the browser on
    assert lines(events, response) == [("INFO", "login succeeded (xsuaa)")]
    assert_nothing_secret(events, state, cookie, response.cookies[COOKIE_NAME].value)


@pytest.mark.parametrize(("failure", "query", "status", "expected"), [
    pytest.param(LoginFailed("the identity provider answered 500"), "code=" + CODE, 502,
                 "login failed: the identity provider answered 500", id="IdP failure"),
    pytest.param(CodeRefused("the identity provider refused the code (invalid_grant)"), "code=" + CODE, 400,
                 "login refused: the identity provider refused the code (invalid_grant)", id="code refused"),
    pytest.param(None, "error=access_denied&error_description=forged%0Aline", 403,
                 "login failed: the identity provider answered without a code", id="IdP error answer"),
    pytest.param(None, "", 403, "login failed: the identity provider answered without a code", id="no code"),
    pytest.param(None, "iss=https%3A%2F%2Fevil.example&code=" + CODE, 403,
                 "login refused: the authorization response names another issuer", id="other issuer"),
])
async def test_a_login_that_fails_is_logged_without_its_tokens(
        start_gateway: Callable[[MemoryStore], Awaitable[Client]], idp: dict[str, Any],
        events: pytest.LogCaptureFixture, failure: Exception | None, query: str, status: int,
        expected: str) -> None:
    gateway = await start_gateway(MemoryStore())
    state, cookie = await start_login(gateway)
    idp["raises"] = failure
    response = await callback(gateway, f"state={state}&{query}", cookie)
    assert response.status == status
    assert lines(events, response) == [("WARNING", expected)]
    assert "forged\nline" not in events.text  # the IdP's text is not copied into the log
    assert_nothing_secret(events, state, cookie)


@pytest.mark.parametrize(("state_of", "expected"), [
    pytest.param(lambda state: state + "x", "login refused: the callback's state is not this browser's",
                 id="state of another browser"),
    pytest.param(lambda state: "", "login refused: the callback's state is not this browser's",
                 id="no state"),
])
async def test_a_callback_of_another_browser_is_logged(
        start_gateway: Callable[[MemoryStore], Awaitable[Client]], idp: dict[str, Any],
        events: pytest.LogCaptureFixture, state_of: Callable[[str], str], expected: str) -> None:
    gateway = await start_gateway(MemoryStore())
    state, cookie = await start_login(gateway)
    response = await callback(gateway, f"state={state_of(state)}&code={CODE}", cookie)
    assert response.status == 400
    assert lines(events, response) == [("WARNING", expected)]
    assert_nothing_secret(events, state, cookie)


async def test_a_login_used_twice_is_logged(start_gateway: Callable[[MemoryStore], Awaitable[Client]],
                                            idp: dict[str, Any], events: pytest.LogCaptureFixture) -> None:
    gateway = await start_gateway(MemoryStore())
    state, cookie = await start_login(gateway)
    assert (await callback(gateway, f"state={state}&code={CODE}", cookie)).status == 200
    response = await callback(gateway, f"state={state}&code={CODE}", cookie)
    assert response.status == 400
    assert lines(events, response) == [("WARNING", "login refused: the login expired or was already used")]


async def session(store: MemoryStore) -> str:
    sid = new_session_id()
    await store.set(sid, {"created": time.time(), "tokens": {"xsuaa": {
        "forward": FORWARD, "refresh_token": None, "expires_at": time.time() + 3600,
        "scopes": ["frontapp!t1.Display"], "id_token": None}}}, 900)
    return sign_session_id(sid, SECRET.encode())


@pytest.mark.parametrize("header", [
    pytest.param({}, id="no token"),
    pytest.param({"x-csrf-token": "guessed-csrf-token"}, id="wrong token"),
])
async def test_a_csrf_refusal_is_logged(start_gateway: Callable[[MemoryStore], Awaitable[Client]],
                                        events: pytest.LogCaptureFixture, header: dict[str, str]) -> None:
    store = MemoryStore()
    gateway = await start_gateway(store)
    cookie = await session(store)
    response = await gateway.post("/private/change", headers=header, cookies={COOKIE_NAME: cookie})
    assert response.status == 403 and response.headers["x-csrf-token"] == "Required"
    assert lines(events, response) == [("WARNING", "request refused: no valid CSRF token")]
    assert_nothing_secret(events, cookie, "guessed-csrf-token")


@pytest.mark.parametrize("cookie_of", [
    pytest.param(lambda signed: signed[:-1] + ("A" if signed[-1] != "A" else "B"), id="MAC changed"),
    pytest.param(lambda signed: signed.partition(".")[0] + ".", id="MAC removed"),
    pytest.param(lambda signed: sign_session_id(new_session_id(), b"another gateway's secret 0123456789"),
                 id="signed with another secret"),
    pytest.param(lambda signed: signed.partition(".")[0], id="bare session id"),
])
async def test_a_forged_session_cookie_is_logged(start_gateway: Callable[[MemoryStore], Awaitable[Client]],
                                                 events: pytest.LogCaptureFixture,
                                                 cookie_of: Callable[[str], str]) -> None:
    store = MemoryStore()
    gateway = await start_gateway(store)
    forged = cookie_of(await session(store))
    response = await gateway.get("/private/page", headers={"X-Requested-With": "XMLHttpRequest"},
                                 cookies={COOKIE_NAME: forged})
    assert response.status == 401
    assert lines(events, response) == [("WARNING", "session cookie refused: not signed by this gateway")]
    assert_nothing_secret(events, forged)


async def test_a_session_that_ended_is_not_a_security_event(
        start_gateway: Callable[[MemoryStore], Awaitable[Client]], events: pytest.LogCaptureFixture) -> None:
    """A signed cookie whose session expired is routine: 401, no warning."""
    gateway = await start_gateway(MemoryStore())
    response = await gateway.get("/private/page", headers={"X-Requested-With": "XMLHttpRequest"},
                                 cookies={COOKIE_NAME: sign_session_id(new_session_id(), SECRET.encode())})
    assert response.status == 401
    assert lines(events, response) == []
