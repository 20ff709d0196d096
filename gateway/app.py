"""The gateway's request handling: route, session, login, scope, CSRF, refresh, forward.

Per request (approuter.md §2.1): normalise the path → welcome file → route match → for a
route with login: the session (a signed opaque cookie, server-side data), else the login
redirect (browser GET) or 401 (XHR, other methods) → scope → CSRF → a token refresh when the
token is close to expiry (one per session at a time) → forward with ``Authorization:
Bearer``. Login state, PKCE verifier and nonce stay server-side under a one-time key bound
to the browser by a signed pre-login cookie.
"""

from __future__ import annotations

import hmac
import html
import logging
import secrets
import time
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp import hdrs, web

from gateway import csrf
from gateway.oidc import CodeRefused, IdentityProvider, LoginFailed, RefreshRefused, Tokens, new_code_verifier
from gateway.proxy import Forwarder, error_response, normalize_path, upstream_client
from gateway.routes import Route, match
from gateway.sessions import (
    COOKIE_NAME,
    MemoryStore,
    RefreshLocks,
    SessionStore,
    StoreUnavailable,
    new_session_id,
    sign_session_id,
    unsign_session_id,
)
from gateway.settings import GatewaySettings, is_loopback
from seccore.logs import correlation_id, new_correlation_id

__all__ = ["create_app"]

log = logging.getLogger("gateway")

LOGIN_COOKIE = "frontrouter_login"
LOGIN_TTL_SECONDS = 300
#: A year; no includeSubDomains: the gateway does not own its parent domain (cfapps...).
HSTS = "max-age=31536000"
#: Platform probes reach the container by its address, not by a route's host name.
UNCHECKED_HOST_PATHS = frozenset({"/health", "/ready"})
#: The methods a route may be asked for; anything else is 405 before routing.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SECURITY_HEADERS = {"X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "frame-ancestors 'self'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
NO_STORE = {hdrs.CACHE_CONTROL: "no-store"}
#: Characters kept as they are in the landing page's target (a path and query already encoded).
LANDING_SAFE = "/?&=%:@!$()*+,;-._~"
_STATE = web.AppKey("gateway", object)
_CID = web.RequestKey("correlation_id", str)


