"""What a person does with a session, through the gateway and the emulator: logs out (IAS and
XSUAA) with the page's Log out button, which goes to the gateway's logout endpoint (xs-app.json
``logout``: a GET, or a POST with the CSRF token, as ``logoutMethod`` says), the IdP's
end-session and the logout page; after that neither Back, nor the old session cookie, nor the
IdP's single sign-on shows the claims page again. Comes back after the idle timeout, logs in
again and lands on the page (and query) they asked for. Lacks the CPI role and reads the
diagnosis with its fix.

The idle timeout. ``SESSION_TIMEOUT`` is minutes (approuter), and a minute is too long to wait.
``./dev run`` passes its environment on to the gateway (``emulator/local_run.py``, ``_environ``),
and the gateway also takes a decimal fraction (``gateway/settings.py``: ``0.05`` = 3 s), so the
timeout test gets a stack of its own (module scope, with its own Chromium trusting its CA) with
``SESSION_TIMEOUT=0.05``; the other tests keep the default 15 minutes, where no slow step can
log them out. The expiry cannot be polled for: every request that carries the session cookie
slides the timeout, so asking "expired yet?" would keep the session alive. The test lets the 3 s
pass once, counted from the last response of the session, and this wait is what the test is
about, not a synchronisation. Removing the session cookie in the browser instead would test
nothing of the gateway. Its routes are the shipped ones with the IAS route's ``source`` also
matching a query (approuter tests ``source`` against path and query: the shipped ``^/homepage$``
answers ``/homepage?x=1`` with 404), to see the query survive the new login.

The IdP keeps its own single sign-on session (8 h in the emulator), so after the gateway's
timeout a real browser goes through the IdP and straight back. The timeout test removes that IdP
cookie, as when the IdP's session has ended too, to see the login page; the gateway's own
cookie stays in the browser and is sent, so it is the gateway that sends the browser to log in.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Request, Response, expect

from tests.browser import driver
from tests.browser.driver import LOGIN_TITLES, login, screenshot
from tests.integration.local_stack import LocalStack, local_stack
from tests.integration.processes import ROOT

pytestmark = pytest.mark.integration

JANE = "jane.doe@example.com"
SESSION_COOKIE = "frontrouter_session"  # gateway/sessions.py
IAS_SESSION_COOKIE = "ias_session"  # emulator/login.py: the IdP's single sign-on
LOGOUT = "/logout"  # gateway/xs-app.json logout.logoutEndpoint
LOGOUT_PAGE = "/logout.html"  # logout.logoutPage
#: The IdPs' end-session endpoints (emulator/login.py)
END_SESSION = {"ias": "/oauth2/logout", "xsuaa": "/logout.do"}
LOGGED_OUT = "You are logged out."
#: SESSION_TIMEOUT of the timeout test's stack, in minutes, and what the gateway makes of it
IDLE_TIMEOUT = "0.05"
IDLE_TIMEOUT_S = round(float(IDLE_TIMEOUT) * 60)
#: Beyond the timeout, for the gateway's clock reading (it compares "expires <= now")
IDLE_MARGIN_S = 0.5
#: (path, IdP, password) of each login route; no password: the user's button
ROUTES = [pytest.param("/homepage", "ias", None, id="ias"),
          pytest.param("/xsuaa/homepage", "xsuaa", "jane", id="xsuaa")]


def session_cookie(context: BrowserContext) -> dict[str, Any] | None:
    """The gateway's session cookie as the browser holds it, or None."""
    return next((dict(c) for c in context.cookies() if c["name"] == SESSION_COOKIE), None)


def text_outside_forms(page: Page) -> str:
    """The page's text without its forms: the IdP's login form lists every user's e-mail."""
    return page.locator("body").evaluate(
        "body => { const copy = body.cloneNode(true); copy.querySelectorAll('form').forEach(f => f.remove());"
        " return copy.textContent; }")


def assert_no_claims_shown(page: Page, idp: str) -> None:
    """The IdP's login page or the gateway's logout page, and nothing of the claims page."""
    expect(page.get_by_role("heading", level=1, name=LOGIN_TITLES[idp], exact=True)
           .or_(page.get_by_text(LOGGED_OUT, exact=True))).to_be_visible()
    expect(page.locator("#comparison, #flow, #diagnosis")).to_have_count(0)
    assert JANE not in text_outside_forms(page), page.url


def redirects(response: Response) -> list[Request]:
    """The requests of ``response``'s navigation, first to last (the redirects it followed)."""
    chain: list[Request] = []
    request: Request | None = response.request
    while request is not None:
        chain.append(request)
        request = request.redirected_from
    return chain[::-1]


@contextmanager
def replayed(browser: Browser, cookie: dict[str, Any]) -> Iterator[Page]:
    """A tab of a fresh profile whose only cookie is ``cookie``: another browser replaying it."""
    other = driver.new_context(browser)
    try:
        other.add_cookies([cookie])  # type: ignore[list-item]
        yield other.new_page()
    finally:
        other.close()


