"""Headless Chromium for browser tests: Debian's ``/usr/bin/chromium`` driven by Playwright (sync
API), trusting exactly the local emulator's CA; a login as a person does it; screenshots; and a
watch for console errors and Content-Security-Policy violations.

Why Debian's Chromium and not ``playwright install``: the machines reach package registries
only, so a test tool's own browser download fails; Playwright drives any recent Chromium over CDP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, Response, expect

from tests.integration.processes import ROOT

__all__ = ["CHROMIUM", "SCREENSHOTS", "PageProblems", "launch", "login", "missing_chromium", "screenshot",
           "spki_sha256", "watch"]

CHROMIUM = Path("/usr/bin/chromium")
#: Without the background-networking flags Chromium calls home (updates, sync, variations) and the
#: closed network refuses it; --disable-quic keeps it off UDP. --no-proxy-server: everything the
#: tests open is on loopback, and a proxy from the environment must not see it.
LAUNCH_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-proxy-server")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
USERS_FILE = ROOT / "emulator" / "users.json"
#: How long a step (a navigation, an element to appear) may take before the test fails.
STEP_TIMEOUT_MS = 15_000
#: The heading of each login page (emulator/login.py), to know we reached the IdP we meant.
LOGIN_TITLES = {"ias": "SAP Cloud Identity Services",
                "xsuaa": "SAP Authorization and Trust Management (XSUAA)"}
#: Runs in every document before its own scripts, whatever its CSP (Playwright injects it through
#: the DevTools protocol, not as a page script), and reports each violation through a binding.
#: ``__cspReported()`` resolves once Python has recorded every violation reported so far.
_CSP_LISTENER = """
(() => {
  const pending = [];
  Object.defineProperty(window, "__cspReported", {value: () => Promise.all(pending)});
  document.addEventListener("securitypolicyviolation", (event) => {
    pending.push(window.__cspViolation({directive: event.effectiveDirective, blocked: event.blockedURI,
                                        document: event.documentURI, sample: event.sample}));
  }, true);
})();
"""


def missing_chromium() -> str | None:
    """Why the browser tests cannot run here, or None. A failure, not a skip: CI installs it."""
    if CHROMIUM.exists():
        return None
    return (f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium "
            "(apt-get install chromium; .ci/run installs it)")


def spki_sha256(cert_file: Path) -> str:
    """Base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium's
    ``--ignore-certificate-errors-spki-list`` wants it."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def launch(playwright: Playwright, trusted_ca: Path | None) -> Browser:
    """Debian's Chromium, headless; it accepts chains that contain ``trusted_ca``'s key (the
    emulator's server sends its CA along), and no other unknown certificate.

    Chromium honours the SPKI list only with a ``--user-data-dir``, which Playwright always
    gives it (a fresh temporary profile). This is narrower than ``ignore_https_errors``, which
    would accept any certificate at all.
    """
    args = list(LAUNCH_FLAGS)
    if trusted_ca is not None:
        args.append(f"--ignore-certificate-errors-spki-list={spki_sha256(trusted_ca)}")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=args)


def new_context(browser: Browser) -> BrowserContext:
    """A fresh profile (no cookies: not logged in anywhere) with the step timeout."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.set_default_navigation_timeout(STEP_TIMEOUT_MS)
    return context


@cache
def _users() -> dict[str, dict[str, Any]]:
    return {user["name"]: user for user in json.loads(USERS_FILE.read_text(encoding="utf-8"))["users"]}


def login(page: Page, gateway: str, path: str, user: str = "jane", idp: str = "ias",
          password: str | None = None) -> Response:
    """Open ``gateway + path``, land on ``idp``'s login page, pick ``user`` by the button that
    shows their e-mail (or, with ``password``, type the user name and password), and wait until
    the browser is back on ``path``. The answer of that last navigation.
    """
    target = gateway + path
    page.goto(target)
    expect(page.get_by_role("heading", level=1)).to_have_text(LOGIN_TITLES[idp])
    assert not page.url.startswith(gateway), f"the gateway did not send the browser to the IdP: {page.url}"
    with page.expect_response(lambda r: r.url == target and r.request.is_navigation_request()) as landed:
        if password is None:
            page.get_by_role("button", name=re.compile(re.escape(_users()[user]["email"]))).click()
        else:
            page.get_by_label("User name or e-mail").fill(user)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(target)
    page.wait_for_load_state("load")
    return landed.value


def screenshot(page: Page, name: str) -> Path:
    """The whole page as ``test-artifacts/screenshots/<name>.png``, to look at after a run."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


@dataclass
class PageProblems:
    """What went wrong in the page while it was watched: console errors, uncaught exceptions,
    CSP violations. Each entry is a line that says where.

    Chromium logs "Failed to load resource: ... 403" as a console error for a document served
    with an error status too: a test of an error page filters that line out itself.
    """

    page: Page
    console_errors: list[str] = field(default_factory=list)
    uncaught: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        """Every problem so far, once the current document's reports have all arrived (the
        binding calls are asynchronous: without the wait, a late violation could be missed)."""
        listening = self.page.evaluate("() => window.__cspReported ? window.__cspReported().then(() => true)"
                                       " : false")
        assert listening, f"the CSP listener is not in {self.page.url}: was watch() called before goto()?"
        return [*self.console_errors, *self.uncaught, *self.csp_violations]

    def record_console(self, message: ConsoleMessage) -> None:
        """Keep errors only: warnings and logs are the page's business, not a failure."""
        if message.type == "error":
            where = message.location.get("url", "")
            self.console_errors.append(f"console error at {where}: {message.text}")

    def record_csp(self, source: Any, report: dict[str, str]) -> None:
        """The binding ``_CSP_LISTENER`` calls, with the event's fields."""
        self.csp_violations.append(f"CSP {report['directive']} blocked {report['blocked'] or 'inline'} "
                                   f"in {report['document']} ({report['sample']!r})")


def watch(page: Page) -> PageProblems:
    """Start collecting the page's problems; call it before the first navigation."""
    problems = PageProblems(page)
    page.on("console", problems.record_console)
    page.on("pageerror", lambda error: problems.uncaught.append(f"uncaught {error.name}: {error.message}"))
    page.expose_binding("__cspViolation", problems.record_csp)
    page.add_init_script(_CSP_LISTENER)
    return problems
