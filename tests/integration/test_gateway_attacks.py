"""Attacks on the gateway from the catalogue (../shared/reference/security-catalogue.md) that
need it running: a planted session (SES-01, OIDC-22), a login answer from another IdP (OIDC-08),
a forged Host (OIDC-11), an injected code (OIDC-06), leaks of codes and secrets (OIDC-13,
OIDC-20), forged cookies (SES-04), a logout forced by another site (SES-08), CSRF tricks
(SES-11), a flood of started logins (SES-13) and methods no route should see (PRX-16)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import aiohttp
import pytest
import requests
from yarl import URL

from gateway.app import LOGIN_COOKIE, LOGIN_TTL_SECONDS
from gateway.sessions import COOKIE_NAME, MemoryStore, sign_session_id
from tests.gateway.conftest import RedisServer
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


@pytest.mark.parametrize("path", ["/app/orders", "/logout"])  # /app/: a prefix route, so a query matches
@pytest.mark.parametrize(("headers", "params", "data"), [
    pytest.param({"X-HTTP-Method-Override": "GET"}, {}, None, id="X-HTTP-Method-Override"),
    pytest.param({"X-Method-Override": "GET"}, {}, None, id="X-Method-Override"),
    pytest.param({"X-HTTP-Method": "GET"}, {}, None, id="X-HTTP-Method"),
    pytest.param({}, {"_method": "GET"}, None, id="_method query"),
    pytest.param({}, {}, {"_method": "GET"}, id="_method form field"),
    pytest.param({"Origin": "null"}, {}, None, id="Origin null"),
    pytest.param({"Origin": "null", "Content-Type": "text/plain"}, {}, "a=b", id="Origin null, text/plain"),
])
async def test_ses11_a_post_without_the_csrf_token_is_refused_whatever_method_it_claims(
        start_gateway: StartGateway, path: str, headers: dict[str, str], params: dict[str, str],
        data: Any) -> None:
    stack = await start_gateway()
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        forwarded = len(stack.echo.seen)
        async with http.post(stack.gateway + path, headers=headers, params=params, data=data,
                             allow_redirects=False) as answer:
            assert answer.status == 403
            assert answer.headers["x-csrf-token"] == "Required"
        assert len(stack.echo.seen) == forwarded  # nothing reached the app
        assert await alive(http, stack)  # and the logout did not happen


async def test_ses11_a_get_that_claims_another_method_is_forwarded_as_the_get_it_is(
        start_gateway: StartGateway) -> None:
    """The gateway reads no override (no CSRF check skipped or added); the app gets a GET."""
    stack = await start_gateway()
    overrides = {name: "DELETE" for name in ("X-HTTP-Method-Override", "X-Method-Override", "X-HTTP-Method")}
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        async with http.get(stack.gateway + "/app/orders", params={"_method": "DELETE"},
                            headers=overrides) as answer:
            assert answer.status == 200
    assert [seen["method"] for seen in stack.echo.seen] == ["GET"]


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


def emulator_admin(stack: Stack, method: str, path: str, body: object = None) -> None:
    """A call of the emulator's admin API (its fault switch and claim overrides)."""
    answer = requests.request(method, f"{stack.emulator.https}/_emu{path}", json=body, timeout=10,
                              verify=str(stack.emulator.pki.ca_file))
    assert answer.status_code == 200, answer.text


@contextmanager
def token_endpoint_fault(stack: Stack, kind: str, status: int) -> Iterator[None]:
    """The IdP's token endpoint answers ``status`` (an outage) while inside."""
    emulator_admin(stack, "POST", "/faults", {"endpoint": f"{kind}.token", "status": status})
    try:
        yield
    finally:
        emulator_admin(stack, "DELETE", "/faults")


REFUSED_CODE = "The login could not be completed. Start again."
IDP_FAILED = "The identity provider could not complete the login. Try again."


