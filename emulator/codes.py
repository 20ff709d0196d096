"""What the login flows remember: pending authorization requests, codes, sessions, refresh tokens.

Everything lives in ``state().store`` under ``state().lock``. Codes, refresh tokens and cookie
values are kept only as SHA-256 digests, so nothing held in memory can be replayed. Time comes
from ``store["login.clock"]`` (default ``time.time``) so tests can age codes without sleeping.

PKCE is checked here too, with Authlib's ``CodeChallenge`` narrowed to what RFC 9700 asks:
S256 only, required of every client (Authlib's ``required=True`` binds public clients only).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Request
from authlib.oauth2.rfc7636 import CodeChallenge, create_s256_code_challenge

from emulator.errors import invalid_grant
from emulator.state import EmulatorState

__all__ = ["CODE_LIFETIME", "Code", "Grant", "Pending", "Session", "check_challenge", "check_verifier",
           "end_sessions", "find_pending", "issue_code", "issue_refresh", "now", "redeem_code",
           "rotate_refresh", "save_pending", "session", "start_session", "take_pending"]

CODE_LIFETIME = 60.0  # IDP-03: one minute, well under RFC 6749's ten
PENDING_LIFETIME = 600.0  # time the user has on the login page
SESSION_LIFETIME = 8 * 3600.0
REFRESH_LIFETIME = 12 * 3600.0
USED_CODE_MEMORY = 600.0  # a redeemed code is remembered this long, to notice its reuse


@dataclass(frozen=True)
class Grant:
    """What the user authorised, which a code and then its refresh tokens stand for."""

    service: str  # "ias" | "xsuaa"
    client_id: str
    user: str  # key of config.users
    scope: str
    nonce: str | None
    sid: str  # the session's public id (the id token's "sid"), never the cookie value
    auth_time: int
    #: one per code: reusing the code revokes every refresh token of its family
    family: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class Pending:
    """A validated authorization request waiting for the user on the login page."""

    service: str
    client_id: str
    redirect_uri: str
    state: str | None
    nonce: str | None
    scope: str
    code_challenge: str
    browser: str  # the login cookie of the browser that asked (no login CSRF)
    created: float


@dataclass
class Code:
    grant: Grant
    redirect_uri: str
    code_challenge: str
    created: float
    code_challenge_method: str = "S256"
    used: bool = False


@dataclass(frozen=True)
class Session:
    service: str
    user: str
    sid: str
    auth_time: int
    created: float


@dataclass(frozen=True)
class _Refresh:
    grant: Grant
    created: float


def now(st: EmulatorState) -> float:
    clock: Callable[[], float] = st.store.get("login.clock", time.time)
    return clock()


def save_pending(st: EmulatorState, pending: Pending) -> str:
    """Remember ``pending``; the id returned goes into the login form."""
    request_id = secrets.token_urlsafe(24)
    with st.lock:
        _purge(st, pending.created)
        _bucket(st, "pending")[request_id] = pending
    return request_id


def find_pending(st: EmulatorState, service: str, request_id: str, browser: str) -> Pending | None:
    """The pending request, if it is this service's, still fresh, and asked for by this browser."""
    with st.lock:
        pending = _bucket(st, "pending").get(request_id)
    if pending is None or pending.service != service or now(st) - pending.created > PENDING_LIFETIME:
        return None
    return pending if hmac.compare_digest(pending.browser.encode(), browser.encode()) else None


def take_pending(st: EmulatorState, request_id: str) -> bool:
    """Use up a pending request; False if another submit got there first."""
    with st.lock:
        return _bucket(st, "pending").pop(request_id, None) is not None


def issue_code(st: EmulatorState, grant: Grant, pending: Pending) -> str:
    code = secrets.token_urlsafe(32)
    with st.lock:
        _purge(st, now(st))
        _bucket(st, "codes")[_digest(code)] = Code(grant, pending.redirect_uri, pending.code_challenge,
                                                   created=now(st))
    return code


def redeem_code(st: EmulatorState, code: str, check: Callable[[Code], None]) -> Grant:
    """Use up ``code`` after ``check`` (client, redirect_uri, PKCE) passed; a second use revokes
    the refresh tokens issued from the first (RFC 6749 §4.1.2, IDP-03)."""
    with st.lock:
        record = _bucket(st, "codes").get(_digest(code))
        if record is None:
            raise invalid_grant("Invalid authorization code")
        if record.used:
            _revoke(st, lambda g: g.family == record.grant.family)
            raise invalid_grant("Authorization code has already been used")
        if now(st) - record.created > CODE_LIFETIME:
            raise invalid_grant("Authorization code has expired")
        check(record)
        record.used = True
        return record.grant