class Gateway:
    """What the handlers share: settings, the session store, the IdPs, the upstream client."""

    def __init__(self, settings: GatewaySettings, store: SessionStore) -> None:
        self.settings, self.store = settings, store
        identity = settings.identity
        self.providers = {kind: IdentityProvider(kind, binding)  # type: ignore[arg-type]
                          for kind, binding in (("xsuaa", identity.xsuaa), ("ias", identity.ias)) if binding}
        self.locks = RefreshLocks()
        self.upstream: aiohttp.ClientSession | None = None  # made on start-up: it needs the loop
        self.forwarder: Forwarder | None = None

    def cookie(self, request: web.Request, name: str) -> str | None:
        return unsign_session_id(request.cookies.get(name), self.settings.session_secret)

    def set_cookie(self, response: web.StreamResponse, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(name, sign_session_id(value, self.settings.session_secret), path="/",
                            secure=True, httponly=True, samesite="Lax", max_age=max_age)


def create_app(settings: GatewaySettings, store: SessionStore | None = None) -> web.Application:
    """The aiohttp application; the session store is Redis when bound, else memory."""
    app = web.Application(middlewares=[_headers], client_max_size=settings.max_request_body)
    if store is None:  # not "store or ...": an empty MemoryStore is falsy (it has __len__)
        store = settings.redis if settings.redis is not None else MemoryStore()
    app[_STATE] = gateway = Gateway(settings, store)
    app.router.add_get("/health", _health)
    app.router.add_get("/ready", _ready)
    app.router.add_get(settings.app_config.login_callback, _callback)
    logout = settings.app_config.logout
    if logout is not None:
        for method in logout.methods:
            app.router.add_route(method, logout.endpoint, _logout)
        if logout.page and logout.page.startswith("/"):
            app.router.add_get(logout.page, _logged_out)
    app.router.add_route("*", "/{tail:.*}", _handle)
    app.on_response_prepare.append(_response_headers)

    async def start(_: web.Application) -> None:
        gateway.upstream = upstream_client()
        gateway.forwarder = Forwarder(gateway.upstream, max_request_body=settings.max_request_body,
                                      trusted_proxy_hops=settings.trusted_proxy_hops)

    async def stop(_: web.Application) -> None:
        if gateway.upstream is not None:
            await gateway.upstream.close()
        await gateway.store.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


@web.middleware
async def _headers(request: web.Request, handler: Any) -> web.StreamResponse:
    request[_CID] = new_correlation_id(request.headers.get("x-correlationid"))
    correlation_id.set(request[_CID])
    started = time.perf_counter()
    try:
        settings = request.app[_STATE].settings
        if request.path not in UNCHECKED_HOST_PATHS and not settings.serves_host(request.host):
            response = error_response(request, 400, request[_CID])  # not ours: build nothing from it
        else:
            response = await handler(request)
    except StoreUnavailable:
        response = error_response(request, 503, request[_CID])
        response.headers["Retry-After"] = "5"
    except web.HTTPException as exc:  # raised by aiohttp itself (e.g. a body over the limit)
        response = error_response(request, exc.status, request[_CID])
    # The path only, percent-encoded (no query: it can carry codes and states; no CR/LF forging).
    log.info("%s %s %s", request.method, quote(request.path, safe="/:@!$&'()*+,;=-._~"),
             response.status, extra={"took_ms": round((time.perf_counter() - started) * 1000, 1)})
    return response


async def _response_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Also on forwarded responses: they stream out before the middleware sees them."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if _CID in request:
        response.headers.setdefault("x-correlationid", request[_CID])
    if _scheme(request.app[_STATE], request) == "https":  # HSTS only means something over HTTPS
        response.headers.setdefault(hdrs.STRICT_TRANSPORT_SECURITY, HSTS)
    # aiohttp adds "Server: Python/3.x aiohttp/3.y" before this hook runs; like a backend's banner
    # (dropped in gateway.proxy), it only helps an attacker pick exploits (ASVS 5 13.4.6).
    response.headers.popall(hdrs.SERVER, None)


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"status": "UP"})


async def _ready(request: web.Request) -> web.Response:
    ok = await request.app[_STATE].store.ping()
    return web.json_response({"status": "UP" if ok else "DOWN"}, status=200 if ok else 503)


async def _handle(request: web.Request) -> web.StreamResponse:
    gw: Gateway = request.app[_STATE]
    config, cid = gw.settings.app_config, request[_CID]
    if request.method not in METHODS:  # TRACE, TRACK, CONNECT, junk verbs: never routed
        response = error_response(request, 405, cid)
        response.headers[hdrs.ALLOW] = ", ".join(sorted(METHODS))
        return response
    path = normalize_path(request.rel_url.raw_path)
    if path is None:
        return error_response(request, 400, cid)
    if path == "/" and config.welcome_file:
        return _redirect(config.welcome_file)
    query = request.rel_url.raw_query_string
    found = match(config, path + (f"?{query}" if query else ""), request.method)
    if found is None:
        return error_response(request, 404, cid)
    if not found.method_allowed:
        response = error_response(request, 405, cid)
        response.headers[hdrs.ALLOW] = ", ".join(sorted(found.allow))
        return response
    route, bearer, session = found.route, None, None
    if route.authentication_type != "none":
        sid, session = await _session(gw, request)
        tokens = (session or {}).get("tokens", {}).get(route.authentication_type)
        if session is None or tokens is None:
            return await _login_or_401(gw, request, route, path, query)
        tokens = await _fresh(gw, sid, route.authentication_type, tokens)
        if tokens is None:
            return await _login_or_401(gw, request, route, path, query)
        if route.scope is not None and not route.scope.allows(request.method, tokens["scopes"]):
            return error_response(request, 403, cid)
        if (denied := await _csrf(gw, request, route, sid, session)) is not None:
            return denied
        bearer = tokens["forward"]
    destination = gw.settings.destinations[route.destination]
    assert gw.forwarder is not None
    return await gw.forwarder.forward(
        request, upstream_url=destination.url + found.path,
        bearer=bearer if destination.forward_auth_token else None, correlation_id=cid,
        timeout_seconds=destination.timeout_seconds, strip_cookie_names=(COOKIE_NAME, LOGIN_COOKIE),
        private=route.authentication_type != "none")