@pytest.mark.parametrize("path", ["/homepage", "/xsuaa/homepage"], ids=["IAS", "XSUAA"])
@pytest.mark.parametrize(("code", "outage", "status", "words"), [
    pytest.param("another browser's", None, 400, REFUSED_CODE, id="another browser's code"),
    pytest.param("made up", None, 400, REFUSED_CODE, id="a made-up code"),
    pytest.param("its own", 503, 502, IDP_FAILED, id="its own code, token endpoint down"),
])
async def test_oidc06_a_code_that_is_not_this_login_s_is_a_400_and_leaves_no_session(
        start_gateway: StartGateway, path: str, code: str, outage: int | None, status: int,
        words: str) -> None:
    """The attacker's code in the victim's callback (with the victim's own state): the token
    endpoint refuses it (PKCE verifier of another login: invalid_grant). An outage stays 502."""
    stack = await start_gateway()
    kind = "xsuaa" if path.startswith("/xsuaa") else "ias"
    async with browser(stack) as attacker, browser(stack) as victim:
        callback = URL(await callback_of(victim, stack, path))
        if code == "another browser's":  # john's login, stopped before its callback
            value = URL(await callback_of(attacker, stack, path, user="john")).query["code"]
        elif code == "made up":
            value = secrets.token_urlsafe(32)
        else:
            value = callback.query["code"]
        with token_endpoint_fault(stack, kind, outage) if outage else nullcontext():
            async with victim.get(callback.update_query(code=value), allow_redirects=False) as answer:
                assert answer.status == status
                assert words in await answer.text()
                set_cookies = answer.headers.getall("Set-Cookie", [])
                assert not any(c.startswith(COOKIE_NAME + "=") for c in set_cookies)
        assert not await alive(victim, stack, path)


@pytest.mark.parametrize("path", ["/homepage", "/xsuaa/homepage"], ids=["IAS", "XSUAA"])
async def test_oidc13_the_login_redirect_and_the_callback_s_answers_send_no_referrer_and_are_not_stored(
        start_gateway: StartGateway, path: str) -> None:
    """The callback URL carries the code and state: the page it answers with (the landing page,
    or an error page) must not pass that URL on as a Referer, nor be cached."""
    stack = await start_gateway()
    answers: list[tuple[str, int, Any]] = []
    async with browser(stack) as http:
        async with http.get(stack.gateway + path, allow_redirects=False) as redirect:
            answers.append(("login redirect", redirect.status, redirect.headers.copy()))
        callback = await callback_of(http, stack, path)
        for name in ("landing page", "the same answer again"):
            async with http.get(callback, allow_redirects=False) as answer:
                answers.append((name, answer.status, answer.headers.copy()))
    assert [status for _, status, _ in answers] == [302, 200, 400]
    for name, _, headers in answers:
        assert headers["Referrer-Policy"] == "no-referrer", name
        assert headers["Cache-Control"] == "no-store", name
        assert "Location" not in headers or name == "login redirect"


async def test_oidc20_the_client_secrets_are_in_no_url_page_or_log_line_of_the_gateway(
        start_gateway: StartGateway, caplog: pytest.LogCaptureFixture) -> None:
    """Both logins, a refused code and both logouts: the secrets go only to the token endpoint."""
    caplog.set_level(logging.DEBUG)
    stack = await start_gateway()
    services = json.loads(stack.emulator.vcap_services)
    client_secrets = [services[label][0]["credentials"]["clientsecret"] for label in ("xsuaa", "identity")]
    shown: list[str] = []  # every URL, header and page the browser got from the gateway
    for path in ("/homepage", "/xsuaa/homepage"):
        async with browser(stack) as other:  # its IdP session would sign the next login in at once
            callback = URL(await callback_of(other, stack, path))
            async with other.get(callback.update_query(code="made-up"), allow_redirects=False) as refused:
                shown += [str(refused.headers), await refused.text()]
        async with browser(stack) as http:
            async with http.get(stack.gateway + path, allow_redirects=False) as redirect:
                shown += [str(redirect.headers), await redirect.text()]
            callback = URL(await callback_of(http, stack, path))
            async with http.get(callback, allow_redirects=False) as landing:
                shown += [str(landing.headers), await landing.text()]
            token = await csrf_token(http, stack, path)
            async with http.post(stack.gateway + "/logout", headers={"x-csrf-token": token}) as out:
                assert out.status == 200
                shown += [str(out.headers), await out.text()]  # the IdP logout URL to go to
    logged = "\n".join(r.getMessage() for r in caplog.records
                       if not r.name.startswith(("emulator", "werkzeug")))  # the IdP's own log aside
    assert "/oauth2/logout?" in "".join(shown) and "/logout.do?" in "".join(shown)
    assert "login refused" in logged  # the gateway's log was captured
    for secret in client_secrets:
        assert secret and secret not in "".join(shown) and secret not in logged


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


