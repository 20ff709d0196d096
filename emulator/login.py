"""Interactive login of the emulated IAS and XSUAA: the authorization endpoints with their login
page, and logout (IAS end-session, XSUAA ``/logout.do``). The back channel (token grants,
userinfo) is in ``emulator.grants``; stores and PKCE are in ``emulator.codes``.

Why thin views, not Authlib's ``AuthorizationServer``: one Flask app plays two issuers, and the
XSUAA token endpoint (``emulator.xsuaa``) already owns client authentication as UAA does it
(Basic with X-CF-ENCODED-CREDENTIALS, secret in the form, client certificates) and UAA's error
bodies. A server object per issuer would duplicate that and answer in Authlib's own shapes, and
its model hooks would only pass our records through. Authlib does the protocol parts: request
parsing with repeated-parameter detection (``FlaskOAuth2Request``), PKCE (``CodeChallenge``,
made strict in ``emulator.codes``), the RFC 6749 / OIDC error classes and the building of the
redirect of an authorization response (``add_params_to_uri``).

Rules: the client and its ``redirect_uri`` (exact string match) are checked first, and a wrong
one gets an error page, never a redirect; every later error is redirected with ``state`` and
``iss`` (RFC 9207). Each service has its own session cookie and login cookie (cookies ignore
ports, so IAS, XSUAA and the gateway on loopback share one jar); Flask's ``session`` is unused.
The login cookie binds the login form to the browser that asked, so it cannot be posted from
elsewhere (login CSRF: it is SameSite=Lax).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    InvalidRequestError,
    OAuth2Error,
    UnsupportedResponseTypeError,
)
from authlib.oidc.core.errors import LoginRequiredError
from flask import Blueprint, Flask, Response, render_template, request
from werkzeug.datastructures import MultiDict

from emulator import codes, grants
from emulator.config import Client, EmulatorConfig, User
from emulator.state import EmulatorState, state

__all__ = ["init_app"]

bp = Blueprint("login", __name__)

MAX_PARAM = 2048  # longer authorization parameters are refused, not stored


@dataclass(frozen=True)
class _Service:
    name: str  # "ias" | "xsuaa": store key and fault endpoint prefix
    title: str
    login_path: str  # where the login form posts
    session_cookie: str
    login_cookie: str

    def client(self, cfg: EmulatorConfig, client_id: str) -> Client | None:
        client = cfg.ias_app if self.name == "ias" else cfg.app
        return client if client_id and client_id == client.client_id else None

    def issuer(self, cfg: EmulatorConfig) -> str:
        return cfg.urls.ias if self.name == "ias" else cfg.urls.xsuaa_issuer


IAS = _Service("ias", "SAP Cloud Identity Services", "/oauth2/login", "ias_session", "ias_login")
XSUAA = _Service("xsuaa", "SAP Authorization and Trust Management (XSUAA)", "/login.do", "xsuaa_session",
                 "xsuaa_login")


def init_app(app: Flask) -> None:
    """Register the login routes, IAS's token and userinfo endpoints."""
    app.register_blueprint(bp)
    app.register_blueprint(grants.bp)


@bp.get("/oauth2/authorize")
def ias_authorize() -> Response:
    return _authorize(IAS)


@bp.post("/oauth2/login")
def ias_login() -> Response:
    return _login(IAS)


@bp.get("/oauth/authorize")
def xsuaa_authorize() -> Response:
    return _authorize(XSUAA)


@bp.post("/login.do")
def xsuaa_login() -> Response:
    return _login(XSUAA)


@bp.get("/oauth2/logout")
def ias_logout() -> Response:
    """OIDC RP-initiated logout: exact ``post_logout_redirect_uri``, a valid ``id_token_hint``."""
    st = state()
    if (fault := st.faults.apply("ias.logout")) is not None:
        return fault
    cfg, args = st.config, request.args
    if _repeated(args):
        return _message(IAS, 400, "A logout parameter is repeated.")
    client_id = args.get("client_id")
    if client_id is not None and client_id != cfg.ias_app.client_id:
        return _message(IAS, 400, "Unknown client_id.")
    sid = None
    if (hint := args.get("id_token_hint")) is not None:
        claims = grants.ias_claims(st, hint, check_exp=False)
        if claims is None or claims.get("sap_id_type") != "user":  # a user's token, not the app's
            return _message(IAS, 400, "The id_token_hint is not an ID token of this tenant.")
        sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
    target = args.get("post_logout_redirect_uri")
    if target is not None and not _registered(target, cfg.ias_app.post_logout_redirect_uris):
        return _message(IAS, 400, "The post_logout_redirect_uri is not registered for this application.")
    codes.end_sessions(st, "ias", request.cookies.get(IAS.session_cookie), sid)
    if target is None:
        response = _message(IAS, 200, "You have been signed out.", failed=False)
    else:
        response = _redirect(add_params_to_uri(target, [("state", s)] if (s := args.get("state")) else []))
    _clear_cookie(response, IAS.session_cookie)
    return response


