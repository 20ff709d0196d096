"""The back channel of the login flows: the code and refresh grants of XSUAA (run by the token
endpoint of ``emulator.xsuaa``, which authenticates the client first) and the token and
userinfo endpoints of the emulated IAS.

Tokens come from ``TokenFactory``, so they carry the services' shapes and signing keys. IAS
answers an ID token as the access token too, as its OIDC applications get JWT access tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2.rfc6749 import OAuth2Error
from flask import Blueprint, Response, jsonify, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from emulator import codes
from emulator.clientauth import authenticate_client
from emulator.config import Client, User
from emulator.errors import (
    OAuthError,
    invalid_client,
    invalid_grant,
    invalid_request,
    invalid_token,
    unsupported_grant_type,
)
from emulator.state import EmulatorState, state

__all__ = ["bp", "ias_claims", "xsuaa_authorization_code", "xsuaa_refresh_token"]

bp = Blueprint("ias_token", __name__)


def xsuaa_authorization_code(st: EmulatorState, client: Client) -> dict[str, Any]:
    """UAA's authorization_code grant: a user token of ``client`` and a refresh token."""
    grant = _redeem(st, "xsuaa", client)
    return _xsuaa_answer(st, client, grant, codes.issue_refresh(st, grant), "authorization_code")


def xsuaa_refresh_token(st: EmulatorState, client: Client) -> dict[str, Any]:
    """A fresh user token; the refresh token rotates (the presented one stops working)."""
    grant, refresh_token = codes.rotate_refresh(st, _single("refresh_token"), "xsuaa", client.client_id)
    return _xsuaa_answer(st, client, grant, refresh_token, "refresh_token")


@bp.post("/oauth2/token")
def ias_token() -> Response:
    st = state()
    if (fault := st.faults.apply("ias.token")) is not None:
        return fault
    try:
        client = authenticate_client(st.config, request, (st.config.ias_app,))
    except OAuthError as exc:
        if exc.error != "unauthorized":
            raise
        raise invalid_client("Client authentication failed") from None  # IAS's word for it
    grant_type = request.form.get("grant_type", "")
    handler = _IAS_GRANTS.get(grant_type)
    if handler is None:  # password and implicit too (IDP-06)
        raise unsupported_grant_type(grant_type)
    if grant_type not in client.grant_types:
        raise OAuthError(400, "unauthorized_client", "The client may not use this grant type")
    app_tid = request.form.get("app_tid")
    if app_tid and app_tid != st.config.zone_id:
        raise invalid_request("app_tid does not name this tenant")
    response = jsonify(handler(st, client))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/oauth2/userinfo", methods=["GET", "POST"])
def ias_userinfo() -> Response:
    st = state()
    if (fault := st.faults.apply("ias.userinfo")) is not None:
        return fault
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise invalid_token("A Bearer token is required")
    claims = ias_claims(st, token.strip())
    user = st.config.user_by_login(str(claims.get("email", ""))) if claims else None
    if user is None:
        raise invalid_token("The token is not a valid user token of this tenant")
    return jsonify(sub=user.id, user_uuid=user.id, email=user.email, email_verified=True,
                   given_name=user.given_name, family_name=user.family_name, groups=list(user.groups),
                   app_tid=st.config.zone_id)


def ias_claims(st: EmulatorState, token: str, *, check_exp: bool = True) -> dict[str, Any] | None:
    """The claims of a token this IAS tenant signed for the app, else None. Logout passes
    ``check_exp=False``: an expired ID token still names the session (OIDC RP-Initiated Logout §2)."""
    cfg = st.config
    try:
        claims = jwt.decode(token, KeySet.import_key_set(st.ias_keys.jwks()), algorithms=["RS256"]).claims
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    exp = claims.get("exp")
    if (claims.get("iss") != cfg.urls.ias or claims.get("app_tid") != cfg.zone_id
            or cfg.ias_app.client_id not in audiences or not isinstance(exp, (int, float))
            or (check_exp and exp <= time.time())):
        return None
    return claims