def _sid(genuine: str) -> str:
    return genuine.partition(".")[0]


def _mac(genuine: str) -> str:
    return genuine.partition(".")[2]


#: cookie values an attacker can send, made from a genuine ``<sid>.<mac>`` value
FORGERIES: dict[str, Callable[[str], bytes]] = {
    "random": lambda _: secrets.token_urlsafe(64).encode(),
    "well-formed, random MAC": lambda v: f"{_sid(v)}.{secrets.token_urlsafe(32)}".encode(),
    "truncated": lambda v: v[:-1].encode(),
    "MAC only": lambda v: _mac(v).encode(),
    "id only": lambda v: _sid(v).encode(),
    "a third part": lambda v: f"{v}.x".encode(),
    "re-signed with another secret": lambda v: sign_session_id(_sid(v), b"another-secret-" * 4).encode(),
    "empty": lambda _: b"",
    "huge (6 KB)": lambda _: b"A" * 6000,
    "non-ASCII (UTF-8)": lambda v: f"{_sid(v)}\u00e9.{_mac(v)}".encode(),
    "non-ASCII (Latin-1)": lambda v: f"{_sid(v)}\u00e9.{_mac(v)}".encode("latin-1"),
    "percent-encoded dot": lambda v: f"{_sid(v)}%2E{_mac(v)}".encode(),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_ses04_a_forged_session_cookie_is_no_session_never_a_500(start_gateway: StartGateway,
                                                                       forgery: str) -> None:
    """Browser GET: the login redirect; XHR and POST: 401. The genuine session lives on."""
    stack = await start_gateway()
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        cookie = FORGERIES[forgery](session_cookie(http, stack))
        statuses = [await _status_with_cookie(stack, cookie, extra)
                    for extra in (b"", b"X-Requested-With: XMLHttpRequest\r\n")]
        assert statuses == [302, 401]
        assert await alive(http, stack)


async def test_ses04_a_cookie_header_over_the_size_limit_is_a_400(start_gateway: StartGateway) -> None:
    stack = await start_gateway()
    assert await _status_with_cookie(stack, b"A" * 20_000) == 400


async def _status_with_cookie(stack: Stack, cookie: bytes, headers: bytes = b"") -> int:
    """The status of ``GET /homepage`` with ``cookie`` as the session cookie's raw bytes."""
    port = str(URL(stack.gateway).port).encode()
    head = await _raw("127.0.0.1", int(port), b"GET /homepage HTTP/1.1\r\nHost: localhost:" + port + b"\r\n"
                      + b"Cookie: " + COOKIE_NAME.encode() + b"=" + cookie + b"\r\n" + headers + b"\r\n")
    return int(head.split(b" ", 2)[1])


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


# --- pending logins (SES-13) --------------------------------------------------------------------

FLOOD = 100


async def start_logins(http: aiohttp.ClientSession, stack: Stack, count: int) -> list[str]:
    """``count`` anonymous browser GETs of a protected page: the states of the logins started."""
    states = []
    for _ in range(count):
        async with http.get(stack.gateway + "/homepage", allow_redirects=False) as redirect:
            assert redirect.status == 302
            assert len(redirect.headers.getall("Set-Cookie")) == 1  # the login cookie, nothing more
            states.append(URL(redirect.headers["Location"]).query["state"])
    return states


def gateway_cookies(http: aiohttp.ClientSession, stack: Stack) -> dict[str, str]:
    jar = http.cookie_jar.filter_cookies(URL(stack.gateway))
    return {name: morsel.value for name, morsel in jar.items() if name.startswith("frontrouter")}


async def test_ses13_pending_logins_in_memory_expire_after_5_minutes_and_cookies_do_not_grow(
        start_gateway: StartGateway) -> None:
    now = [1000.0]
    store = await given(MemoryStore(clock=lambda: now[0]))
    stack = await start_gateway(store=store)
    async with browser(stack) as http:
        states = await start_logins(http, stack, FLOOD)
        cookies = gateway_cookies(http, stack)
        assert list(cookies) == [LOGIN_COOKIE] and len(cookies[LOGIN_COOKIE]) < 100  # the last state only
        assert len(store) == FLOOD and len(set(states)) == FLOOD
        now[0] += LOGIN_TTL_SECONDS - 1
        assert all([await store.get(f"login:{state}") is not None for state in states])
        now[0] += 1
        assert not any([await store.get(f"login:{state}") for state in states])
        assert len(store) == 0


async def test_ses13_the_memory_store_bound_holds_against_a_flood_of_started_logins(
        start_gateway: StartGateway) -> None:
    store = await given(MemoryStore(max_sessions=10))
    stack = await start_gateway(store=store)
    async with browser(stack) as http:
        await start_logins(http, stack, FLOOD)
        assert len(store) == 10
        callback = URL(await callback_of(http, stack, "/homepage"))  # the newest login still completes
        async with http.get(callback, allow_redirects=False) as done:
            assert done.status == 200


async def test_ses13_pending_logins_in_redis_expire_after_5_minutes(start_gateway: StartGateway,
                                                                    throwaway_redis: RedisServer) -> None:
    stack = await start_gateway(SESSION_STORE_URL=throwaway_redis.url)
    client = throwaway_redis.client()
    try:
        async with browser(stack) as http:
            states = await start_logins(http, stack, FLOOD)
            keys = [key async for key in client.scan_iter(match="*login:*")]
            assert {key.decode().rsplit("login:", 1)[1] for key in keys} == set(states)
            ttls = [await client.ttl(key) for key in keys]
            assert all(0 < ttl <= LOGIN_TTL_SECONDS for ttl in ttls), ttls  # -1 would be: never
            await login(http, stack, "/homepage")  # a completed login leaves no entry behind
            assert len([key async for key in client.scan_iter(match="*login:*")]) == FLOOD
    finally:
        await client.aclose()


@pytest.mark.parametrize(("hops", "proto", "status", "redirect_uri"), [
    pytest.param("0", None, 400, None, id="plain http, no proxy: no login"),
    pytest.param("1", "http", 400, None, id="the router says http: no login"),
    pytest.param("1", "https", 302, "https://app.example.com/login/callback", id="the router says https"),
])
async def test_oidc21_a_login_redirect_uri_is_never_plain_http_off_loopback(
        start_gateway: StartGateway, hops: str, proto: str | None, status: int,
        redirect_uri: str | None) -> None:
    stack = await start_gateway(PUBLIC_HOSTS="app.example.com", TRUSTED_PROXY_HOPS=hops)
    headers = {"Host": "app.example.com", **({"X-Forwarded-Proto": proto} if proto else {})}
    async with browser(stack) as http, http.get(stack.gateway + "/homepage", headers=headers,
                                                allow_redirects=False) as answer:
        assert answer.status == status
        if redirect_uri:
            assert URL(answer.headers["Location"]).query["redirect_uri"] == redirect_uri
        else:
            assert "plain http" in await answer.text() and "Location" not in answer.headers
