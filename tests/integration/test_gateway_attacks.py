"""Attacks on the gateway from the catalogue (../shared/reference/security-catalogue.md) that
need it running: a planted session (SES-01, OIDC-22), a login answer from another IdP (OIDC-08),
a forged Host (OIDC-11),
a logout forced by another site (SES-08) and methods no route should see (PRX-16)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from yarl import URL

from gateway.sessions import COOKIE_NAME, MemoryStore
from tests.integration.gateway_browser import browser, callback_of, csrf_token, login, logout
from tests.integration.gateway_stack import Stack, StartGateway, given, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_ses01_oidc22_a_planted_session_gives_the_victim_nothing_of_the_attackers(
        start_gateway: StartGateway) -> None:
    """The attacker logs in as john (XSUAA) and plants that session cookie in jane's browser;
    jane logs in via IAS. Her session must not carry john's XSUAA login, and the planted id dies."""
    stack = await start_gateway()
    async with browser(stack) as attacker, browser(stack) as victim:
        await login(attacker, stack, "/xsuaa/homepage", user="john")
        planted = session_cookie(attacker, stack)
        victim.cookie_jar.update_cookies({COOKIE_NAME: planted}, URL(stack.gateway))
        await login(victim, stack, "/homepage", user="jane")
        assert session_cookie(victim, stack) != planted  # a new id after the login
        async with victim.get(stack.gateway + "/xsuaa/homepage", allow_redirects=False) as other_idp:
            assert other_idp.status == 302, "jane's session served john's XSUAA login"
        async with attacker.get(stack.gateway + "/xsuaa/homepage", allow_redirects=False) as old:
            assert old.status == 302  # the planted id is dead: log in again


@pytest.mark.parametrize(("method", "status"), [
    ("TRACE", 405), ("PROPFIND", 405), ("MKCOL", 405),   # routed methods the gateway refuses
    # Verbs aiohttp's HTTP parser does not know end there with 400, before any routing.
    ("TRACK", 400), ("DEBUG", 400), ("FOO", 400),
    ("CONNECT", 404),  # origin-form CONNECT /homepage: no route for it
])
@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged in"])
async def test_prx16_unknown_and_dangerous_methods_are_refused_and_never_forwarded(
        start_gateway: StartGateway, method: str, status: int, logged_in: bool) -> None:
    stack = await start_gateway()
    async with browser(stack) as http:
        if logged_in:
            await login(http, stack, "/homepage")
        async with http.request(method, stack.gateway + "/homepage", allow_redirects=False) as answer:
            assert answer.status == status
            if status == 405:
                assert answer.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
    assert stack.echo.seen == []


async def test_prx16_a_raw_connect_request_is_refused(start_gateway: StartGateway) -> None:
    """CONNECT in authority form (``CONNECT host:port``), as a proxy client sends it."""
    stack = await start_gateway()
    origin = URL(stack.gateway)
    head = await _raw(origin.host or "", origin.port or 80,
                      b"CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n")
    assert head.split(b" ", 2)[1] in (b"400", b"404", b"405"), head
    assert stack.echo.seen == []