def _ias_authorization_code(st: EmulatorState, client: Client) -> dict[str, Any]:
    grant = _redeem(st, "ias", client)
    return _ias_answer(st, grant, codes.issue_refresh(st, grant), nonce=grant.nonce)


def _ias_refresh_token(st: EmulatorState, client: Client) -> dict[str, Any]:
    grant, refresh_token = codes.rotate_refresh(st, _single("refresh_token"), "ias", client.client_id)
    # No nonce in an ID token from a refresh (OIDC Core §12.2).
    return _ias_answer(st, grant, refresh_token, nonce=None)


def _ias_client_credentials(st: EmulatorState, client: Client) -> dict[str, Any]:
    """A token of the application itself: no user, ``sub`` is the client id."""
    token, _ = st.tokens.ias_client_token(client)
    return {"access_token": token, "token_type": "Bearer", "expires_in": st.config.ias_token_validity}


_IAS_GRANTS: dict[str, Callable[[EmulatorState, Client], dict[str, Any]]] = {
    "authorization_code": _ias_authorization_code,
    "refresh_token": _ias_refresh_token,
    "client_credentials": _ias_client_credentials,
}


def _redeem(st: EmulatorState, service: str, client: Client) -> codes.Grant:
    """The grant of the code in the request, once client, redirect_uri and PKCE verifier fit it."""
    code = _single("code")
    try:
        oauth_request = FlaskOAuth2Request(request)  # refuses a non-loopback http URL (Host header)
    except OAuth2Error:
        raise invalid_request("The token endpoint is served over https or on loopback") from None

    def check(record: codes.Code) -> None:
        if record.grant.service != service or record.grant.client_id != client.client_id:
            raise invalid_grant("Invalid authorization code")
        if request.form.get("redirect_uri") != record.redirect_uri:
            raise invalid_grant("Redirect URI mismatch")
        try:
            codes.check_verifier(oauth_request, record)
        except OAuth2Error as exc:  # Authlib's errors, answered in the service's JSON
            raise OAuthError(exc.status_code, str(exc.error), str(exc.description)) from None

    return codes.redeem_code(st, code, check)


def _single(name: str) -> str:
    """A required form parameter that occurs once (repeats are refused: RFC 6749 §3.2)."""
    values = request.form.getlist(name)
    if len(values) != 1 or not values[0]:
        raise invalid_request(f"Exactly one {name} is required")
    return values[0]


def _user(st: EmulatorState, grant: codes.Grant) -> User:
    user = st.config.users.get(grant.user)
    if user is None:
        raise invalid_grant("The user of this grant is gone")
    return user


def _xsuaa_answer(st: EmulatorState, client: Client, grant: codes.Grant, refresh_token: str,
                  grant_type: str) -> dict[str, Any]:
    cfg, user = st.config, _user(st, grant)
    scopes = (cfg.user_scopes(user) | {"openid"}) & client.scopes
    access_token, claims = st.tokens.xsuaa_user_token(user, client, scopes, grant_type=grant_type,
                                                      auth_time=grant.auth_time)
    return {"access_token": access_token, "token_type": "bearer", "refresh_token": refresh_token,
            "expires_in": int(claims["exp"]) - int(claims["iat"]), "scope": " ".join(claims["scope"]),
            "jti": claims["jti"]}


def _ias_answer(st: EmulatorState, grant: codes.Grant, refresh_token: str,
                nonce: str | None) -> dict[str, Any]:
    user = _user(st, grant)
    auth_time = {"auth_time": grant.auth_time}
    id_token, claims = st.tokens.ias_id_token(user, nonce=nonce, sid=grant.sid, extra=auth_time)
    access_token, _ = st.tokens.ias_id_token(user, sid=grant.sid, extra=auth_time)
    return {"access_token": access_token, "id_token": id_token, "refresh_token": refresh_token,
            "token_type": "Bearer", "expires_in": int(claims["exp"]) - int(claims["iat"]),
            "scope": grant.scope}