@pytest.mark.parametrize(("path", "idp", "password"), ROUTES)
def test_after_logout_neither_back_nor_the_old_cookie_nor_single_sign_on_shows_the_claims(
        browser: Browser, context: BrowserContext, page: Page, gateway: str,
        path: str, idp: str, password: str | None) -> None:
    login(page, gateway, path, user="jane", idp=idp, password=password)
    expect(page.locator("#comparison")).to_contain_text(JANE)
    cookie = session_cookie(context)
    assert cookie is not None, context.cookies()
    with replayed(browser, cookie) as other:  # the control: the live cookie is a login elsewhere
        other.goto(gateway + path)
        expect(other.locator("#comparison")).to_contain_text(JANE)

    with page.expect_request(lambda r: r.url == gateway + LOGOUT), \
            page.expect_response(lambda r: r.url == gateway + LOGOUT_PAGE) as logged_out:
        page.get_by_role("button", name="Log out").click()
    page.wait_for_url(gateway + LOGOUT_PAGE, wait_until="load")
    chain = [request.url.split("?")[0] for request in redirects(logged_out.value)]
    assert any(url.endswith(END_SESSION[idp]) for url in chain), chain  # the IdP's session ended there
    assert logged_out.value.status == 200 and logged_out.value.headers.get("cache-control") == "no-store"
    expect(page.get_by_text(LOGGED_OUT, exact=True)).to_be_visible()
    screenshot(page, f"session-{idp}-logged-out")
    assert session_cookie(context) is None, "the gateway's session cookie outlived the logout"

    page.go_back()  # (a) the page before the logout: asked for again, not shown from a cache
    screenshot(page, f"session-{idp}-logged-out-back")
    assert_no_claims_shown(page, idp)

    with replayed(browser, cookie) as other:  # (b) the old cookie, sent from another browser
        other.goto(gateway + path)
        expect(other.get_by_role("heading", level=1)).to_have_text(LOGIN_TITLES[idp])
        screenshot(other, f"session-{idp}-old-cookie-replayed")
        assert_no_claims_shown(other, idp)

    page.goto(gateway + path)  # (c) the IdP's session ended too: no single sign-on
    expect(page.get_by_role("heading", level=1)).to_have_text(LOGIN_TITLES[idp])
    assert not page.url.startswith(gateway), page.url
    screenshot(page, f"session-{idp}-logged-out-login-again")
    assert_no_claims_shown(page, idp)


def test_a_user_without_the_cpi_role_reads_the_diagnosis_and_its_fix(page: Page, gateway: str) -> None:
    landed = login(page, gateway, "/homepage", user="john", idp="ias")
    screenshot(page, "session-ias-john-diagnosis")
    assert landed.status == 403
    diagnosis = page.locator("#diagnosis")
    expect(diagnosis).to_be_in_viewport()  # first thing on the page, no scrolling
    expect(diagnosis.get_by_role("heading")).to_contain_text("lacks the CPI role Ntif.Read")
    expect(diagnosis).to_contain_text(
        re.compile(r"Fix:\s*add the role Ntif\.Read to a role collection mapped to the user's group"))


@pytest.fixture(scope="module")
def idle_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """``./dev run`` with SESSION_TIMEOUT=0.05 (3 s) and the IAS route open to a query."""
    folder = tmp_path_factory.mktemp("idle-timeout")
    routes = json.loads((ROOT / "gateway" / "xs-app.json").read_text(encoding="utf-8"))
    homepage = next(r for r in routes["routes"] if r["source"] == "^/homepage$")
    homepage["source"] = r"^/homepage(\?.*)?$"
    (folder / "xs-app.json").write_text(json.dumps(routes), encoding="utf-8")
    with local_stack(folder / "workspace", SESSION_TIMEOUT=IDLE_TIMEOUT,
                     XS_APP_FILE=str(folder / "xs-app.json")) as running:
        yield running


@pytest.fixture(scope="module")
def idle_browser(playwright: Playwright, idle_stack: LocalStack) -> Iterator[Browser]:
    """Chromium that trusts the timeout stack's CA."""
    chromium = driver.launch(playwright, trusted_ca=idle_stack.ca_file)
    yield chromium
    chromium.close()


def test_after_the_idle_timeout_the_next_page_asks_to_log_in_and_returns_with_its_query(
        idle_browser: Browser, idle_stack: LocalStack) -> None:
    gateway, asked = idle_stack.gateway, "/homepage?x=1"
    context = driver.new_context(idle_browser)
    try:
        page = context.new_page()
        login(page, gateway, asked, user="jane", idp="ias")
        again = page.reload()  # the control: within the timeout, served without a login
        assert again is not None and again.status == 200 and again.request.redirected_from is None
        last_seen = time.monotonic()  # the gateway slid the timeout before it answered
        old = session_cookie(context)
        assert old is not None

        # What the test is about: the idle time passing (see the module's docstring).
        time.sleep(max(0.0, last_seen + IDLE_TIMEOUT_S + IDLE_MARGIN_S - time.monotonic()))
        context.clear_cookies(name=IAS_SESSION_COOKIE)  # the IdP's session ended as well

        with page.expect_response(lambda r: r.url == gateway + asked) as answered:
            page.goto(gateway + asked)
        expect(page.get_by_role("heading", level=1)).to_have_text(LOGIN_TITLES["ias"])
        screenshot(page, "session-idle-timeout-login-page")
        assert answered.value.status == 302, answered.value.status
        assert f"{SESSION_COOKIE}={old['value']}" in (answered.value.request.header_value("cookie") or ""), \
            "the browser did not send the expired session's cookie: the test would prove nothing"

        landed = login(page, gateway, asked, user="jane", idp="ias")
        screenshot(page, "session-idle-timeout-logged-in-again")
        assert landed.status == 200 and page.url == gateway + asked
        expect(page.locator("#comparison")).to_contain_text(JANE)
        renewed = session_cookie(context)
        assert renewed is not None and renewed["value"] != old["value"]
    finally:
        context.close()