async def _session(gw: Gateway, request: web.Request) -> tuple[str, dict[str, Any] | None]:
    sid = gw.cookie(request, COOKIE_NAME)
    if sid is None:
        if request.cookies.get(COOKIE_NAME):  # LEAK-07: sent, but not signed with our secret
            log.warning("session cookie refused: not signed by this gateway")
        return "", None
    session = await gw.store.get(sid)
    if session is None:
        return sid, None
    # Absolute lifetime: activity keeps a session from idling out, but not beyond this. A
    # session without a login time predates the limit and is treated as expired.
    if time.time() - session.get("created", 0.0) > gw.settings.session_max_lifetime_seconds:
        await gw.store.delete(sid)
        return sid, None
    await gw.store.touch(sid, gw.settings.session_timeout_seconds)  # idle timeout
    return sid, session


async def _login_or_401(gw: Gateway, request: web.Request, route: Route, path: str,
                        query: str) -> web.StreamResponse:
    """Browsers navigating with GET go to the IdP; XHR and other methods get 401 (approuter)."""
    xhr = request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest"
    if request.method != "GET" or xhr:
        response = error_response(request, 401, request[_CID])
        response.headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="frontrouter"'
        return response
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(16), new_code_verifier()
    kind = route.authentication_type
    if _scheme(gw, request) != "https" and not is_loopback(request.host):
        # The code would come back over plain http (OIDC-21). Behind the Cloud Foundry router the
        # scheme is its X-Forwarded-Proto, believed only with TRUSTED_PROXY_HOPS=1.
        log.warning("login not started: the gateway is reached over plain http")
        return _page(request, 400, "This gateway is reached over plain http; logins need https.")
    redirect_uri = _origin(gw, request) + gw.settings.app_config.login_callback
    return_to = path + (f"?{query}" if query else "")
    try:
        url = await gw.providers[kind].authorize_url(redirect_uri, state=state, nonce=nonce,
                                                     code_verifier=verifier)
    except LoginFailed as exc:  # e.g. the IAS discovery document cannot be read
        log.warning("login not started: %s", exc)
        return _page(request, 502, "The identity provider cannot be reached. Try again.", return_to)
    await gw.store.set(f"login:{state}", {"kind": kind, "verifier": verifier, "nonce": nonce,
                                          "redirect_uri": redirect_uri, "return_to": return_to},
                       LOGIN_TTL_SECONDS)
    response = _redirect(url)
    gw.set_cookie(response, LOGIN_COOKIE, state, LOGIN_TTL_SECONDS)
    return response


