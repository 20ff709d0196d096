"""What the page shows of a token: its claims as rows, and whose client each ``aud`` entry is."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from seccore import Bindings

__all__ = ["EXPLAIN", "FIRST", "audience_owner", "shown_value", "token_view"]

MAX_VALUE_CHARS = 2000
#: Claims that matter for the exchange first, the rest alphabetically.
FIRST = ("iss", "aud", "azp", "cid", "client_id", "grant_type", "scope", "origin", "user_name",
         "email", "given_name", "family_name", "groups", "xs.system.attributes",
         "xs.user.attributes", "ext_attr", "app_tid", "zid", "sub", "iat", "exp")

EXPLAIN = {
    "iss": "who issued the token: the IAS tenant, or the subaccount's XSUAA token endpoint",
    "aud": "whom the token is for; the exchange needs the subaccount XSUAA in an IAS token's aud",
    "scope": "what the token allows; CPI checks its sender adapter's role here",
    "grant_type": "how the token was obtained; after the exchange it is the jwt-bearer URN",
    "origin": "the identity provider the user logged in with, as XSUAA knows it",
    "user_name": "the user, carried over from the first token by the exchange",
    "email": "the user's e-mail, carried over by the exchange",
    "groups": "IAS groups; the subaccount maps them to role collections",
    "xs.system.attributes": "the role collections XSUAA found for the user",
    "ext_attr": "XSUAA additions: subaccount, subdomain, service instance",
    "app_tid": "the subaccount's tenant id as IAS knows it (XSUAA's zid)",
    "zid": "the XSUAA zone (subaccount tenant) that issued the token",
}


def audience_owner(value: str, bindings: Bindings) -> str:
    """Whose client an ``aud`` entry names, in words."""
    xsuaa, ias, cpi = bindings.xsuaa, bindings.ias, bindings.cpi
    if value == cpi.client_id:
        return "CPI (client of the it-rt binding)"
    if cpi.broker_xsappname and value.split(".", 1)[0] == cpi.broker_xsappname:
        return "CPI runtime (it-rt xsappname)"
    if ias and value == ias.client_id:
        return "this app (IAS client)"
    if xsuaa and value == xsuaa.client_id:
        return "this app (XSUAA client)"
    if xsuaa and value.split(".", 1)[0] == xsuaa.xsappname:
        return "this app (xsappname)"
    if value == "openid":
        return "OpenID (scope prefix)"
    if ias:
        return "another IAS application: the subaccount's XSUAA when xsuaa-cross-consumption is on"
    return "another client"


def token_view(claims: Mapping[str, Any], header: Mapping[str, Any], kind: str, fingerprint: str,
               bindings: Bindings) -> dict[str, Any]:
    """The JSON form of a token for the page and the API: never the token itself."""
    aud = claims.get("aud")
    entries = [aud] if isinstance(aud, str) else [a for a in aud or [] if isinstance(a, str)]
    return {
        "kind": kind,
        "fingerprint": fingerprint,
        "header": {k: header[k] for k in ("alg", "kid", "typ", "jku") if k in header},
        "claims": dict(claims),
        "audiences": [{"value": a, "owner": audience_owner(a, bindings)} for a in entries],
    }


def shown_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=1, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + " …"