async def _raw(host: str, port: int, request: bytes) -> bytes:
    """Send ``request`` as bytes on a new connection; the response head."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    await writer.wait_closed()
    return head


async def alive(http: aiohttp.ClientSession, stack: Stack, path: str = "/homepage") -> bool:
    async with http.get(stack.gateway + path, allow_redirects=False) as page:
        return page.status == 200


@pytest.mark.parametrize(("method", "token", "status"), [
    pytest.param("GET", None, 404, id="GET: a link on another site"),
    pytest.param("POST", None, 403, id="POST without the token: a form on another site"),
    pytest.param("POST", "another session's", 403, id="POST with another session's token"),
    pytest.param("POST", "forged", 403, id="POST with a made-up token"),
])
async def test_ses08_another_site_cannot_log_the_user_out(start_gateway: StartGateway, method: str,
                                                         token: str | None, status: int) -> None:
    stack = await start_gateway()
    async with browser(stack) as http, browser(stack) as other:
        await login(http, stack, "/homepage")
        headers = {}
        if token == "another session's":
            await login(other, stack, "/homepage", user="john")
            headers["x-csrf-token"] = await csrf_token(other, stack)
        elif token == "forged":
            headers["x-csrf-token"] = "A" * 43
        async with http.request(method, stack.gateway + "/logout", headers=headers,
                                allow_redirects=False) as answer:
            assert answer.status == status
            if status == 403:
                assert answer.headers["x-csrf-token"] == "Required"
        assert await alive(http, stack)


async def test_ses08_the_page_s_logout_ends_the_session_and_names_the_idp_logout(
        start_gateway: StartGateway) -> None:
    stack = await start_gateway()
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        idp_logout = await logout(http, stack)
        assert idp_logout.startswith(stack.emulator.config.urls.browser + "/oauth2/logout?")
        assert not await alive(http, stack)


@pytest.mark.parametrize(("path", "iss", "status"), [
    pytest.param("/homepage", "https://evil.example", 403, id="IAS login, another issuer"),
    pytest.param("/xsuaa/homepage", "https://evil.example/oauth/token", 403, id="XSUAA, another issuer"),
    pytest.param("/homepage", "{ias}", 200, id="IAS login, its own issuer"),
    pytest.param("/xsuaa/homepage", "{xsuaa}/oauth/token", 200, id="XSUAA login, its own issuer"),
])
async def test_oidc08_an_authorization_response_from_another_issuer_is_refused(
        start_gateway: StartGateway, path: str, iss: str, status: int) -> None:
    stack = await start_gateway()
    urls = stack.emulator.config.urls
    issuer = iss.format(ias=urls.ias, xsuaa=urls.xsuaa_issuer.removesuffix("/oauth/token"))
    async with browser(stack) as http:
        callback = await callback_of(http, stack, path)
        # The emulator's answer carries its own iss: replaced, as an answer of another IdP would.
        async with http.get(URL(callback).update_query(iss=issuer), allow_redirects=False) as back:
            assert back.status == status
            assert ("another identity provider" in await back.text()) == (status == 403)
        assert await alive(http, stack, path) == (status == 200)


async def test_oidc08_an_authorization_response_naming_two_issuers_is_refused(
        start_gateway: StartGateway) -> None:
    stack = await start_gateway()
    async with browser(stack) as http:
        callback = await callback_of(http, stack, "/homepage")
        async with http.get(URL(callback).extend_query(iss="https://evil.example"),
                            allow_redirects=False) as back:
            assert back.status == 403
        assert not await alive(http, stack)


@pytest.mark.parametrize("headers", [
    pytest.param({"Host": "evil.example"}, id="Host"),
    pytest.param({"Host": "evil.example:443", "X-Forwarded-Host": "evil.example"}, id="both"),
])
async def test_oidc11_a_forged_host_gets_no_login_redirect_built_from_it(start_gateway: StartGateway,
                                                                        headers: dict[str, str]) -> None:
    stack = await start_gateway()
    async with browser(stack) as http, http.get(stack.gateway + "/homepage", headers=headers,
                                                allow_redirects=False) as answer:
        assert answer.status == 400 and "Location" not in answer.headers
        assert "evil.example" not in await answer.text()


async def test_oidc11_x_forwarded_host_is_never_believed(start_gateway: StartGateway) -> None:
    stack = await start_gateway(TRUSTED_PROXY_HOPS="1")
    async with browser(stack) as http, http.get(stack.gateway + "/homepage", allow_redirects=False,
                                                headers={"X-Forwarded-Host": "evil.example"}) as answer:
        assert answer.status == 302
        redirect_uri = URL(answer.headers["Location"]).query["redirect_uri"]
        assert redirect_uri == stack.gateway + "/login/callback"


# --- login transactions (OIDC-12, OIDC-16, OIDC-17, OIDC-18) ------------------------------------

async def test_oidc12_an_idp_error_is_a_generic_page_with_nothing_reflected(
        start_gateway: StartGateway) -> None:
    stack = await start_gateway()
    async with browser(stack) as http:
        callback = URL(await callback_of(http, stack, "/homepage"))
        failed = callback.with_query(state=callback.query["state"], error="access_denied",
                                     error_description="<script>alert(1)</script>")
        async with http.get(failed, allow_redirects=False) as page:
            assert page.status == 403
            text = await page.text()
        assert "did not log you in" in text and "<script>" not in text and "access_denied" not in text
        assert not await alive(http, stack)


async def test_oidc16_of_two_logins_started_in_two_tabs_the_last_completes_and_the_other_fails_cleanly(
        start_gateway: StartGateway) -> None:
    stack = await start_gateway()
    async with browser(stack) as http:
        first = await callback_of(http, stack, "/homepage")
        second = await callback_of(http, stack, "/xsuaa/homepage")  # the same browser: one login cookie
        async with http.get(first, allow_redirects=False) as stale:
            assert stale.status == 400 and "Open the page again" in await stale.text()
        async with http.get(second, allow_redirects=False) as done:
            assert done.status == 200
        assert await alive(http, stack, "/xsuaa/homepage")
        # One session cookie, the login cookie gone: nothing accumulates per started login.
        names = http.cookie_jar.filter_cookies(URL(stack.gateway))  # ports aside: the emulator's too
        assert {name for name in names if name.startswith("frontrouter")} == {COOKIE_NAME}


async def test_oidc17_a_login_transaction_that_is_gone_cannot_be_completed(
        start_gateway: StartGateway) -> None:
    store = await given(MemoryStore())
    stack = await start_gateway(store=store)
    async with browser(stack) as http:
        callback = URL(await callback_of(http, stack, "/homepage"))
        await store.delete(f"login:{callback.query['state']}")  # as after LOGIN_TTL_SECONDS (5 min)
        async with http.get(callback, allow_redirects=False) as late:
            assert late.status == 400 and "took too long" in await late.text()
        assert not await alive(http, stack)


@pytest.mark.parametrize(("path", "scope"), [("/homepage", "openid"), ("/xsuaa/homepage", None)])
async def test_oidc18_the_login_asks_for_openid_only(start_gateway: StartGateway, path: str,
                                                    scope: str | None) -> None:
    """IAS: openid. XSUAA: no scope parameter, so XSUAA grants the user's scopes of this app."""
    stack = await start_gateway()
    async with browser(stack) as http, http.get(stack.gateway + path, allow_redirects=False) as first:
        assert URL(first.headers["Location"]).query.get("scope") == scope


