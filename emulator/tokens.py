"""Tokens shaped as XSUAA and IAS issue them (btp-security.md §5), signed by the service's key."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from joserfc import jwt

from emulator.config import Client, EmulatorConfig, User
from emulator.keys import KeyRing

__all__ = ["TokenFactory", "resource_ids"]


def resource_ids(scopes: Iterable[str]) -> list[str]:
    """UAA puts each granted scope's resource id (the scope cut before its last dot) in aud."""
    return sorted({s.rsplit(".", 1)[0] if "." in s else s for s in scopes})


class TokenFactory:
    """Signs XSUAA and IAS tokens for the emulated subaccount."""

    def __init__(self, config: EmulatorConfig, xsuaa_keys: KeyRing, ias_keys: KeyRing) -> None:
        self.config = config
        self.xsuaa_keys = xsuaa_keys
        self.ias_keys = ias_keys
        #: claim overrides for the next tokens, set through the admin API (fault injection)
        self.overrides: dict[str, Any] = {}

    def xsuaa_user_token(self, user: User, client: Client, scopes: Iterable[str], *, grant_type: str,
                         origin: str = "sap.custom",
                         auth_time: int | None = None) -> tuple[str, dict[str, Any]]:
        """A user token of ``client`` (authorization_code, refresh or jwt-bearer)."""
        cfg, now = self.config, int(time.time())
        granted = sorted(set(scopes))
        claims: dict[str, Any] = {
            "jti": uuid.uuid4().hex,
            "ext_attr": self._ext_attr(client),
            "xs.system.attributes": {"xs.rolecollections": cfg.user_role_collections(user)},
            "given_name": user.given_name, "family_name": user.family_name, "xs.user.attributes": {},
            "sub": user.xsuaa_id, "scope": granted, "client_id": client.client_id, "cid": client.client_id,
            "azp": client.client_id, "grant_type": grant_type, "user_id": user.xsuaa_id, "origin": origin,
            "user_name": user.email, "email": user.email, "auth_time": auth_time or now,
            "rev_sig": uuid.uuid5(uuid.NAMESPACE_URL, user.id).hex[:8], "iat": now,
            "exp": now + cfg.token_validity, "iss": cfg.urls.xsuaa_issuer, "zid": cfg.zone_id,
            "aud": sorted({client.client_id, *resource_ids(granted)}),
        }
        return self._sign_xsuaa(claims), claims

    def xsuaa_client_token(self, client: Client) -> tuple[str, dict[str, Any]]:
        """A client-credentials token: the client's own authorities, no user."""
        cfg, now = self.config, int(time.time())
        scopes = sorted(s for s in client.scopes if s != "openid")
        claims = {
            "jti": uuid.uuid4().hex, "ext_attr": self._ext_attr(client), "sub": client.client_id,
            "authorities": scopes, "scope": scopes, "client_id": client.client_id, "cid": client.client_id,
            "azp": client.client_id, "grant_type": "client_credentials", "rev_sig": "c1d2e3f4", "iat": now,
            "exp": now + cfg.token_validity, "iss": cfg.urls.xsuaa_issuer, "zid": cfg.zone_id,
            "aud": sorted({client.client_id, *resource_ids(scopes)}),
        }
        return self._sign_xsuaa(claims), claims

    def ias_id_token(self, user: User, *, nonce: str | None = None, sid: str | None = None,
                     extra: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """An IAS ID token for the app's IAS application; with xsuaa-cross-consumption its aud
        also names the IAS application that represents the subaccount's XSUAA."""
        cfg, now = self.config, int(time.time())
        aud = [cfg.ias_app.client_id] + ([cfg.ias_xsuaa_rp] if cfg.cross_consumption else [])
        claims: dict[str, Any] = {
            "sub": user.id, "user_uuid": user.id, "scim_id": user.id, "app_tid": cfg.zone_id,
            "iss": cfg.urls.ias, "ias_iss": cfg.urls.ias, "given_name": user.given_name,
            "family_name": user.family_name, "email": user.email, "email_verified": True,
            "groups": list(user.groups), "sid": sid or f"S-SP-{uuid.uuid4()}", "aud": aud,
            "azp": cfg.ias_app.client_id, "sap_id_type": "user", "jti": str(uuid.uuid4()),
            "auth_time": now, "iat": now, "exp": now + cfg.ias_token_validity, **(extra or {}),
        }
        if nonce:
            claims["nonce"] = nonce
        return self._sign(self.ias_keys, {"typ": "JWT"}, claims), claims

    def ias_client_token(self, client: Client) -> tuple[str, dict[str, Any]]:
        """An IAS token of the application itself (client credentials): no user."""
        cfg, now = self.config, int(time.time())
        claims = {"sub": client.client_id, "azp": client.client_id, "aud": [client.client_id],
                  "iss": cfg.urls.ias, "ias_iss": cfg.urls.ias, "app_tid": cfg.zone_id, "sap_id_type": "app",
                  "jti": str(uuid.uuid4()), "iat": now, "exp": now + cfg.ias_token_validity}
        return self._sign(self.ias_keys, {"typ": "JWT"}, claims), claims

    def _ext_attr(self, client: Client) -> dict[str, str]:
        ext = {"enhancer": "XSUAA", "subaccountid": self.config.subaccount_id, "zdn": self.config.subdomain}
        if "!b" in client.client_id:
            ext["serviceinstanceid"] = client.client_id.split("!b", 1)[0].removeprefix("sb-")
        return ext

    def _sign_xsuaa(self, claims: dict[str, Any]) -> str:
        jku = f"https://{self.config.subdomain}.{self.config.urls.uaadomain}/token_keys"
        return self._sign(self.xsuaa_keys, {"typ": "JWT", "jku": jku}, claims)

    def _sign(self, ring: KeyRing, header: dict[str, Any], claims: dict[str, Any]) -> str:
        claims.update(self.overrides)
        kid, key = ring.signing
        return jwt.encode({"alg": "RS256", "kid": kid, **header}, claims, key, algorithms=["RS256"])
