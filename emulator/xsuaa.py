"""The emulated XSUAA of the subaccount: token endpoint, keys, userinfo.

``/oauth/token`` authenticates the client first, checks that the client may use the grant
type, then runs the grant. The jwt-bearer grant follows UAA (btp-security.md §3.3): the
assertion's issuer must be the subaccount's trusted IAS tenant (and then its ``aud`` must
name the IAS application that represents this XSUAA: xsuaa-cross-consumption) or this
zone's own token endpoint with an ``origin``; the scopes are the client's scopes, as
requested, intersected with the user's role collections.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from emulator import grants
from emulator.clientauth import authenticate_client
from emulator.config import JWT_BEARER, Client, EmulatorConfig, User
from emulator.errors import (
    OAuthError,
    invalid_client,
    invalid_scope,
    invalid_token,
    unauthorized,
    unsupported_grant_type,
)
from emulator.keys import KeyRing
from emulator.state import EmulatorState, state

__all__ = ["GRANT_HANDLERS", "bp"]

bp = Blueprint("xsuaa", __name__)

GrantHandler = Callable[[EmulatorState, Client], dict[str, Any]]


@bp.post("/oauth/token")
def token() -> Response:
    st = state()
    if (fault := st.faults.apply("xsuaa.token")) is not None:
        return fault
    client = authenticate_client(st.config, request, (st.config.app, st.config.cpi))
    grant_type = request.form.get("grant_type", "")
    handler = GRANT_HANDLERS.get(grant_type)
    if handler is None:
        raise unsupported_grant_type(grant_type)
    if grant_type not in client.grant_types:
        raise invalid_client("Unauthorized grant type")
    response = jsonify(handler(st, client))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/token_keys")
def token_keys() -> Response:
    st = state()
    if (fault := st.faults.apply("xsuaa.keys")) is not None:
        return fault
    return jsonify(st.xsuaa_keys.jwks(with_pem=True))


@bp.get("/userinfo")
def userinfo() -> Response:
    st = state()
    claims = verify(st.xsuaa_keys, _bearer(), leeway=0)
    user = st.config.user_by_login(str(claims.get("user_name", "")))
    if user is None:
        raise invalid_token("The token carries no user")
    return jsonify(user_id=user.xsuaa_id, user_name=user.email, email=user.email, given_name=user.given_name,
                   family_name=user.family_name, name=f"{user.given_name} {user.family_name}".strip(),
                   origin=claims.get("origin"), zid=st.config.zone_id, user_attributes={})


def client_credentials(st: EmulatorState, client: Client) -> dict[str, Any]:
    access_token, claims = st.tokens.xsuaa_client_token(client)
    return _answer(access_token, claims)


def jwt_bearer(st: EmulatorState, client: Client) -> dict[str, Any]:
    """RFC 7523 with UAA's semantics: a user token of a trusted IdP becomes a token of ``client``."""
    cfg = st.config
    assertion = request.form.get("assertion")
    if not assertion:
        raise unauthorized("Assertion is missing")
    user, origin, auth_time = _assertion_user(st, assertion)
    granted = _granted_scopes(cfg, client, user, request.form.get("scope", ""))
    access_token, claims = st.tokens.xsuaa_user_token(user, client, granted, grant_type=JWT_BEARER,
                                                      origin=origin, auth_time=auth_time)
    return _answer(access_token, claims)


GRANT_HANDLERS: dict[str, GrantHandler] = {
    "client_credentials": client_credentials,
    JWT_BEARER: jwt_bearer,
    # the interactive login's grants (emulator.login, emulator.grants)
    "authorization_code": grants.xsuaa_authorization_code,
    "refresh_token": grants.xsuaa_refresh_token,
}


def _assertion_user(st: EmulatorState, assertion: str) -> tuple[User, str, int | None]:
    cfg = st.config
    # The issuer decides whose keys verify the assertion, so it is read before verifying.
    unverified = _claims_without_verifying(assertion)
    issuer = unverified.get("iss")
    if not issuer:
        raise unauthorized("Issuer is missing in id_token")
    if issuer == cfg.urls.ias:  # the trusted IAS tenant (OIDC trust of the subaccount)
        claims = verify(st.ias_keys, assertion)
        if cfg.ias_xsuaa_rp not in _list(claims.get("aud")):
            raise invalid_token(f"Some parties were not in the token audience: {cfg.ias_xsuaa_rp}")
        user = cfg.user_by_login(str(claims.get("email", "")))
        return _known(user), "sap.custom", claims.get("auth_time")
    if issuer == cfg.urls.xsuaa_issuer and unverified.get("origin"):  # a user token of this zone
        claims = verify(st.xsuaa_keys, assertion)
        user = cfg.user_by_login(str(claims.get("user_name", "")))
        return _known(user), str(claims["origin"]), claims.get("auth_time")
    raise unauthorized(f"Unable to map issuer, {str(issuer)[:200]} , to a single registered provider")


def verify(ring: KeyRing, token: str, leeway: int = 0) -> dict[str, Any]:
    """Signature with the service's published keys, and ``exp`` (UAA allows no leeway)."""
    try:
        claims = jwt.decode(token, KeySet.import_key_set(ring.jwks()), algorithms=["RS256"]).claims
    except (JoseError, ValueError):
        raise invalid_token("Could not verify token signature.") from None
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or exp + leeway <= time.time():
        raise invalid_token("Token does not bear a valid EXP claim.")
    return claims


def _granted_scopes(cfg: EmulatorConfig, client: Client, user: User, requested: str) -> list[str]:
    """requested (or all of the client's) ∩ client scopes ∩ the user's scopes + default openid."""
    wanted = set(requested.split()) or set(client.scopes)
    unknown = sorted(wanted - client.scopes)
    if unknown:
        raise invalid_scope(f"{unknown} is invalid. Please use a valid scope name in the request")
    granted = sorted(wanted & (cfg.user_scopes(user) | {"openid"}))
    if not granted:
        raise invalid_scope(f"{sorted(wanted)} is invalid. "
                            "This user is not allowed any of the requested scopes")
    return granted


def _known(user: User | None) -> User:
    if user is None:
        raise unauthorized("Unable to map claim to a username")
    return user


def _answer(access_token: str, claims: dict[str, Any]) -> dict[str, Any]:
    return {"access_token": access_token, "token_type": "bearer",
            "expires_in": int(claims["exp"]) - int(claims["iat"]), "scope": " ".join(claims["scope"]),
            "jti": claims["jti"]}


def _bearer() -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value:
        raise OAuthError(401, "unauthorized", "Full authentication is required to access this resource")
    return value


def _list(value: object) -> list[str]:
    return [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]


def _claims_without_verifying(token: str) -> dict[str, Any]:
    try:
        claims = json.loads(jws.extract_compact(token.encode("ascii")).payload)
    except (JoseError, ValueError, UnicodeError):
        raise unauthorized("Unable to decode expected id_token") from None
    if not isinstance(claims, dict):
        raise unauthorized("Unable to decode expected id_token")
    return claims
