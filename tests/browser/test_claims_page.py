"""The claims page in Chromium, through the gateway and the emulator, as a developer reads it:
the comparison's highlighted rows and labelled audiences, the diagram of a success and of a
missing-role failure, a payload sent from the form and answered by the iFlow, the raw claims
copied; on a phone and in dark mode; under the strict CSP, with no violation or script error.
Screenshots of each state go to test-artifacts/screenshots/ (the README's picture is one)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.browser import driver
from tests.browser.driver import PageProblems, login, screenshot

pytestmark = pytest.mark.integration

JOHN = "john.roe@example.com"  # emulator/users.json: no CPI role


def row(page: Page, claim: str) -> Locator:
    return page.locator(f'#comparison tr[data-claim="{claim}"]')


def arrow(page: Page, label_start: str) -> Locator:
    return page.locator(f'svg.flow g.step[data-label^="{label_start}"]')


def background(locator: Locator) -> str:
    return locator.evaluate("element => getComputedStyle(element).backgroundColor")


def stroke(locator: Locator) -> str:
    return locator.evaluate("element => getComputedStyle(element).stroke")


def real_problems(problems: PageProblems) -> list[str]:
    """Chromium reports a document served with an error status as a failed resource: expected."""
    return [p for p in problems.all() if not re.search(r"Failed to load resource: .* 40[13]", p)]


def test_the_comparison_highlights_what_the_exchange_changed(page: Page, problems: PageProblems,
                                                              gateway: str) -> None:
    landed = login(page, gateway, "/homepage", user="jane", idp="ias")
    screenshot(page, "claims-page-ias-jane")
    assert landed.status == 200
    policy = landed.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "unsafe" not in policy

    unchanged = background(row(page, "email"))
    for claim, change in (("iss", "changed"), ("aud", "changed"), ("grant_type", "added"), ("scope", "added"),
                          ("groups", "removed"), ("app_tid", "removed"), ("zid", "added")):
        expect(row(page, claim).locator("th .badge")).to_have_text(change)
        assert background(row(page, claim)) != unchanged, f"{claim} is not highlighted"
    colours = {change: background(row(page, claim)) for claim, change in
               (("iss", "changed"), ("grant_type", "added"), ("groups", "removed"))}
    assert len(set(colours.values())) == 3, colours  # each kind of change its own colour
    expect(row(page, "email").locator(".badge")).to_have_count(0)
    expect(row(page, "email").locator(".note")).to_have_text("carried over: CPI sees the same e-mail")
    expect(row(page, "iss").locator(".note")).to_contain_text("CPI trusts only XSUAA tokens")

    before, after = (row(page, "aud").locator("td").nth(i).locator(".owner") for i in (0, 1))
    expect(before).to_have_text(["this app (IAS client)",
                                 re.compile("^another IAS application: the subaccount's XSUAA")])
    assert sorted(after.all_text_contents()) == [
        "CPI (client of the it-rt binding)", "CPI runtime (it-rt xsappname)", "OpenID (scope prefix)"]
    expect(page.locator("#cpi-role")).to_have_class("present")
    expect(row(page, "scope").locator("mark.role")).to_contain_text("Ntif.Read")
    assert real_problems(problems) == []
    page.set_viewport_size({"width": 1200, "height": 1400})  # the README's picture: the top of the page
    page.screenshot(path=driver.SCREENSHOTS / "claims-page-top.png")


def test_the_diagram_of_a_success_shows_every_hop_green_and_timed(page: Page, gateway: str) -> None:
    login(page, gateway, "/homepage", user="jane", idp="ias")
    steps = page.locator("svg.flow g.step")
    expect(steps).to_have_count(9)
    expect(page.locator("svg.flow g.step.ok")).to_have_count(9)
    expect(arrow(page, "POST /http/ntif").locator(".detail")).to_have_text(re.compile(r"ok · \d+\.\d ms"))
    expect(arrow(page, "answer").locator(".detail")).to_have_text(re.compile(r"HTTP 200 · MPL \S+"))
    expect(page.locator("svg.flow .diagnosis")).to_have_count(0)


def test_a_user_without_the_cpi_role_sees_the_failed_hop_red_with_its_diagnosis(
        page: Page, problems: PageProblems, gateway: str) -> None:
    landed = login(page, gateway, "/homepage", user="john", idp="ias")
    screenshot(page, "claims-page-ias-john-missing-role")
    assert landed.status == 403
    failed = arrow(page, "CPI role Ntif.Read in scope?")
    expect(failed).to_have_class(re.compile(r"\bfailed\b"))
    expect(failed.locator(".detail")).to_have_text("missing: CPI would answer 403")
    assert stroke(failed.locator("path")) != stroke(arrow(page, "validate your token").locator("path"))
    expect(page.locator("svg.flow .diagnosis")).to_contain_text("lacks the CPI role Ntif.Read")
    for later in ("POST /http/ntif", "answer"):
        expect(arrow(page, later)).to_have_class(re.compile(r"\bskipped\b"))
        expect(arrow(page, later).locator(".detail")).to_have_text("not called")
    expect(page.locator("#cpi-role")).to_have_class("missing")
    expect(row(page, "user_name").locator("td").nth(1)).to_have_text(JOHN)
    assert real_problems(problems) == []


@pytest.mark.parametrize(("kind", "payload"), [
    pytest.param("JSON", '{"order": 4711, "note": "<b>Grüße</b>"}', id="json"),
    pytest.param("text", "plain <i>words</i> & more", id="text"),
])
def test_a_payload_sent_from_the_form_comes_back_from_the_iflow(page: Page, problems: PageProblems,
                                                               gateway: str, kind: str, payload: str) -> None:
    login(page, gateway, "/homepage", user="jane", idp="ias")
    page.get_by_label("Payload").fill(payload)
    page.get_by_label(kind, exact=True).check()
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Send to the iFlow").click()
    assert posted.value.status == 200
    assert posted.value.request.headers.get("x-csrf-token")  # fetched from the gateway by page.js
    expect(page.locator("#send-status")).to_have_text("Sent: HTTP 200")
    echo = json.loads(page.locator("#iflow-body").text_content() or "")  # the emulated iFlow's echo
    assert echo["body"] == payload and echo["user"] == "jane.doe@example.com"
    assert echo["content_type"].startswith("application/json" if kind == "JSON" else "text/plain")
    expect(page.get_by_label("Payload")).to_have_value(payload)  # the form keeps what was sent
    expect(arrow(page, "POST /homepage")).to_have_class(re.compile(r"\bok\b"))
    expect(page.locator("#iflow-heading")).to_be_focused()
    screenshot(page, f"claims-page-sent-{kind.lower()}")
    assert real_problems(problems) == []


def test_the_form_works_from_the_keyboard_alone(page: Page, gateway: str) -> None:
    login(page, gateway, "/homepage", user="jane", idp="ias")
    page.get_by_label("Payload").focus()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type('{"via": "keyboard"}')
    for _ in range(4):  # payload → JSON → (text is the same radio group) → Send
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.type") == "submit":
            break
    assert page.evaluate("document.activeElement.textContent") == "Send to the iFlow"
    page.keyboard.press("Enter")
    expect(page.locator("#send-status")).to_have_text("Sent: HTTP 200")
    echo = json.loads(page.locator("#iflow-body").text_content() or "")
    assert json.loads(echo["body"]) == {"via": "keyboard"}


def test_broken_json_is_refused_with_a_reason_and_the_page_stays(page: Page, gateway: str) -> None:
    login(page, gateway, "/homepage", user="jane", idp="ias")
    before = page.locator("#iflow-body").text_content()
    page.get_by_label("Payload").fill('{"order": ')
    page.get_by_role("button", name="Send to the iFlow").click()
    expect(page.locator("#send-status")).to_contain_text("HTTP 400")
    expect(page.locator("#send-status")).to_contain_text("not JSON")
    assert page.locator("#iflow-body").text_content() == before


def test_the_raw_claims_open_on_demand_and_copy(context: BrowserContext, gateway: str) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gateway)
    page = context.new_page()
    login(page, gateway, "/homepage", user="jane", idp="ias")
    raw = page.locator("#raw-exchanged")
    expect(raw).not_to_be_visible()
    page.get_by_text("Exchanged token (JSON)").click()
    expect(raw).to_be_visible()
    claims = json.loads(raw.text_content() or "")
    assert claims["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    page.locator('button[data-copy="raw-exchanged"]').click()
    expect(page.locator('button[data-copy="raw-exchanged"]')).to_have_text("Copied")
    assert json.loads(page.evaluate("navigator.clipboard.readText()")) == claims


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A phone-sized tab in dark mode."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                  is_mobile=True, has_touch=True, color_scheme="dark")
    context.set_default_timeout(driver.STEP_TIMEOUT_MS)
    yield context.new_page()
    context.close()


def test_on_a_dark_phone_the_page_fits_and_the_table_becomes_cards(phone: Page, gateway: str) -> None:
    problems = driver.watch(phone)
    login(phone, gateway, "/homepage", user="jane", idp="ias")
    screenshot(phone, "claims-page-phone-dark")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px phone"
    assert row(phone, "iss").evaluate("element => getComputedStyle(element).display") == "block"
    text, page_bg = phone.evaluate(
        "[getComputedStyle(document.body).color, getComputedStyle(document.body).backgroundColor]")
    assert page_bg == "rgb(13, 17, 23)" and text == "rgb(230, 237, 243)"  # the dark palette
    assert real_problems(problems) == []


JWT = re.compile(r"eyJ[\w-]{10,}\.eyJ[\w-]{10,}\.[\w-]+")


@pytest.mark.parametrize(("path", "idp", "password"), [("/homepage", "ias", None),
                                                        ("/xsuaa/homepage", "xsuaa", "jane")])
def test_oidc14_no_token_ever_reaches_the_browser(context: BrowserContext, gateway: str, path: str,
                                                  idp: str, password: str | None) -> None:
    """The gateway keeps the tokens server-side; the page shows claims and fingerprints only."""
    page = context.new_page()
    bodies: list[str] = []
    page.on("response", lambda r: bodies.append(r.text()) if r.request.resource_type in (
        "document", "fetch", "xhr", "script") and r.status < 300 else None)
    login(page, gateway, path, user="jane", idp=idp, password=password)
    page.get_by_role("button", name="Send to the iFlow").click()
    expect(page.locator("#send-status")).to_have_text("Sent: HTTP 200")
    storage = page.evaluate("JSON.stringify([document.cookie, {...localStorage}, {...sessionStorage}])")
    cookies = json.dumps(context.cookies())
    found = [text[:80] for text in (*bodies, page.content(), storage, cookies, page.url) if JWT.search(text)]
    assert found == []
    assert bodies  # the responses were seen