@bp.get("/logout.do")
def xsuaa_logout() -> Response:
    """UAA's logout: ``redirect`` only to the origin of one of the client's redirect URIs."""
    st = state()
    if (fault := st.faults.apply("xsuaa.logout")) is not None:
        return fault
    args = request.args
    if _repeated(args):
        return _message(XSUAA, 400, "A logout parameter is repeated.")
    target = args.get("redirect")
    if target is not None:
        client = XSUAA.client(st.config, args.get("client_id", ""))
        allowed = {_origin(uri) for uri in client.redirect_uris if "*" not in uri} if client else set()
        if _origin(target) not in allowed - {None}:
            return _message(XSUAA, 400, "The redirect is not allowed for this client.")
    codes.end_sessions(st, "xsuaa", request.cookies.get(XSUAA.session_cookie))
    signed_out = "You have been signed out."
    response = _redirect(target) if target else _message(XSUAA, 200, signed_out, failed=False)
    _clear_cookie(response, XSUAA.session_cookie)
    return response


def _authorize(svc: _Service) -> Response:
    """Check the authorization request, then sign in from the session or show the login page."""
    st = state()
    if (fault := st.faults.apply(f"{svc.name}.authorize")) is not None:
        return fault
    try:
        oauth_request = FlaskOAuth2Request(request)
    except OAuth2Error:  # http on a host that is no loopback (Authlib's transport check)
        return _message(svc, 400, "Open the login over https or on loopback.")
    payload = oauth_request.payload
    if any(len(payload.datalist.get(k, [])) > 1 for k in ("client_id", "redirect_uri")):
        return _message(svc, 400, "client_id and redirect_uri may be given only once.")
    client = svc.client(st.config, payload.data.get("client_id", ""))
    if client is None:
        return _message(svc, 400, "Unknown client_id.")
    redirect_uri = payload.data.get("redirect_uri", "")
    if not _registered(redirect_uri, client.redirect_uris):
        return _message(svc, 400, "The redirect_uri is not registered for this client.")
    request_state = payload.data.get("state") or None
    try:
        challenge = _checked_challenge(oauth_request)
    except OAuth2Error as exc:
        return _deny(svc, redirect_uri, exc, request_state)
    browser = request.cookies.get(svc.login_cookie) or secrets.token_urlsafe(16)
    pending = codes.Pending(svc.name, client.client_id, redirect_uri, request_state,
                            payload.data.get("nonce") or None, payload.data.get("scope") or "openid",
                            challenge, browser, created=codes.now(st))
    prompts = set(payload.data.get("prompt", "").split())
    current = codes.session(st, svc.name, request.cookies.get(svc.session_cookie))
    if current is not None and "login" not in prompts:  # single sign-on
        return _issue(st, svc, pending, current)
    if "none" in prompts:
        return _deny(svc, redirect_uri, LoginRequiredError(), request_state)
    response = _login_page(svc, codes.save_pending(st, pending))
    _set_cookie(response, svc.login_cookie, browser, codes.PENDING_LIFETIME)
    return response


def _checked_challenge(oauth_request: FlaskOAuth2Request) -> str:
    """The S256 code challenge of a well-formed code request; Authlib's error otherwise."""
    for values in oauth_request.payload.datalist.values():
        if len(values) > 1:
            raise InvalidRequestError("A parameter is repeated")
        if len(values[0]) > MAX_PARAM:
            raise InvalidRequestError("A parameter is too long")
    if oauth_request.payload.response_type != "code":  # no implicit or hybrid flow (IDP-06)
        raise UnsupportedResponseTypeError("", description="Only response_type=code is supported")
    return codes.check_challenge(oauth_request)


