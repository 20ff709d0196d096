"""The bearer token of a request: from the Authorization header only (RFC 6750 §2.1)."""

from __future__ import annotations

import re

from flask import Request

from seccore import TokenMalformed

__all__ = ["bearer_token"]

_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None when there is no header.

    Tokens in the query string, the form body or a cookie are ignored (RFC 6750 §2.3,
    §5.3): they end up in logs and browser history.
    """
    values = request.headers.getlist("Authorization")
    if not values:
        return None
    if len(values) > 1:
        raise TokenMalformed("the request has more than one Authorization header", step="validate")
    scheme, _, token = values[0].partition(" ")
    if scheme.lower() != "bearer" or not _TOKEN68.fullmatch(token):
        raise TokenMalformed("the Authorization header is not of the form 'Bearer <token>'",
                             step="validate")
    return token
