"""The gateway's request pipeline on real sockets, against the emulator, with an echo upstream
as the destination: what the upstream receives (header stripping), the scope check, the token
refresh (also under concurrency), the idle timeout, and the refusal of open redirects.

The gateway runs in the test's loop (tests/integration/gateway_stack.py), one instance per test
with the settings that test needs, on a port the emulator knows as a redirect origin.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import jwt
import pytest
from yarl import URL

from gateway.sessions import COOKIE_NAME, MemoryStore, unsign_session_id
from tests.integration.gateway_browser import browser, landing_target, login
from tests.integration.gateway_stack import SECRET, Stack, StartGateway, given, session_cookie
from tests.integration.gateway_upstreams import headers_of

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

JANE = "jane.doe@example.com"
#: A token lifetime below JWT_REFRESH (5 minutes = 300 s): the first request after the login
#: finds the token within the refresh margin. (At 360 s it would still be 60 s outside it.)
SHORT_LIFETIME_S = 240
LONG_LIFETIME_S = 3600
XHR = {"X-Requested-With": "XMLHttpRequest", "Accept": "application/json"}


def bearer_claims(record: dict[str, Any]) -> dict[str, Any]:
    scheme, _, token = headers_of(record)["Authorization"].partition(" ")
    assert scheme == "Bearer"
    return jwt.decode(token, options={"verify_signature": False})


async def emulator_call(http: aiohttp.ClientSession, stack: Stack, method: str, path: str,
                        body: dict[str, Any] | None = None) -> Any:
    async with http.request(method, stack.emulator.https + path, json=body) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


async def refresh_grants(http: aiohttp.ClientSession, stack: Stack, *, failed: bool = False) -> int:
    """How many refresh_token grants the emulator granted (or refused) so far (its request log)."""
    log = (await emulator_call(http, stack, "GET", "/_emu/requests"))["requests"]
    return sum(1 for r in log if r["grant_type"] == "refresh_token" and (r["status"] == 200) != failed)


@asynccontextmanager
async def short_lived_login(http: aiohttp.ClientSession, stack: Stack, path: str) -> AsyncIterator[None]:
    """Log in while the emulator issues tokens of SHORT_LIFETIME_S, then make it issue long-lived
    ones again: the next request refreshes, and the refreshed token needs no further refresh."""
    before = await emulator_call(http, stack, "POST", "/_emu/lifetimes", {})
    try:
        await emulator_call(http, stack, "POST", "/_emu/lifetimes",
                            {"ias": SHORT_LIFETIME_S, "xsuaa": SHORT_LIFETIME_S})
        await login(http, stack, path)
        await emulator_call(http, stack, "POST", "/_emu/lifetimes",
                            {"ias": LONG_LIFETIME_S, "xsuaa": LONG_LIFETIME_S})
        yield
    finally:
        await emulator_call(http, stack, "POST", "/_emu/lifetimes", before)


# --- what reaches the upstream ---------------------------------------------------------------------


async def test_the_upstream_gets_the_users_token_and_nothing_the_client_should_not_send(
        start_gateway: StartGateway) -> None:
    stack = await start_gateway()
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        cookie = session_cookie(http, stack)
    sent = [
        ("Accept", "application/json"), ("User-Agent", "behaviour-test"), ("X-Custom", "kept"),
        ("Authorization", "Basic eDp4"), ("x-csrf-token", "junk"),
        ("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Port", "443"), ("X-Forwarded-Path", "/admin"),
        ("Forwarded", "for=203.0.113.9;host=evil.example"), ("X-Real-IP", "203.0.113.9"),
        ("X_Forwarded_For", "203.0.113.10"), ("X-Original-URL", "/admin"),
        ("x-approuter-authorization", "Bearer stolen"), ("x-ias-token", "stolen"),
        ("x-custom-host", "evil.example"), ("Proxy-Authorization", "Basic eDp4"),
        ("Cookie", f"{COOKIE_NAME}={cookie}; other=1; frontrouter_login=junk"),
        ("Connection", "keep-alive, X-Hop"), ("X-Hop", "for this hop only"), ("Keep-Alive", "timeout=5"),
        ("x-correlationid", "not valid!"),
    ]
    # A client without a cookie jar or invented headers: exactly ``sent`` goes out (plus Host).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                     skip_auto_headers=("Accept-Encoding",)) as raw, \
            raw.get(stack.gateway + "/app/page?q=1", headers=sent) as answer:
        assert answer.status == 200, await answer.text()
        record = await answer.json()
    got = headers_of(record)
    assert record["method"] == "GET" and record["path"] == "/app/page?q=1"
    assert sorted(name.lower() for name in got) == sorted([
        "host", "accept", "user-agent", "x-custom", "cookie", "x-forwarded-for", "x-forwarded-proto",
        "x-forwarded-host", "x-forwarded-path", "x-correlationid", "authorization"]), got
    assert got["Accept"] == "application/json" and got["User-Agent"] == "behaviour-test"
    assert got["X-Custom"] == "kept"
    assert got["Cookie"] == "other=1"  # the gateway's own cookies stay with the gateway
    assert got["X-Forwarded-For"] == "127.0.0.1"  # TRUSTED_PROXY_HOPS=0: the socket's peer
    assert got["X-Forwarded-Proto"] == "http"
    assert got["X-Forwarded-Host"] == stack.gateway.removeprefix("http://")
    assert got["x-forwarded-path"] == "/app/page"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        got["x-correlationid"])  # the client's malformed one was replaced
    claims = bearer_claims(record)  # the user's IAS ID token, not the client's Basic credentials
    assert claims["email"] == JANE and claims["iss"] == stack.emulator.config.urls.ias


async def test_a_forwarded_page_carries_the_gateways_response_headers(start_gateway: StartGateway) -> None:
    stack = await start_gateway()
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        async with http.get(stack.gateway + "/homepage") as page:
            assert page.status == 200
            assert page.headers.get("X-Frame-Options") == "SAMEORIGIN"
            assert page.headers.get("X-Content-Type-Options") == "nosniff"
            assert page.headers.get("x-correlationid") == headers_of(await page.json())["x-correlationid"]


# --- scope ------------------------------------------------------------------------------------------


async def test_a_route_needing_a_scope_the_user_lacks_is_403_and_not_forwarded(
        start_gateway: StartGateway) -> None:
    stack = await start_gateway()
    async with browser(stack) as http:
        await login(http, stack, "/xsuaa/homepage")
        async with http.get(stack.gateway + "/xsuaa/homepage", headers=XHR) as allowed:
            assert allowed.status == 200  # jane has Display ...
            assert bearer_claims(await allowed.json())["email"] == JANE
        for method in ("GET", "POST"):
            async with http.request(method, stack.gateway + "/admin", headers=XHR,
                                    allow_redirects=False) as denied:
                assert denied.status == 403  # ... but not Admin
                assert (await denied.json())["status"] == 403
    assert [r["path"] for r in stack.echo.seen] == ["/homepage"]  # /admin never reached the upstream


# --- token refresh ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "kind"), [("/homepage", "ias"), ("/xsuaa/homepage", "xsuaa")])
async def test_a_token_close_to_expiry_is_refreshed_once(start_gateway: StartGateway, path: str,
                                                         kind: str) -> None:
    store = await given(MemoryStore())
    stack = await start_gateway(store=store, JWT_REFRESH="5")
    async with browser(stack) as http, short_lived_login(http, stack, path):
        sid = unsign_session_id(session_cookie(http, stack), SECRET.encode())
        assert sid is not None
        session = await store.get(sid)
        assert session is not None
        login_token = session["tokens"][kind]["forward"]
        grants = await refresh_grants(http, stack)
        async with http.get(stack.gateway + path, headers=XHR) as first:
            assert first.status == 200
            forwarded = headers_of(await first.json())["Authorization"]
        assert forwarded != f"Bearer {login_token}"  # refreshed before forwarding
        assert await refresh_grants(http, stack) == grants + 1
        claims = bearer_claims(stack.echo.seen[-1])
        assert claims["email"] == JANE
        assert claims["exp"] - claims["iat"] == LONG_LIFETIME_S  # the new token
        async with http.get(stack.gateway + path, headers=XHR) as second:
            assert headers_of(await second.json())["Authorization"] == forwarded  # kept
        assert await refresh_grants(http, stack) == grants + 1


async def test_concurrent_requests_of_one_session_share_one_refresh(start_gateway: StartGateway) -> None:
    stack = await start_gateway(JWT_REFRESH="5")
    async with browser(stack) as http, short_lived_login(http, stack, "/homepage"):
        grants = await refresh_grants(http, stack)

        async def one() -> str:
            async with http.get(stack.gateway + "/homepage", headers=XHR) as answer:
                assert answer.status == 200
                return headers_of(await answer.json())["Authorization"]

        forwarded = await asyncio.gather(*(one() for _ in range(10)))
        assert len(set(forwarded)) == 1  # every request forwarded the one refreshed token
        assert await refresh_grants(http, stack) == grants + 1


async def test_a_csrf_fetch_that_triggers_a_refresh_keeps_the_refreshed_tokens(
        start_gateway: StartGateway) -> None:
    stack = await start_gateway(JWT_REFRESH="5")
    async with browser(stack) as http, short_lived_login(http, stack, "/homepage"):
        grants = await refresh_grants(http, stack)
        async with http.get(stack.gateway + "/homepage", headers={**XHR, "x-csrf-token": "fetch"}) as fetched:
            assert fetched.status == 200 and fetched.headers["x-csrf-token"]
        assert await refresh_grants(http, stack) == grants + 1  # the fetch refreshed
        async with http.get(stack.gateway + "/homepage", headers=XHR) as page:
            assert page.status == 200
            claims = bearer_claims(await page.json())
        assert claims["exp"] - claims["iat"] == LONG_LIFETIME_S  # the refreshed token, not the login's
        assert await refresh_grants(http, stack, failed=True) == 0  # no refresh with a spent token
        assert await refresh_grants(http, stack) == grants + 1


async def test_create_app_uses_the_store_it_is_given(start_gateway: StartGateway) -> None:
    store = MemoryStore()
    stack = await start_gateway(store=store)
    async with browser(stack) as http, http.get(stack.gateway + "/homepage", allow_redirects=False) as first:
        assert first.status == 302
    assert len(store) == 1  # the pending login


# --- idle timeout -----------------------------------------------------------------------------------


async def test_an_idle_session_times_out_and_activity_keeps_it_alive(start_gateway: StartGateway) -> None:
    now = [1_000_000.0]
    stack = await start_gateway(store=await given(MemoryStore(clock=lambda: now[0])), SESSION_TIMEOUT="1")
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        for _ in range(3):  # 3 x 50 s > 60 s: the timeout is idle time, not session age
            now[0] += 50
            async with http.get(stack.gateway + "/homepage", headers=XHR) as active:
                assert active.status == 200
        now[0] += 61
        async with http.get(stack.gateway + "/homepage", allow_redirects=False) as page:
            assert page.status == 302
            authorize = stack.emulator.config.urls.browser + "/oauth2/authorize?"
            assert page.headers["Location"].startswith(authorize)
        async with http.get(stack.gateway + "/homepage", headers=XHR, allow_redirects=False) as xhr:
            assert xhr.status == 401


# --- open redirects ---------------------------------------------------------------------------------


async def _start_login(http: aiohttp.ClientSession, stack: Stack, path: str) -> str:
    """Open ``path`` without a session; the state the gateway gave this browser."""
    async with http.get(stack.gateway + path, allow_redirects=False) as first:
        assert first.status == 302
        state = re.search(r"[?&]state=([^&]+)", first.headers["Location"])
    assert state is not None
    return state[1]


async def test_a_callback_with_a_state_not_issued_to_this_browser_is_refused(
        start_gateway: StartGateway) -> None:
    stack = await start_gateway()
    callback = stack.gateway + "/login/callback"
    async with browser(stack) as victim, browser(stack) as attacker:
        await _start_login(victim, stack, "/homepage")
        attackers_state = await _start_login(attacker, stack, "/app/?to=https://evil.example/")
        for http, state in ((victim, attackers_state), (victim, "forged"), (attacker, "forged")):
            async with http.get(callback, params={"state": state, "code": "stolen"},
                                allow_redirects=False) as answer:
                assert answer.status == 400
                assert "Location" not in answer.headers
        async with victim.get(callback, params={"code": "stolen"}, allow_redirects=False) as answer:
            assert answer.status == 400 and "Location" not in answer.headers


@pytest.mark.parametrize("path", ["//evil.example/", "//evil.example/%2e%2e", "/%2F%2Fevil.example/",
                                  "/%5Cevil.example/", "/\\evil.example/", "/.//evil.example/"])
async def test_a_path_that_a_browser_would_read_as_another_host_is_refused(
        start_gateway: StartGateway, path: str) -> None:
    stack = await start_gateway()
    async with browser(stack) as http, \
            http.get(URL(stack.gateway + path, encoded=True), allow_redirects=False) as answer:
        assert answer.status == 400
        assert "Location" not in answer.headers
    assert stack.echo.seen == []


async def test_after_login_the_browser_returns_only_to_the_path_it_asked_for(
        start_gateway: StartGateway) -> None:
    stack = await start_gateway()
    asked = "/app/page?next=https%3A%2F%2Fevil.example%2F"
    async with browser(stack) as http:
        # The same dance as login(), but the callback carries where an attacker would like to go.
        async with http.get(URL(stack.gateway + asked, encoded=True), allow_redirects=False) as first:
            authorize = first.headers["Location"]
        async with http.get(authorize, allow_redirects=False) as page:
            request_id = re.search(r'name="request" value="([^"]+)"', await page.text())
        assert request_id is not None
        action = authorize.split("/oauth", 1)[0] + "/oauth2/login"
        async with http.post(action, data={"request": request_id[1], "user": "jane"},
                             allow_redirects=False) as done:
            callback = done.headers["Location"]
        extra = "&return_to=https%3A%2F%2Fevil.example%2F&redirect_uri=https%3A%2F%2Fevil.example%2F"
        async with http.get(URL(callback + extra, encoded=True), allow_redirects=False) as back:
            assert back.status == 200 and "Location" not in back.headers
            assert landing_target(await back.text()) == asked  # a path on this origin: no scheme, no "//"
        async with http.get(URL(callback, encoded=True), allow_redirects=False) as replay:
            assert replay.status == 400 and "Location" not in replay.headers  # the state is single use
        async with http.get(stack.gateway + "/", allow_redirects=False) as welcome:
            assert welcome.headers["Location"] == "/homepage"


@pytest.mark.parametrize(("age_s", "status"), [
    pytest.param(60, 200, id="a minute old"),
    pytest.param(8 * 3600 - 60, 200, id="just under 8 h"),
    pytest.param(8 * 3600 + 60, 302, id="just over 8 h: log in again"),
])
async def test_ses06_an_active_session_ends_8_hours_after_its_login(start_gateway: StartGateway,
                                                                    age_s: int, status: int) -> None:
    store = await given(MemoryStore())
    stack = await start_gateway(store=store)
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        sid = unsign_session_id(session_cookie(http, stack), SECRET.encode())
        assert sid is not None
        session = await store.get(sid)
        assert session is not None
        session["created"] -= age_s  # as if the login was that long ago (activity since: no idling)
        await store.set(sid, session, 900)
        async with http.get(stack.gateway + "/homepage", allow_redirects=False) as page:
            assert page.status == status
        assert (await store.get(sid) is None) == (status == 302)  # an expired session is deleted


@pytest.mark.parametrize(("path", "kind"), [("/homepage", "ias"), ("/xsuaa/homepage", "xsuaa")])
@pytest.mark.parametrize(("answer", "ended"), [
    pytest.param({"status": 400, "json": {"error": "invalid_grant", "error_description": "revoked"}}, True,
                 id="OIDC-19 refresh refused: the session ends now"),
    pytest.param({"status": 503, "json": {"error": "temporarily_unavailable"}}, False,
                 id="F-27 IdP unavailable: the token serves on"),
])
async def test_oidc19_ses14_a_refused_refresh_ends_the_session_an_outage_does_not(
        start_gateway: StartGateway, path: str, kind: str, answer: dict[str, Any], ended: bool) -> None:
    store = await given(MemoryStore())
    stack = await start_gateway(store=store, JWT_REFRESH="5")
    async with browser(stack) as http, short_lived_login(http, stack, path):
        sid = unsign_session_id(session_cookie(http, stack), SECRET.encode())
        fault = {"endpoint": f"{kind}.token", "count": 1, **answer}
        await emulator_call(http, stack, "POST", "/_emu/faults", fault)
        try:
            async with http.get(stack.gateway + path, headers=XHR, allow_redirects=False) as page:
                assert page.status == (401 if ended else 200)
        finally:
            await emulator_call(http, stack, "DELETE", "/_emu/faults")
        assert (await store.get(sid or "") is None) is ended
