"""CSRF protection with approuter's semantics (approuter.md §2.7, catalogue SES-10).

A client fetches the token with ``GET``/``HEAD`` and ``x-csrf-token: fetch``; the answer
carries it in ``x-csrf-token``. Every state-changing request to a protected route must send
it back; otherwise the gateway answers 403 with ``x-csrf-token: Required``.

There is one token per session: a second fetch returns the same token, so a UI5 model that
cached it keeps working, and it dies with the session (logout, idle timeout). A client that
gets 403 ``Required`` after a new login fetches again (approuter.md §4 pain point 3).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

__all__ = [
    "FETCH_VALUE", "HEADER", "REQUIRED_VALUE", "SAFE_METHODS", "SESSION_KEY", "check", "is_fetch",
    "issue_token", "needs_check",
]

HEADER = "x-csrf-token"
#: the request header value that asks for the token (compared case-insensitively)
FETCH_VALUE = "fetch"
#: the response header value of a refusal (403)
REQUIRED_VALUE = "Required"
#: methods that need no token: they must not change state
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: where the token lives in the session dict
SESSION_KEY = "csrf_secret"


def issue_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, created and stored in ``session`` on the first fetch.

    The caller saves the session afterwards. The stored secret is the token itself: 256 bits
    from the CSPRNG that only this session's owner is shown, so deriving or salting it would
    add nothing that the session store does not already protect.
    """
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def check(session: dict[str, Any], header_value: str | None) -> bool:
    """True when ``header_value`` is this session's token; False when none was issued."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token or not header_value:
        return False
    # Bytes, because compare_digest refuses str with non-ASCII characters (a header may hold
    # any Latin-1 text); the comparison time does not depend on where the values differ.
    return hmac.compare_digest(header_value.encode("utf-8", "surrogateescape"), token.encode("ascii"))


def is_fetch(header_value: str | None) -> bool:
    """True when the ``x-csrf-token`` request header asks for the token."""
    return header_value is not None and header_value.strip().lower() == FETCH_VALUE


def needs_check(method: str, route_csrf: bool, public: bool) -> bool:
    """True for a state-changing method on a non-public route whose ``csrfProtection`` is on."""
    return route_csrf and not public and method.upper() not in SAFE_METHODS