# --- cookies, CORS, headers (SES-02, SES-12, SES-17) --------------------------------------------

async def test_ses02_the_session_cookie_is_secure_httponly_lax_host_wide(start_gateway: StartGateway) -> None:
    stack = await start_gateway()
    async with browser(stack) as http:
        callback = await callback_of(http, stack, "/homepage")
        async with http.get(callback, allow_redirects=False) as done:
            cookies = [c for c in done.headers.getall("Set-Cookie") if c.startswith(COOKIE_NAME + "=")]
    (cookie,) = cookies
    attributes = {part.strip().split("=", 1)[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite", "path"} <= attributes and "domain" not in attributes
    assert "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "max-age" not in attributes and "expires" not in attributes  # a browser-session cookie


@pytest.mark.parametrize("origin", ["https://evil.example", "null"])
async def test_ses12_no_cross_origin_read_is_allowed(start_gateway: StartGateway, origin: str) -> None:
    stack = await start_gateway()
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        preflight = {"Origin": origin, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "x-csrf-token"}
        async with http.options(stack.gateway + "/homepage", headers=preflight) as answer:
            assert "Access-Control-Allow-Origin" not in answer.headers
        async with http.get(stack.gateway + "/homepage", headers={"Origin": origin}) as answer:
            assert "Access-Control-Allow-Origin" not in answer.headers
            assert "Access-Control-Allow-Credentials" not in answer.headers


@pytest.mark.parametrize(("proto", "hsts"), [("https", True), ("http", False)])
async def test_ses17_every_answer_carries_the_security_headers_and_hsts_over_https(
        start_gateway: StartGateway, proto: str, hsts: bool) -> None:
    stack = await start_gateway(TRUSTED_PROXY_HOPS="1")  # as behind the gorouter, which sets the proto
    async with browser(stack) as http:
        for path in ("/homepage", "/no-such-route", "/logout.html"):
            async with http.get(stack.gateway + path, headers={"X-Forwarded-Proto": proto},
                                allow_redirects=False) as answer:
                assert answer.headers["X-Content-Type-Options"] == "nosniff"
                assert answer.headers["Referrer-Policy"] == "no-referrer"
                assert "frame-ancestors" in answer.headers["Content-Security-Policy"]
                assert ("Strict-Transport-Security" in answer.headers) is hsts
                assert "Server" not in answer.headers


# --- request smuggling (PRX-07) -----------------------------------------------------------------

@pytest.mark.parametrize("head", [
    pytest.param(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", id="CL and TE"),
    pytest.param(b"Content-Length: 4\r\nContent-Length: 5\r\n", id="two different CL"),
    pytest.param(b"Transfer-Encoding: chunked, identity\r\n", id="TE chunked, identity"),
    pytest.param(b"Transfer-Encoding : chunked\r\n", id="space before colon"),
    pytest.param(b"Transfer-Encoding: xchunked\r\n", id="unknown coding"),
])
async def test_prx07_ambiguous_framing_is_400_and_nothing_reaches_the_upstream(start_gateway: StartGateway,
                                                                              head: bytes) -> None:
    stack = await start_gateway()
    origin = URL(stack.gateway)
    request = (b"POST /static/x HTTP/1.1\r\nHost: " + f"{origin.host}:{origin.port}".encode() + b"\r\n"
               + head + b"\r\n0\r\n\r\nGET /static/smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await _raw(origin.host or "", origin.port or 80, request)
    assert answer.split(b" ", 2)[1] in (b"400", b"405"), answer  # /static is GET/HEAD only: 405 at most
    assert not any("smuggled" in str(seen) for seen in stack.echo.seen)