def issue_refresh(st: EmulatorState, grant: Grant) -> str:
    token = secrets.token_urlsafe(32)
    with st.lock:
        _bucket(st, "refresh")[_digest(token)] = _Refresh(grant, now(st))
    return token


def rotate_refresh(st: EmulatorState, token: str, service: str, client_id: str) -> tuple[Grant, str]:
    """The grant behind ``token`` and its successor; ``token`` itself stops working."""
    successor = secrets.token_urlsafe(32)
    with st.lock:
        refreshes = _bucket(st, "refresh")
        record = refreshes.get(_digest(token))
        if record is None or record.grant.service != service or record.grant.client_id != client_id:
            raise invalid_grant("Invalid refresh token")
        del refreshes[_digest(token)]
        if now(st) - record.created > REFRESH_LIFETIME:
            raise invalid_grant("Invalid refresh token (expired)")
        refreshes[_digest(successor)] = _Refresh(record.grant, now(st))
        return record.grant, successor


def start_session(st: EmulatorState, service: str, user: str) -> tuple[str, Session]:
    """A new login session; the first value is the cookie, the session holds only its digest."""
    cookie = secrets.token_urlsafe(32)
    at = now(st)
    record = Session(service, user, sid=f"S-SP-{uuid.uuid4()}", auth_time=int(time.time()), created=at)
    with st.lock:
        _bucket(st, "sessions")[_digest(cookie)] = record
    return cookie, record


def session(st: EmulatorState, service: str, cookie: str | None) -> Session | None:
    if not cookie:
        return None
    with st.lock:
        record = _bucket(st, "sessions").get(_digest(cookie))
    if record is None or record.service != service or now(st) - record.created > SESSION_LIFETIME:
        return None
    return record


def end_sessions(st: EmulatorState, service: str, cookie: str | None, sid: str | None = None) -> None:
    """End the cookie's session (and the one named ``sid``) and revoke their refresh tokens."""
    with st.lock:
        sessions = _bucket(st, "sessions")
        ended = {sid} if sid else set()
        if cookie and (record := sessions.get(_digest(cookie))) is not None and record.service == service:
            ended.add(record.sid)
        for key in [k for k, s in sessions.items() if s.service == service and s.sid in ended]:
            del sessions[key]
        _revoke(st, lambda g: g.service == service and g.sid in ended)


class S256Challenge(CodeChallenge):
    """Authlib's PKCE check, made strict: no ``plain`` (nor its default), none skipped."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {
        "S256": lambda verifier, challenge: hmac.compare_digest(create_s256_code_challenge(verifier),
                                                                challenge)}

    def validate_code_challenge(self, grant: Any, redirect_uri: Any) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE is required")
        # Without a method RFC 7636 means plain, which is a downgrade: refused like plain.
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'")
        super().validate_code_verifier(grant, result)


_PKCE = S256Challenge(required=True)


def check_challenge(oauth_request: OAuth2Request) -> str:
    """The request's S256 code challenge; Authlib ``OAuth2Error`` if it has none fit for use."""
    # CodeChallenge reads only ``grant.request``: a namespace stands in for Authlib's grant.
    _PKCE.validate_code_challenge(SimpleNamespace(request=oauth_request), None)
    return str(oauth_request.payload.data["code_challenge"])


def check_verifier(oauth_request: OAuth2Request, code: Code) -> None:
    """Raise Authlib's ``OAuth2Error`` unless the token request's verifier matches ``code``."""
    oauth_request.authorization_code = code
    _PKCE.validate_code_verifier(SimpleNamespace(request=oauth_request), None)


def _bucket(st: EmulatorState, name: str) -> dict[str, Any]:
    return st.store.setdefault(f"login.{name}", {})


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _revoke(st: EmulatorState, matches: Callable[[Grant], bool]) -> None:
    """Drop the refresh tokens whose grant ``matches``; the caller holds the lock."""
    refreshes = _bucket(st, "refresh")
    for key in [k for k, r in refreshes.items() if matches(r.grant)]:
        del refreshes[key]


def _purge(st: EmulatorState, at: float) -> None:
    """Forget what has expired, so the stores stay small; the caller holds the lock."""
    for name, lifetime in (("pending", PENDING_LIFETIME), ("codes", USED_CODE_MEMORY),
                           ("sessions", SESSION_LIFETIME), ("refresh", REFRESH_LIFETIME)):
        bucket = _bucket(st, name)
        for key in [k for k, v in bucket.items() if at - v.created > lifetime]:
            del bucket[key]
