"""The emulated IAS tenant: OIDC discovery and keys. The login flows (authorize, token,
userinfo, end-session) are in ``emulator.login``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from emulator.state import state

__all__ = ["bp", "discovery_document"]

bp = Blueprint("ias", __name__)


def discovery_document() -> dict[str, object]:
    urls = state().config.urls
    return {
        "issuer": urls.ias,
        "authorization_endpoint": f"{urls.browser}/oauth2/authorize",
        "token_endpoint": f"{urls.ias}/oauth2/token",
        "userinfo_endpoint": f"{urls.ias}/oauth2/userinfo",
        "end_session_endpoint": f"{urls.browser}/oauth2/logout",
        "jwks_uri": f"{urls.ias}/oauth2/certs",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile", "groups"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "email", "given_name", "family_name",
                             "groups", "app_tid", "user_uuid", "sid", "azp"],
        "authorization_response_iss_parameter_supported": True,
    }


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    st = state()
    if (fault := st.faults.apply("ias.discovery")) is not None:
        return fault
    return jsonify(discovery_document())


@bp.get("/oauth2/certs")
def certs() -> Response:
    st = state()
    if (fault := st.faults.apply("ias.keys")) is not None:
        return fault
    return jsonify(st.ias_keys.jwks())
