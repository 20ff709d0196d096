"""The whole scenario on real sockets: a browser logs in through the gateway against the
emulated IAS or XSUAA, the gateway forwards the user's JWT to the app under gunicorn, and
the app exchanges it and calls the emulated CPI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiohttp import web

from gateway.app import create_app
from gateway.settings import GatewaySettings
from seccore.logs import configure_logging
from tests.emulator.conftest import RunningEmulator, start_emulator
from tests.integration.gateway_browser import browser, login, logout
from tests.integration.processes import RunningApp, clean_environ, free_port, running_gunicorn

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@dataclass
class Stack:
    emulator: RunningEmulator
    app: RunningApp
    gateway: str  # origin


@pytest.fixture(scope="module")
def gateway_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def stack_parts(tmp_path_factory: pytest.TempPathFactory, gateway_port: int) -> Iterator[tuple]:
    folder = tmp_path_factory.mktemp("e2e")
    emulator = start_emulator(folder / "emulator", local_origins=(f"http://localhost:{gateway_port}",))
    env = clean_environ(PORT=str(free_port()), VCAP_SERVICES=emulator.vcap_services,
                        REQUESTS_CA_BUNDLE=str(emulator.pki.ca_file), LOG_FORMAT="json",
                        WEB_CONCURRENCY="1", GUNICORN_THREADS="4")
    try:
        with running_gunicorn(env, folder / "app.log") as app:
            yield emulator, app
    finally:
        emulator.servers.stop()


@pytest_asyncio.fixture
async def stack(stack_parts: tuple, gateway_port: int,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    emulator, app = stack_parts
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.pki.ca_file))  # the gateway trusts the CA so
    settings = GatewaySettings.from_env({
        "VCAP_SERVICES": emulator.vcap_services, "PORT": str(gateway_port),
        "destinations": json.dumps([{"name": "frontapp", "url": app.base_url, "forwardAuthToken": True}])})
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", gateway_port)
    await site.start()
    try:
        yield Stack(emulator, app, f"http://localhost:{gateway_port}")
    finally:
        await runner.cleanup()


async def test_an_ias_user_logs_in_and_reaches_the_iflow_through_the_gateway(stack: Stack) -> None:
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        async with http.get(stack.gateway + "/homepage", headers={"Accept": "application/json"}) as page:
            assert page.status == 200, await page.text()
            data = await page.json()
    assert data["user_token"]["kind"] == "ias"
    assert data["user_token"]["claims"]["email"] == "jane.doe@example.com"
    assert data["exchanged_token"]["claims"]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert data["iflow"]["status"] == 200


async def test_an_xsuaa_user_is_checked_for_the_routes_scope(stack: Stack) -> None:
    async with browser(stack) as http:
        await login(http, stack, "/xsuaa/homepage")
        async with http.get(stack.gateway + "/xsuaa/homepage",
                            headers={"Accept": "application/json"}) as page:
            assert page.status == 200, await page.text()
            assert (await page.json())["user_token"]["kind"] == "xsuaa"


async def test_without_a_session_xhr_and_posts_get_401_not_a_login_page(stack: Stack) -> None:
    async with browser(stack) as http:
        for method, headers in (("GET", {"X-Requested-With": "XMLHttpRequest"}), ("POST", {})):
            async with http.request(method, stack.gateway + "/homepage", headers=headers,
                                    allow_redirects=False) as answer:
                assert answer.status == 401


async def test_csrf_fetch_reject_accept(stack: Stack) -> None:
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        async with http.post(stack.gateway + "/homepage") as refused:
            assert refused.status == 403 and refused.headers["x-csrf-token"] == "Required"
        async with http.get(stack.gateway + "/homepage", headers={"x-csrf-token": "Fetch"}) as fetched:
            token = fetched.headers["x-csrf-token"]
        async with http.get(stack.gateway + "/homepage", headers={"x-csrf-token": "fetch"}) as again:
            assert again.headers["x-csrf-token"] == token  # one token per session
        async with http.post(stack.gateway + "/homepage", json={"order": 4711},
                             headers={"x-csrf-token": token, "Accept": "application/json"}) as accepted:
            assert accepted.status == 200, await accepted.text()
            echo = json.loads((await accepted.json())["iflow"]["body"])  # the emulated iFlow's echo
            assert json.loads(echo["body"]) == {"order": 4711} and echo["content_type"] == "application/json"


async def test_logout_ends_the_session_and_the_idp_session(stack: Stack) -> None:
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        idp_logout = await logout(http, stack)
        async with http.get(idp_logout, allow_redirects=False) as idp:
            assert idp.status == 302 and idp.headers["Location"].startswith(stack.gateway + "/logout.html")
        async with http.get(stack.gateway + "/homepage", allow_redirects=False) as after:
            assert after.status == 302  # back to the login: the session is gone


@pytest.mark.parametrize("path", ["/../etc/passwd", "/homepage/%2e%2e/x", "/a%2fb", "/%252e%252e/"])
async def test_traversal_is_refused(stack: Stack, path: str) -> None:
    async with browser(stack) as http, http.get(stack.gateway + path, allow_redirects=False) as answer:
        assert answer.status in (400, 404)


async def test_the_gateway_log_has_correlation_ids_and_no_tokens_cookies_or_codes(
        stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json_lines=True, loggers=("gateway", "seccore"))  # bound to the captured stderr
    async with browser(stack) as http:
        await login(http, stack, "/homepage")
        async with http.get(stack.gateway + "/homepage", headers={"Accept": "application/json"}) as page:
            forwarded = (await page.json())["user_token"]["fingerprint"]
        cookies = [c.value for c in http.cookie_jar]
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert lines and all(entry["logger"] == "gateway" and entry["correlation_id"] != "-" for entry in lines)
    text = json.dumps(lines)
    assert "/login/callback" in text and "code=" not in text and "state=" not in text  # no query strings
    assert all(cookie not in text for cookie in cookies) and "eyJ" not in text and forwarded
