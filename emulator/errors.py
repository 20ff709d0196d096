"""OAuth errors as UAA and IAS answer them: RFC 6749 §5.2 JSON, with UAA's descriptions."""

from __future__ import annotations

from flask import Flask, Response, jsonify

__all__ = ["OAuthError", "invalid_client", "invalid_grant", "invalid_request", "invalid_scope",
           "invalid_token", "register_error_handler", "unauthorized", "unsupported_grant_type"]


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def unauthorized(description: str) -> OAuthError:
    return OAuthError(401, "unauthorized", description)


def invalid_client(description: str) -> OAuthError:
    return OAuthError(401, "invalid_client", description)


def invalid_token(description: str) -> OAuthError:
    return OAuthError(401, "invalid_token", description)


def invalid_scope(description: str) -> OAuthError:
    return OAuthError(400, "invalid_scope", description)


def invalid_request(description: str) -> OAuthError:
    return OAuthError(400, "invalid_request", description)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", description)


def unsupported_grant_type(grant_type: str) -> OAuthError:
    return OAuthError(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type[:80]}")


def register_error_handler(app: Flask) -> None:
    app.register_error_handler(OAuthError, _oauth_error)


def _oauth_error(exc: OAuthError) -> Response:
    response = jsonify(error=exc.error, error_description=exc.description)
    response.status_code = exc.status
    response.headers["Cache-Control"] = "no-store"
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer realm="oauth", error="{exc.error}"'
    return response