async def _callback(request: web.Request) -> web.StreamResponse:
    gw: Gateway = request.app[_STATE]
    state, code = request.query.get("state", ""), request.query.get("code", "")
    bound_state = gw.cookie(request, LOGIN_COOKIE) or ""
    if not state or not hmac.compare_digest(state.encode(), bound_state.encode()):
        log.warning("login refused: the callback's state is not this browser's")  # LEAK-07
        return _page(request, 400, "The login could not be matched to this browser. Open the page again.")
    pending = await gw.store.get(f"login:{state}")
    await gw.store.delete(f"login:{state}")  # single use, success or not
    if pending is None:
        log.warning("login refused: the login expired or was already used")  # LEAK-07
        return _page(request, 400, "The login took too long or was already used. Open the page again.")
    issuers = request.query.getall("iss", [])
    if len(issuers) > 1 or (issuers and not gw.providers[pending["kind"]].issued(issuers[0])):
        # RFC 9207: the answer comes from another IdP than the one this login went to (mix-up).
        log.warning("login refused: the authorization response names another issuer")
        return _page(request, 403, "The login answer came from another identity provider. Start again.",
                     pending["return_to"])
    if "error" in request.query or not code:
        # LEAK-07; the IdP's error text is not logged: it is whatever the query says
        log.warning("login failed: the identity provider answered without a code")
        return _page(request, 403, "The identity provider did not log you in.", pending["return_to"])
    try:
        tokens = await gw.providers[pending["kind"]].redeem(
            code, redirect_uri=pending["redirect_uri"], code_verifier=pending["verifier"],
            nonce=pending["nonce"])
    except CodeRefused as exc:
        # Another browser's code pasted into this callback (code injection), a made-up or used
        # one: the PKCE verifier of this login does not fit, so the IdP says invalid_grant. A bad
        # request, not an IdP outage (502); no session either way (OIDC-06, RFC 9700 §4.5).
        log.warning("login refused: %s", exc)
        return _page(request, 400, "The login could not be completed. Start again.", pending["return_to"])
    except LoginFailed as exc:
        log.warning("login failed: %s", exc)
        return _page(request, 502, "The identity provider could not complete the login. Try again.",
                     pending["return_to"])
    # A login starts a new session under a new id (no fixation) and carries nothing over: an
    # older session may be another user's (a planted cookie, a shared browser), and an IAS
    # user and an XSUAA user cannot be told to be the same person. The old id dies.
    old_sid, _ = await _session(gw, request)
    session = {"tokens": {pending["kind"]: _stored(tokens)}, "created": time.time()}
    sid = new_session_id()
    await gw.store.set(sid, session, gw.settings.session_timeout_seconds)
    if old_sid:
        await gw.store.delete(old_sid)
    log.info("login succeeded (%s)", pending["kind"])  # LEAK-07: no token, code or session id
    response = _landing(pending["return_to"])
    gw.set_cookie(response, COOKIE_NAME, sid, None)
    response.del_cookie(LOGIN_COOKIE, path="/")
    return response


async def _fresh(gw: Gateway, sid: str, kind: str, tokens: dict[str, Any]) -> dict[str, Any] | None:
    """The tokens, refreshed first when they expire within JWT_REFRESH; None when expired."""
    margin = gw.settings.jwt_refresh_seconds
    if tokens["expires_at"] - time.time() > margin or not tokens.get("refresh_token") or not margin:
        return tokens if tokens["expires_at"] > time.time() else None
    async with gw.locks.hold(sid):
        session = await gw.store.get(sid) or {}  # another request may have refreshed meanwhile
        current = session.get("tokens", {}).get(kind)
        if current and current["expires_at"] - time.time() > margin:
            return current
        try:
            renewed = _stored(await gw.providers[kind].refresh(tokens["refresh_token"]))
        except RefreshRefused:
            # The IdP ended this login (logout elsewhere, a disabled user, a revoked grant): so
            # does the gateway, now, not when the token runs out (OIDC-19, SES-14).
            await gw.store.delete(sid)
            return None
        except LoginFailed:  # an outage: the token serves until it expires (F-27)
            return tokens if tokens["expires_at"] > time.time() else None
        session.setdefault("tokens", {})[kind] = renewed
        await gw.store.set(sid, session, gw.settings.session_timeout_seconds)
        return renewed


async def _csrf(gw: Gateway, request: web.Request, route: Route, sid: str,
                session: dict[str, Any]) -> web.StreamResponse | None:
    header = request.headers.get(csrf.HEADER)
    if request.method in ("GET", "HEAD") and csrf.is_fetch(header):
        # Re-read before writing: a refresh (this request's or another's) may have stored new
        # tokens since ``session`` was read, and writing the old copy back would undo it.
        current = await gw.store.get(sid) or session
        token = csrf.issue_token(current)
        await gw.store.set(sid, current, gw.settings.session_timeout_seconds)
        # Answered here, not forwarded: the client asked the gateway, not the app, for a token.
        return web.Response(status=200, headers={csrf.HEADER: token, **NO_STORE})
    needed = csrf.needs_check(request.method, route.csrf_protection, public=False)
    if needed and not csrf.check(session, header):
        return _csrf_refused(request, "request")
    return None


