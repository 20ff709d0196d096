"""Keys, tokens, JWKS and bindings for tests, in realistic BTP shapes.

Tokens are signed with PyJWT + cryptography, not with the library the app validates with,
so a shared bug cannot hide. ``sign_raw`` signs arbitrary header/payload bytes for the
malformed-token cases.
"""

from __future__ import annotations

import base64
import json
import time
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from seccore import Bindings, ClientCredentials, CpiBinding, IasBinding, XsuaaBinding

UAA_DOMAIN = "authentication.eu10.hana.ondemand.com"
SUBDOMAIN = "mysub"
ZONE_ID = "6a2b8f5e-1c2d-4e3f-9a8b-7c6d5e4f3a2b"
XSUAA_TOKEN_URL = f"https://{SUBDOMAIN}.{UAA_DOMAIN}/oauth/token"
XSUAA_JWKS_URL = f"https://{UAA_DOMAIN}/token_keys?zid={ZONE_ID}"
XSAPPNAME = "frontapp!t4711"
XSUAA_CLIENT_ID = "sb-frontapp!t4711"
IAS_DOMAIN = "accounts.ondemand.com"
IAS_ISSUER = f"https://mytenant.{IAS_DOMAIN}"
IAS_JWKS_URL = f"{IAS_ISSUER}/oauth2/certs"
IAS_CLIENT_ID = "0f6c1c2e-5e6a-4c43-9a38-8f1e6a4f2b11"
IAS_XSUAA_RP = "3a1d9e7c-8b2f-4d5e-a6c7-0b9e8d7c6f5a"  # IAS app "XSUAA_<subaccount>"
CPI_BROKER = f"it-rt-{SUBDOMAIN}!b196"
CPI_CLIENT_ID = f"sb-2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901!b12345|{CPI_BROKER}"
CPI_SECRET = "s3cr3t+with/special=chars$"
CPI_URL = f"https://{SUBDOMAIN}.it-cpi018-rt.cfapps.eu10-003.hana.ondemand.com"
CPI_ROLE_SCOPE = f"{CPI_BROKER}.Ntif.Read"
KID = "default-jwt-key-1"


def rsa_key(name: str = "xsuaa", bits: int = 2048) -> rsa.RSAPrivateKey:
    """A private key per (name, size), generated once per test session."""
    return _rsa_key(name, bits)  # positional, so rsa_key("x") and rsa_key("x", 2048) are one key


@cache
def _rsa_key(name: str, bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def public_jwk(name: str = "xsuaa", kid: str = KID, bits: int = 2048) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key(name, bits).public_key()))
    pem = rsa_key(name, bits).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256", "value": pem}


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(keys) or [public_jwk()]}


def xsuaa_claims(**changes: Any) -> dict[str, Any]:
    """An XSUAA user token (authorization_code) of frontapp, as XSUAA issues it."""
    now = int(time.time())
    claims = {
        "jti": "a62729d4d76f4e1c8054919cdfa34630",
        "ext_attr": {"enhancer": "XSUAA", "subaccountid": "06c0ad74-d224-463c-b46e-5f4d9c4bbcab",
                     "zdn": SUBDOMAIN},
        "xs.system.attributes": {"xs.rolecollections": ["CPI_Notification_Reader"]},
        "given_name": "Jane", "family_name": "Doe", "xs.user.attributes": {},
        "sub": "659444b2-372f-469d-ad9f-493827f759ab", "user_id": "659444b2-372f-469d-ad9f-493827f759ab",
        "scope": ["openid", f"{XSAPPNAME}.Display"],
        "client_id": XSUAA_CLIENT_ID, "cid": XSUAA_CLIENT_ID, "azp": XSUAA_CLIENT_ID,
        "grant_type": "authorization_code", "origin": "sap.default",
        "user_name": "jane.doe@example.com", "email": "jane.doe@example.com",
        "auth_time": now - 60, "rev_sig": "39022418", "iat": now - 30, "exp": now + 3600,
        "iss": XSUAA_TOKEN_URL, "zid": ZONE_ID, "aud": ["openid", XSUAA_CLIENT_ID, XSAPPNAME],
    }
    return _apply(claims, changes)


def ias_claims(**changes: Any) -> dict[str, Any]:
    """An IAS ID token of frontapp's IAS app with xsuaa-cross-consumption on."""
    now = int(time.time())
    claims = {
        "sub": "b9ccd102-ffe2-420b-adf8-8101fc73c1ba", "user_uuid": "b9ccd102-ffe2-420b-adf8-8101fc73c1ba",
        "scim_id": "b9ccd102-ffe2-420b-adf8-8101fc73c1ba", "app_tid": ZONE_ID,
        "iss": IAS_ISSUER, "ias_iss": IAS_ISSUER, "given_name": "Jane", "family_name": "Doe",
        "email": "jane.doe@example.com", "email_verified": True, "groups": ["CPI_Notification_Reader"],
        "sid": "S-SP-383b7eb5-1ff4-487e-882b-de82488e29ed", "aud": [IAS_CLIENT_ID, IAS_XSUAA_RP],
        "azp": IAS_CLIENT_ID, "sap_id_type": "user", "jti": "5d8f2b1c-3e4a-4b6c-9d7e-8f9a0b1c2d3e",
        "auth_time": now - 60, "iat": now - 30, "exp": now + 3600,
    }
    return _apply(claims, changes)