def _login(svc: _Service) -> Response:
    """The login form: a user's button, user name and password, or Deny."""
    st = state()
    form = request.form
    request_id = form.get("request", "")
    pending = codes.find_pending(st, svc.name, request_id, request.cookies.get(svc.login_cookie, ""))
    client = svc.client(st.config, pending.client_id) if pending else None
    if pending is None or client is None:
        return _message(svc, 400, "This login is unknown or has expired. Start again from the application.")
    if "deny" in form:
        if not codes.take_pending(st, request_id):
            return _message(svc, 400, "This login was already completed.")
        return _deny(svc, pending.redirect_uri, AccessDeniedError(), pending.state)
    user = _chosen_user(st.config, form)
    if user is None:
        return _login_page(svc, request_id, error="Unknown user or wrong password.", status=401)
    if not codes.take_pending(st, request_id):
        return _message(svc, 400, "This login was already completed.")
    cookie, current = codes.start_session(st, svc.name, user.name)
    response = _issue(st, svc, pending, current)
    _set_cookie(response, svc.session_cookie, cookie, codes.SESSION_LIFETIME)
    return response


def _chosen_user(cfg: EmulatorConfig, form: MultiDict[str, str]) -> User | None:
    if (name := form.get("user")) is not None:
        return cfg.users.get(name)
    user = cfg.user_by_login(form.get("username", "").strip())
    # Compared even for an unknown user, so the answer takes as long either way.
    expected = user.password if user is not None else secrets.token_urlsafe(16)
    matches = hmac.compare_digest(expected.encode(), form.get("password", "").encode())
    return user if matches else None


def _issue(st: EmulatorState, svc: _Service, pending: codes.Pending, current: codes.Session) -> Response:
    """The authorization response: a code for the signed-in user, with ``state`` and ``iss``."""
    grant = codes.Grant(svc.name, pending.client_id, current.user, pending.scope, pending.nonce, current.sid,
                        current.auth_time)
    code = codes.issue_code(st, grant, pending)
    params = [("code", code), *([("state", pending.state)] if pending.state else []),
              ("iss", svc.issuer(st.config))]
    return _redirect(add_params_to_uri(pending.redirect_uri, params))


def _deny(svc: _Service, redirect_uri: str, error: OAuth2Error, request_state: str | None) -> Response:
    """An error authorization response, redirected to the (already checked) ``redirect_uri``."""
    error.state = request_state
    params = [*error.get_body(), ("iss", svc.issuer(state().config))]
    return _redirect(add_params_to_uri(redirect_uri, params))


def _registered(uri: str, registered: tuple[str, ...]) -> bool:
    """Exact string comparison (RFC 9700 §2.1). Deployed wildcard patterns match nothing here:
    only the local origins' URIs, which ``load_config`` registers exactly, can be used."""
    return bool(uri) and uri in [r for r in registered if "*" not in r]


def _origin(url: str) -> tuple[str, str] | None:
    """(scheme, host:port) of an absolute http(s) URL; None for anything a browser may read otherwise."""
    if any(c.isspace() or c == "\\" or not c.isprintable() for c in url):
        return None
    try:
        parts = urlsplit(url)
        _ = parts.port  # a malformed port raises here
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    return parts.scheme, parts.netloc.lower()


def _repeated(args: MultiDict[str, str]) -> bool:
    return any(len(values) > 1 for values in args.listvalues())


def _login_page(svc: _Service, request_id: str, *, error: str | None = None,
                status: int = 200) -> Response:
    cfg = state().config
    users = [{"name": u.name, "email": u.email,
              "display": f"{u.given_name} {u.family_name}".strip() or u.name} for u in cfg.users.values()]
    name = cfg.app.xsappname.split("!", 1)[0]  # the app's name, as both services know it
    return _html(status, render_template("login.html", service_title=svc.title, tenant=cfg.subdomain,
                                         action=svc.login_path, request_id=request_id, users=users,
                                         client_name=name, error=error))


def _message(svc: _Service, status: int, text: str, *, failed: bool = True) -> Response:
    return _html(status, render_template("login.html", service_title=svc.title,
                                         tenant=state().config.subdomain, message=text, failed=failed))


def _html(status: int, body: str) -> Response:
    response = Response(body, status=status, content_type="text/html; charset=utf-8")
    # No framing (clickjacking of the login buttons), no scripts, nothing cached or referred.
    response.headers.update({"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                             "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                        "frame-ancestors 'none'",
                             "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})
    return response


def _redirect(location: str) -> Response:
    # No body: the code travels in the Location header only.
    return Response(status=302, headers={"Location": location, "Cache-Control": "no-store",
                                         "Referrer-Policy": "no-referrer"})


def _set_cookie(response: Response, name: str, value: str, max_age: float) -> None:
    response.set_cookie(name, value, max_age=int(max_age), path="/", httponly=True, samesite="Lax",
                        secure=request.is_secure)


def _clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="Lax", secure=request.is_secure)