def _csrf_refused(request: web.Request, what: str) -> web.Response:
    """403 with ``x-csrf-token: Required``, as approuter answers; logged (LEAK-07), the path is on
    the access line."""
    log.warning("%s refused: no valid CSRF token", what)
    response = error_response(request, 403, request[_CID])
    response.headers[csrf.HEADER] = csrf.REQUIRED_VALUE
    return response


async def _logout(request: web.Request) -> web.StreamResponse:
    """Central logout: the session ends here, then the IdP's session (the browser goes there).

    A GET answers with the redirect (approuter's default). A POST (``logoutMethod: POST``)
    needs the session's CSRF token, so another site cannot log the user out, and answers 200
    with the IdP's logout URL as text for the page's script to navigate to (as approuter).
    """
    gw: Gateway = request.app[_STATE]
    logout = gw.settings.app_config.logout
    assert logout is not None
    sid, session = await _session(gw, request)
    if request.method == "POST" and session is not None and logout.csrf_protection \
            and not csrf.check(session, request.headers.get(csrf.HEADER)):
        return _csrf_refused(request, "logout")
    if sid:
        await gw.store.delete(sid)
    page = logout.page
    if page and page.startswith("/"):
        page = _origin(gw, request) + page
    tokens = (session or {}).get("tokens", {})
    kind = "ias" if "ias" in tokens else "xsuaa" if "xsuaa" in tokens else None
    target = (await gw.providers[kind].logout_url(post_logout_redirect_uri=page,
                                                   id_token=tokens[kind].get("id_token"))
              if kind else page or "/")
    if request.method == "POST":
        response = web.Response(status=200, text=target, content_type="text/plain", headers=NO_STORE)
    else:
        response = _redirect(target)
    response.del_cookie(COOKIE_NAME, path="/")
    return response


async def _logged_out(request: web.Request) -> web.Response:
    return _page(request, 200, "You are logged out.")


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={hdrs.LOCATION: location, **NO_STORE})


def _landing(return_to: str) -> web.Response:
    """After the login, a page of our own that moves on to ``return_to`` (a path of this origin).

    Not a 302: a redirect chain that passed through the IdP is cross-site to the browser
    (``Sec-Fetch-Site: cross-site``, SameSite=Strict cookies withheld), so the app could not
    tell the landing from another site's link. A refresh starts a new, same-origin navigation.
    """
    target = _local_href(return_to)
    body = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
            f'<meta http-equiv="refresh" content="0;url={target}"><title>Signed in</title></head>'
            f'<body><p>Signed in. <a href="{target}">Continue</a></p></body></html>')
    return web.Response(status=200, text=body, content_type="text/html", headers=NO_STORE)


def _page(request: web.Request, status: int, text: str, again: str = "/") -> web.Response:
    """A page of the gateway's own: ``text`` (a constant, never input) and a way back to ``again``."""
    body = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
            f"<title>frontrouter</title></head><body><p>{text}</p>"
            f'<p><a href="{_local_href(again)}">Start again</a></p><p>Correlation ID: {request[_CID]}</p>'
            "</body></html>")
    return web.Response(status=status, text=body, content_type="text/html", headers=NO_STORE)


def _local_href(path: str) -> str:
    """``path`` for an HTML attribute, if it is a path of this origin; "/" otherwise."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        path = "/"
    return html.escape(quote(path, safe=LANDING_SAFE))


def _stored(tokens: Tokens) -> dict[str, Any]:
    return {"forward": tokens.forward, "refresh_token": tokens.refresh_token, "expires_at": tokens.expires_at,
            "scopes": list(tokens.scopes), "id_token": tokens.id_token}


def _origin(gw: Gateway, request: web.Request) -> str:
    """This gateway's public origin, for redirect URIs: the trusted proxy's view when behind one."""
    return f"{_scheme(gw, request)}://{urlsplit('//' + request.host).netloc}"


def _scheme(gw: Gateway, request: web.Request) -> str:
    """How the browser reached us: the trusted proxy's X-Forwarded-Proto when behind one."""
    if gw.settings.trusted_proxy_hops:
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
        if forwarded in ("http", "https"):
            return forwarded
    return request.scheme