def exchanged_claims(**changes: Any) -> dict[str, Any]:
    """The XSUAA token for the CPI client after the jwt-bearer exchange."""
    claims = xsuaa_claims(
        scope=[CPI_ROLE_SCOPE, "openid"], client_id=CPI_CLIENT_ID, cid=CPI_CLIENT_ID, azp=CPI_CLIENT_ID,
        grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", origin="sap.custom",
        aud=[CPI_BROKER, CPI_CLIENT_ID, "openid"],
        ext_attr={"enhancer": "XSUAA", "subaccountid": "06c0ad74-d224-463c-b46e-5f4d9c4bbcab",
                  "zdn": SUBDOMAIN, "serviceinstanceid": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d"})
    return _apply(claims, changes)


def _apply(claims: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for name, value in changes.items():
        name = name.replace("__", ".")
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


DROP = object()


def sign(claims: dict[str, Any], *, key: str = "xsuaa", kid: str | None = KID, alg: str = "RS256",
         headers: dict[str, Any] | None = None, bits: int = 2048) -> str:
    """A JWT signed with PyJWT, with an XSUAA-like header (jku, kid)."""
    header = {"jku": f"https://{SUBDOMAIN}.{UAA_DOMAIN}/token_keys", **(headers or {})}
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(claims, rsa_key(key, bits), algorithm=alg, headers=header)


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign_raw(header: bytes | str, payload: bytes | str, key: str = "xsuaa") -> str:
    """RS256-sign arbitrary header and payload bytes (for malformed and duplicate-claim cases)."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = rsa_key(key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def xsuaa_binding(**changes: Any) -> XsuaaBinding:
    values = {"name": "frontapp-xsuaa", "credentials": ClientCredentials(XSUAA_CLIENT_ID, "xs-secret"),
              "xsappname": XSAPPNAME, "uaadomain": UAA_DOMAIN,
              "url": f"https://{SUBDOMAIN}.{UAA_DOMAIN}", "zone_id": ZONE_ID, **changes}
    return XsuaaBinding(**values)


def ias_binding(**changes: Any) -> IasBinding:
    values = {"name": "frontapp-ias", "credentials": ClientCredentials(IAS_CLIENT_ID, "ias-secret"),
              "url": IAS_ISSUER, "domains": (IAS_DOMAIN,), "app_tid": ZONE_ID, **changes}
    return IasBinding(**values)


def cpi_binding(**changes: Any) -> CpiBinding:
    values = {"name": "frontapp-cpi", "credentials": ClientCredentials(CPI_CLIENT_ID, CPI_SECRET),
              "url": CPI_URL, "tokenurl": XSUAA_TOKEN_URL, **changes}
    return CpiBinding(**values)


def bindings(**changes: Any) -> Bindings:
    values = {"cpi": cpi_binding(), "xsuaa": xsuaa_binding(), "ias": ias_binding(), **changes}
    return Bindings(**values)


def vcap_services(*, x509: bool = False, with_ias: bool = True, with_xsuaa: bool = True) -> dict[str, Any]:
    """VCAP_SERVICES as Cloud Foundry writes it for the three bindings."""
    cpi_oauth: dict[str, Any] = {"clientid": CPI_CLIENT_ID, "url": CPI_URL, "tokenurl": XSUAA_TOKEN_URL,
                                 "createdate": "2026-11-01T10:00:00Z"}
    if x509:
        cpi_oauth.update(certificate="-----BEGIN CERTIFICATE-----\\nMIIC\\n-----END CERTIFICATE-----",
                         key="-----BEGIN RSA PRIVATE KEY-----\\nMIIE\\n-----END RSA PRIVATE KEY-----")
    else:
        cpi_oauth["clientsecret"] = CPI_SECRET
    services: dict[str, Any] = {
        "it-rt": [{"label": "it-rt", "name": "frontapp-cpi", "plan": "integration-flow", "tags": [],
                   "credentials": {"oauth": cpi_oauth}}],
    }
    if with_xsuaa:
        services["xsuaa"] = [{"label": "xsuaa", "name": "frontapp-xsuaa", "plan": "application",
                              "credentials": {
                                  "clientid": XSUAA_CLIENT_ID, "clientsecret": "xs-secret",
                                  "xsappname": XSAPPNAME, "uaadomain": UAA_DOMAIN,
                                  "url": f"https://{SUBDOMAIN}.{UAA_DOMAIN}", "identityzone": SUBDOMAIN,
                                  "identityzoneid": ZONE_ID, "zoneid": ZONE_ID, "tenantmode": "dedicated",
                                  "verificationkey": public_jwk()["value"],
                                  "credential-type": "binding-secret"}}]
    if with_ias:
        services["identity"] = [{"label": "identity", "name": "frontapp-ias", "plan": "application",
                                 "credentials": {
                                     "clientid": IAS_CLIENT_ID, "clientsecret": "ias-secret",
                                     "url": IAS_ISSUER, "domains": [IAS_DOMAIN, "accounts.cloud.sap"],
                                     "app_tid": ZONE_ID, "credential-type": "SECRET"}}]
    return services


class FakeClock:
    """Epoch seconds that move only when told to; serves as the monotonic and the wall clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
