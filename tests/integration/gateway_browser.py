"""A browser for gateway tests: its own cookie jar, and the login dance through the
gateway and the emulator's login page. ``stack`` has ``gateway`` (origin) and ``emulator``."""

from __future__ import annotations

import html
import re
import ssl
from typing import Any

import aiohttp


def landing_target(page: str) -> str:
    """Where the gateway's after-login page moves on to (its meta refresh)."""
    found = re.search(r'<meta http-equiv="refresh" content="0;url=([^"]*)">', page)
    assert found, page
    return html.unescape(found.group(1))


def browser(stack: Any) -> aiohttp.ClientSession:
    """A user agent: its own cookie jar, which (like a browser) sends Secure cookies to localhost."""
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[stack.gateway])
    tls = ssl.create_default_context(cafile=str(stack.emulator.pki.ca_file))
    return aiohttp.ClientSession(cookie_jar=jar, connector=aiohttp.TCPConnector(ssl=tls))


async def login(http: aiohttp.ClientSession, stack: Any, path: str, user: str = "jane") -> None:
    """Open ``path``, follow the gateway to the IdP's login page, pick ``user``, come back."""
    callback = await callback_of(http, stack, path, user)
    async with http.get(callback, allow_redirects=False) as back:
        assert back.status == 200 and landing_target(await back.text()) == path


async def callback_of(http: aiohttp.ClientSession, stack: Any, path: str, user: str = "jane") -> str:
    """The login up to the IdP's answer: the gateway's callback URL, not yet opened."""
    async with http.get(stack.gateway + path, allow_redirects=False) as first:
        assert first.status == 302, await first.text()
        authorize = first.headers["Location"]
    async with http.get(authorize, allow_redirects=False) as page:
        assert page.status == 200
        request_id = re.search(r'name="request" value="([^"]+)"', await page.text()).group(1)  # type: ignore[union-attr]
    origin = authorize.split("/oauth", 1)[0]
    action = origin + ("/oauth2/login" if "/oauth2/" in authorize else "/login.do")
    async with http.post(action, data={"request": request_id, "user": user}, allow_redirects=False) as done:
        assert done.status == 302
        callback = done.headers["Location"]
    assert callback.startswith(stack.gateway + "/login/callback?")
    return callback


async def csrf_token(http: aiohttp.ClientSession, stack: Any, path: str = "/homepage") -> str:
    """The session's CSRF token, fetched as the page's script does."""
    async with http.head(stack.gateway + path, headers={"x-csrf-token": "fetch"}) as fetched:
        assert fetched.status == 200
        return fetched.headers["x-csrf-token"]


async def logout(http: aiohttp.ClientSession, stack: Any) -> str:
    """Log out as the page does (POST with the CSRF token); the IdP logout URL to go to next."""
    token = await csrf_token(http, stack)
    async with http.post(stack.gateway + "/logout", headers={"x-csrf-token": token}) as out:
        assert out.status == 200, await out.text()
        return await out.text()
