"""Rows JWT-01 .. JWT-36 of the security catalogue (``../shared/reference/security-catalogue.md``),
plus SSRF-01/-02/-03/-05, as tests of ``TokenValidator``.

Every row is a case of one of the parametrized tests below (the test id starts with the row id),
or is listed in ``NOT_APPLICABLE`` with the reason. ``test_every_row_is_covered`` keeps the table
from silently losing a row.

Each rejection is checked the same way (``assert_rejected``): a ``SecurityError`` of the expected
class, status 401 (403 for a missing scope), and no part of the token in the diagnosis. Anything
else escaping the validator (KeyError, ValueError, OverflowError, ...) is a bug. Every outbound
call is checked too: only the key URLs derived from the bindings may be fetched (SSRF-01).
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import json
import re
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from seccore import (
    AudienceMismatch,
    IssuerUntrusted,
    JwksCache,
    ScopeMissing,
    SecurityError,
    SignatureInvalid,
    TokenError,
    TokenExpired,
    TokenKindRejected,
    TokenMalformed,
    TokenMissing,
    TokenValidator,
    ValidatedToken,
    make_session,
)
from tests import factories as f
from tests.factories import (
    DROP,
    IAS_CLIENT_ID,
    IAS_ISSUER,
    IAS_JWKS_URL,
    KID,
    XSAPPNAME,
    XSUAA_CLIENT_ID,
    XSUAA_JWKS_URL,
    ZONE_ID,
    FakeClock,
    b64,
    ias_claims,
    public_jwk,
    sign,
    sign_raw,
    xsuaa_claims,
)

ROOT = Path(__file__).resolve().parents[2]
DISCOVERY_URL = f"{IAS_ISSUER}/.well-known/openid-configuration"
TRUSTED_URLS = frozenset({XSUAA_JWKS_URL, DISCOVERY_URL, IAS_JWKS_URL})
COOLDOWN = 30.0  # JwksCache default

#: ``factories.sign_raw`` signs with ``rsa_key(name)``, which functools.cache keeps apart from the
#: ``rsa_key(name, 2048)`` behind ``public_jwk``/``sign``; its public key is published under this kid.
RAW_KID = "raw-key-1"
RAW_JWK = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(f.rsa_key("xsuaa").public_key())),
           "kid": RAW_KID, "use": "sig", "alg": "RS256"}

#: Header URLs an attacker puts into a token. They are mocked with the attacker's keys, so that a
#: validator following them would accept the forged token; none of them may ever be fetched.
ATTACKER_KID = "attacker-key-1"
ATTACKER_JWKS = f.jwks(public_jwk("attacker"), public_jwk("attacker", kid=ATTACKER_KID))
JKU_ATTACKER = "https://attacker.example/.well-known/jwks.json"
JKU_LOOPBACK = "https://127.0.0.1/jwks.json"
JKU_LOCALHOST = "https://localhost:8443/jwks.json"
JKU_METADATA = "https://169.254.169.254/latest/meta-data/iam/jwks.json"
X5U_ATTACKER = "https://attacker.example/cert.pem"
ATTACKER_URLS = (JKU_ATTACKER, JKU_LOOPBACK, JKU_LOCALHOST, JKU_METADATA, X5U_ATTACKER)

NOT_APPLICABLE: dict[str, str] = {
    "JWT-31": "token location (?access_token=, form body, cookie) is decided by the HTTP layer, not by "
              "TokenValidator: covered in tests/unit/test_app.py",
    "JWT-33": "accepted risk, documented: a token stays valid until its exp after logout or user "
              "deactivation (no denylist); mitigated by the short lifetime of XSUAA/IAS tokens",
    "JWT-35": "Authorization header parsing (missing Bearer, Basic, two headers, CR/LF, double space) "
              "happens before the validator: covered in tests/unit/test_app.py",
    "JWT-36": "accepted risk, documented: a stolen bearer token can be replayed until it expires "
              "(no mTLS/DPoP binding); mitigated by the short token lifetime and TLS everywhere",
}


# --------------------------------------------------------------------------------------------------
# Token builders
# --------------------------------------------------------------------------------------------------

def _text(value: dict[str, Any] | list[Any] | str | bytes) -> str | bytes:
    return value if isinstance(value, str | bytes) else json.dumps(value)


def xs(**changes: Any) -> str:
    """An XSUAA user token signed by the bound zone's key."""
    return sign(xsuaa_claims(**changes))


def ias(**changes: Any) -> str:
    """An IAS ID token signed by the bound IAS tenant's key."""
    return sign(ias_claims(**changes), key="ias")


def raw(header: dict[str, Any] | str | bytes, payload: dict[str, Any] | str | bytes) -> str:
    """RS256 over arbitrary header/payload bytes (factories.sign_raw), verifiable under RAW_KID."""
    return sign_raw(_text(header), _text(payload))


def raw_header(**extra: Any) -> dict[str, Any]:
    return {"alg": "RS256", "kid": RAW_KID, "typ": "JWT", **extra}


def unsigned(header: dict[str, Any] | str | bytes, payload: dict[str, Any] | str | bytes,
             signature: bytes = b"") -> str:
    return f"{b64(_text(header))}.{b64(_text(payload))}.{b64(signature)}"


def hmac_token(secret: bytes, *, alg: str = "HS256", kid: str = KID,
               claims: dict[str, Any] | None = None) -> str:
    """An HMAC token built by hand: PyJWT refuses PEM/JWK text as an HMAC secret."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = (f"{b64(json.dumps({'alg': alg, 'typ': 'JWT', 'kid': kid}))}."
                     f"{b64(json.dumps(claims or xsuaa_claims()))}")
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), digest).digest())}"


def forged(claims: dict[str, Any] | None = None, *, kid: str = KID, **headers: Any) -> str:
    """A token signed by the attacker's own RSA key."""
    return sign(claims or xsuaa_claims(), key="attacker", kid=kid, headers=headers)


def swap(token: str, *, header: str | None = None, payload: str | None = None,
         signature: str | None = None) -> str:
    """Replace segments of a compact token, keeping the others byte for byte."""
    h, p, s = token.split(".")
    return ".".join((h if header is None else header, p if payload is None else payload,
                     s if signature is None else signature))


def with_duplicate(claims: dict[str, Any], name: str, value: Any) -> str:
    """The JSON of ``claims`` with ``name`` repeated at the end (the lexically last member)."""
    return json.dumps(claims)[:-1] + f", {json.dumps(name)}: {json.dumps(value)}}}"


def weak_token(claims: dict[str, Any]) -> str:
    """A token signed by a 1024-bit RSA key (PyJWT warns about such keys; the warning is expected)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return sign(claims, key="weak", kid="weak-1024", bits=1024)


def exp_literal(literal: str) -> str:
    """XSUAA claims whose exp is the JSON text ``literal`` (NaN, 1e400, ... which json.dumps cannot write)."""
    text = json.dumps(xsuaa_claims(exp=0))
    assert text.count('"exp": 0,') == 1
    return text.replace('"exp": 0,', f'"exp": {literal},')


def public_key_bytes(fmt: str) -> bytes:
    key = f.rsa_key("xsuaa", 2048).public_key()
    if fmt == "pkcs1-pem":
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    if fmt == "der":
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_numbers().n.to_bytes(256, "big")


def x5c_chain() -> list[str]:
    """A self-signed certificate of the attacker's key, as an x5c header value."""
    key = f.rsa_key("attacker", 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mytenant.accounts.ondemand.com")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    return [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]


def padded_xsuaa_token(target: int) -> str:
    """A valid XSUAA token padded with a dummy claim to just below or above ``target`` bytes."""
    base = len(xs())
    size = max(0, (target - base) * 3 // 4)
    token = xs(pad="x" * size)
    while len(token) > target:
        size -= 3
        token = xs(pad="x" * size)
    while len(token) <= target - 4:
        size += 1
        token = xs(pad="x" * size)
    return token


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
OTHER_ZONE = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
OTHER_CLIENT = {"cid": "sb-otherapp!t9", "client_id": "sb-otherapp!t9", "azp": "sb-otherapp!t9"}
OTHER_TENANT = "https://othertenant.accounts.ondemand.com"


# --------------------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------------------

Expected = type[SecurityError] | tuple[type[SecurityError], ...] | None
Calls = list[responses.Call]


@dataclass(frozen=True)
class Case:
    make: Callable[[], str | None]
    #: the SecurityError subclass(es) expected, or None when the token is accepted
    expect: Expected
    #: at most this many outbound calls (0: refused before anything is fetched)
    calls: int | None = None
    check: Callable[[ValidatedToken, Calls], None] | None = None
    serve: Callable[[responses.RequestsMock], None] | None = None
    #: URLs, besides TRUSTED_URLS, that this case may fetch
    trusted: frozenset[str] = frozenset()


def row(rid: str, make: Callable[[], str | None], expect: Expected, *, marks: Any = (), **kw: Any) -> Any:
    return pytest.param(Case(make, expect, **kw), id=rid, marks=marks)


def fixed(reason: str) -> tuple[()]:
    """No mark: a case that failed on commit ac71d93 as ``reason`` says, fixed since and kept as a
    regression test. Should it fail again, mark it ``pytest.mark.xfail(strict=True, reason="BUG: ...")``."""
    assert reason
    return ()


def _serve_jwks(url: str, doc: dict[str, Any]) -> Callable[[responses.RequestsMock], None]:
    def serve(rsps: responses.RequestsMock) -> None:
        rsps.replace(responses.GET, url, json=doc)
    return serve


def _serve_other_tenant(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{OTHER_TENANT}/.well-known/openid-configuration",
             json={"issuer": OTHER_TENANT, "jwks_uri": f"{OTHER_TENANT}/oauth2/certs"})
    rsps.get(f"{OTHER_TENANT}/oauth2/certs", json=f.jwks(public_jwk("other-ias")))


def _serve_ias_jwks_checking_tenant(rsps: responses.RequestsMock) -> None:
    """IAS's own tenant check: keys only for the client's subaccount, 400 for any other app_tid."""
    rsps.remove(responses.GET, IAS_JWKS_URL)
    rsps.get(IAS_JWKS_URL, json=f.jwks(public_jwk("ias")),
             match=[responses.matchers.header_matcher({"x-app_tid": ZONE_ID})])
    rsps.get(IAS_JWKS_URL, status=400, json={"error": "invalid_request"})


def _sub_is(value: str) -> Callable[[ValidatedToken, Calls], None]:
    def check(token: ValidatedToken, _calls: Calls) -> None:
        assert token.claims["sub"] == value
    return check


def _only_binding_jwks(token: ValidatedToken, calls: Calls) -> None:
    assert [c.request.url for c in calls] == [XSUAA_JWKS_URL]
    assert calls[0].request.headers["X-zid"] == ZONE_ID
    assert token.kind == "xsuaa"


def _now() -> int:
    return int(time.time())


#: joserfc warns when it imports a key under 2048 bits, before seccore drops it (see test_jwks.py).
QUIET_WEAK_KEY = pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")
WEAK_JWKS = f.jwks(public_jwk(), public_jwk("weak", kid="weak-1024", bits=1024))
WEAK_IAS_JWKS = f.jwks(public_jwk("ias"), public_jwk("weak", kid="weak-1024", bits=1024))
OCT_JWKS = f.jwks(public_jwk(), {"kty": "oct", "kid": "hmac-1", "k": b64(b"secret"), "alg": "HS256"})

UNTRUSTED_FOREIGN_TENANT = ("an IAS token naming another subaccount (app_tid) but issued by the bound "
                            "tenant is not refused by the validator: the key set is opened per unverified "
                            "app_tid, so the outcome is whatever the IAS JWKS endpoint answers "
                            "(keys -> accepted, 400 -> KeysUnavailable 503). The XSUAA side pins zid.")

TABLE = [
    # JWT-01 alg none: refused before any key is fetched.
    *[row(f"JWT-01 alg {alg}", lambda alg=alg: unsigned({"alg": alg, "typ": "JWT", "kid": KID},
                                                          xsuaa_claims()),
          TokenMalformed, calls=0) for alg in ("none", "None", "NONE", "nOnE")],
    row("JWT-01 alg none on an IAS token", lambda: unsigned({"alg": "none", "kid": KID}, ias_claims()),
        TokenMalformed, calls=0),
    row("JWT-01 alg none keeping a valid signature", lambda: swap(xs(), header=b64(json.dumps(
        {"alg": "none", "kid": KID, "typ": "JWT"}))), TokenMalformed, calls=0),
    # JWT-02 signature stripping
    row("JWT-02 empty signature (h.p.)", lambda: swap(xs(), signature=""), SignatureInvalid, calls=1),
    row("JWT-02 two segments (h.p)", lambda: xs().rsplit(".", 1)[0], TokenMalformed, calls=0),
    row("JWT-02 null signature", lambda: swap(xs(), signature=b64(bytes(256))), SignatureInvalid, calls=1),
    row("JWT-02 signature of another token", lambda: swap(xs(), signature=xs(jti="other").split(".")[2]),
        SignatureInvalid, calls=1),
    row("JWT-02 empty signature on an IAS token", lambda: swap(ias(), signature=""), SignatureInvalid),
    # JWT-03 claims edited without re-signing
    row("JWT-03 sub edited without re-signing",
        lambda: swap(xs(), payload=b64(json.dumps(xsuaa_claims(sub="admin")))), SignatureInvalid),
    row("JWT-03 scope added without re-signing", lambda: swap(xs(scope=["openid"]), payload=b64(json.dumps(
        xsuaa_claims(scope=["openid", f"{XSAPPNAME}.Display", f"{XSAPPNAME}.Admin"])))), SignatureInvalid),
    row("JWT-03 IAS sub edited without re-signing",
        lambda: swap(ias(), payload=b64(json.dumps(ias_claims(sub="admin")))), SignatureInvalid),
    # JWT-04/05/06/07 HMAC and key confusion: no HMAC algorithm is accepted at all.
    row("JWT-04 HS256 keyed with the public key PEM",
        lambda: hmac_token(public_jwk()["value"].encode()), TokenMalformed, calls=0),
    row("JWT-04 HS256 keyed with the IAS public key PEM",
        lambda: hmac_token(public_jwk("ias")["value"].encode(), claims=ias_claims()), TokenMalformed,
        calls=0),
    row("JWT-05 HS256 keyed with the published JWK JSON",
        lambda: hmac_token(json.dumps(public_jwk()).encode()), TokenMalformed, calls=0),
    row("JWT-05 HS256 keyed with the JWKS document",
        lambda: hmac_token(json.dumps(f.jwks(public_jwk())).encode()), TokenMalformed, calls=0),
    *[row(f"JWT-06 HS256 keyed with a derived public key ({fmt})",
          lambda fmt=fmt: hmac_token(public_key_bytes(fmt)), TokenMalformed, calls=0)
      for fmt in ("pkcs1-pem", "der", "modulus")],
    *[row(f"JWT-07 {alg} with secret {secret!r}", lambda alg=alg, secret=secret: hmac_token(secret, alg=alg),
          TokenMalformed, calls=0)
      for alg, secret in (("HS256", b""), ("HS256", b"secret"), ("HS256", b"your-256-bit-secret"),
                          ("HS384", b"password"), ("HS512", b"changeme"))],
    # JWT-08 embedded jwk: header keys are never used.
    row("JWT-08 jwk header with the attacker key, unknown kid",
        lambda: forged(kid=ATTACKER_KID, jwk=public_jwk("attacker", kid=ATTACKER_KID)),
        (TokenMalformed, SignatureInvalid), calls=1),
    row("JWT-08 jwk header with the attacker key, trusted kid",
        lambda: forged(jwk=public_jwk("attacker")), (TokenMalformed, SignatureInvalid), calls=1),
    row("JWT-08 jwk header (public parts only) on an IAS token",
        lambda: forged(ias_claims(), jwk={k: public_jwk("attacker")[k] for k in ("kty", "n", "e")}),
        (TokenMalformed, SignatureInvalid)),
    # JWT-09 jku substitution: no fetch of the jku, ever (global check of the calls).
    row("JWT-09 jku to the attacker, trusted kid", lambda: forged(jku=JKU_ATTACKER), SignatureInvalid,
        calls=1),
    row("JWT-09 jku to the attacker, attacker kid", lambda: forged(kid=ATTACKER_KID, jku=JKU_ATTACKER),
        SignatureInvalid, calls=1),
    row("JWT-09 jku to loopback", lambda: forged(kid=ATTACKER_KID, jku=JKU_LOOPBACK), SignatureInvalid),
    row("JWT-09 jku to localhost", lambda: forged(kid=ATTACKER_KID, jku=JKU_LOCALHOST), SignatureInvalid),
    row("JWT-09 jku to the cloud metadata address", lambda: forged(kid=ATTACKER_KID, jku=JKU_METADATA),
        SignatureInvalid),
    row("JWT-09 jku on an IAS token", lambda: forged(ias_claims(), kid=ATTACKER_KID, jku=JKU_ATTACKER),
        SignatureInvalid),
    # JWT-10 x5u / x5c
    row("JWT-10 x5u to the attacker", lambda: forged(kid=ATTACKER_KID, x5u=X5U_ATTACKER), SignatureInvalid),
    row("JWT-10 x5u on an IAS token", lambda: forged(ias_claims(), x5u=X5U_ATTACKER), SignatureInvalid),
    row("JWT-10 x5c chain of the attacker key", lambda: forged(x5c=x5c_chain()),
        (TokenMalformed, SignatureInvalid), calls=1),
    # JWT-11 kid path traversal: the kid is only a key into the trusted JWKS.
    row("JWT-11 kid ../../../../dev/null with HS256 and empty key",
        lambda: hmac_token(b"", kid="../../../../dev/null"), TokenMalformed, calls=0),
    row("JWT-11 kid /proc/sys/kernel/randomize_va_space with HS256 key '2'",
        lambda: hmac_token(b"2\n", kid="/proc/sys/kernel/randomize_va_space"), TokenMalformed, calls=0),
    row("JWT-11 kid /dev/null signed by the attacker", lambda: forged(kid="/dev/null"), SignatureInvalid,
        calls=1),
    row("JWT-11 kid path traversal signed by the bound key",
        lambda: sign(xsuaa_claims(), kid="../../../../dev/null"), SignatureInvalid, calls=1),
    # JWT-12 kid injection
    *[row(f"JWT-12 kid {kid!r}", lambda kid=kid: forged(kid=kid), SignatureInvalid, calls=1)
      for kid in ("x' UNION SELECT '1", ";sleep 10", "$(sleep 10)", "`id`", "{{7*7}}", "a\u0000b")],
    row("JWT-12 kid of 10 KB", lambda: forged(kid="k" * 10_240), TokenMalformed, calls=0),
    row("JWT-12 kid of 300 characters", lambda: forged(kid="k" * 300), TokenMalformed, calls=0),
    *[row(f"JWT-12 kid as {name}", lambda value=value: raw({"alg": "RS256", "kid": value},
                                                             xsuaa_claims()), TokenMalformed, calls=0)
      for name, value in (("number", 1), ("list", [KID]), ("object", {"kid": KID}), ("null", None),
                          ("empty string", ""))],
    row("JWT-12 kid missing", lambda: sign(xsuaa_claims(), kid=None), TokenMalformed, calls=0),
    # JWT-14 expiry, 60 s leeway
    row("JWT-14 exp an hour ago", lambda: xs(exp=_now() - 3600), TokenExpired),
    row("JWT-14 exp 61 s ago (outside the leeway)", lambda: xs(exp=_now() - 61), TokenExpired),
    row("JWT-14 exp 10 s ago (inside the leeway) accepted", lambda: xs(exp=_now() - 10), None),
    row("JWT-14 IAS exp an hour ago", lambda: ias(exp=_now() - 3600), TokenExpired),
    row("JWT-14 IAS exp 10 s ago accepted", lambda: ias(exp=_now() - 10), None),
    # JWT-15 not yet valid
    row("JWT-15 nbf in an hour", lambda: xs(nbf=_now() + 3600), TokenMalformed),
    row("JWT-15 iat in an hour", lambda: xs(iat=_now() + 3600), TokenMalformed),
    row("JWT-15 nbf in 30 s (inside the leeway) accepted", lambda: xs(nbf=_now() + 30), None),
    row("JWT-15 IAS nbf in an hour", lambda: ias(nbf=_now() + 3600), TokenMalformed),
    row("JWT-15 IAS iat in an hour", lambda: ias(iat=_now() + 3600), TokenMalformed),
    # JWT-16 required claims
    *[row(f"JWT-16 XSUAA without {claim}", lambda claim=claim: xs(**{claim: DROP}), TokenMalformed)
      for claim in ("exp", "iat", "iss", "sub")],
    *[row(f"JWT-16 IAS without {claim}", lambda claim=claim: ias(**{claim: DROP}), TokenMalformed)
      for claim in ("exp", "iat", "sub", "iss")],
    row("JWT-16 IAS without iss and ias_iss", lambda: ias(iss=DROP, ias_iss=DROP), IssuerUntrusted, calls=0),
    row("JWT-16 IAS without aud", lambda: ias(aud=DROP), AudienceMismatch),
    row("JWT-16 XSUAA without zid", lambda: xs(zid=DROP), TokenMalformed, calls=0),
    row("JWT-16 XSUAA without aud, foreign cid and scopes", lambda: xs(
        aud=DROP, scope=["otherapp!t9.Display"], **OTHER_CLIENT), AudienceMismatch),
    row("JWT-16 XSUAA without aud accepted (SAP rule: audience derived from cid and scopes)",
        lambda: xs(aud=DROP), None),
    # JWT-17 NumericDate must be a JSON number
    row("JWT-17 exp as numeric string", lambda: xs(exp=str(_now() + 3600)), TokenMalformed),
    row("JWT-17 exp as padded numeric string", lambda: xs(exp=f" {_now() + 3600} "), TokenMalformed),
    row("JWT-17 iat as numeric string", lambda: xs(iat=str(_now())), TokenMalformed),
    row("JWT-17 nbf as numeric string", lambda: xs(nbf=str(_now())), TokenMalformed),
    row("JWT-17 exp as boolean", lambda: xs(exp=True), TokenMalformed),
    row("JWT-17 exp null", lambda: xs(exp=None), TokenMalformed),
    row("JWT-17 IAS exp as numeric string", lambda: ias(exp=str(_now() + 3600)), TokenMalformed),
    *[row(f"JWT-17 exp {literal}", lambda literal=literal: raw(raw_header(), exp_literal(literal)),
          TokenMalformed) for literal in ("NaN", "Infinity", "-Infinity", "1e400")],
    row("JWT-17 exp an integer too large for a float",
        lambda: raw(raw_header(), exp_literal("1" + "0" * 400)), TokenMalformed,
        marks=fixed("an exp of 10**400 passes the time checks, then float(claims['exp']) raises "
                  "OverflowError out of validate() (500 instead of 401)")),
    # JWT-18 issuer
    row("JWT-18 IAS issuer of another host", lambda: ias(iss="https://other.example.com",
                                                         ias_iss="https://other.example.com"),
        IssuerUntrusted, calls=0),
    row("JWT-18 IAS issuer a prefix of ours", lambda: ias(iss=IAS_ISSUER[:-1], ias_iss=IAS_ISSUER[:-1]),
        IssuerUntrusted, calls=0),
    row("JWT-18 IAS issuer containing ours", lambda: ias(iss=IAS_ISSUER + ".attacker.example",
                                                         ias_iss=IAS_ISSUER + ".attacker.example"),
        IssuerUntrusted, calls=0),
    row("JWT-18 IAS issuer as a list",
        lambda: raw(raw_header(), ias_claims(iss=[IAS_ISSUER], ias_iss=DROP)), IssuerUntrusted, calls=0),
    row("JWT-18 IAS ias_iss foreign, iss ours (ias_iss decides)",
        lambda: ias(ias_iss="https://evil.example"), IssuerUntrusted, calls=0),
    row("JWT-18 IAS other tenant of the domain without app_tid",
        lambda: ias(iss=OTHER_TENANT, ias_iss=OTHER_TENANT, app_tid=DROP), IssuerUntrusted, calls=0),
    row("JWT-18 XSUAA iss as a list", lambda: raw(raw_header(), xsuaa_claims(iss=[f.XSUAA_TOKEN_URL])),
        TokenMalformed),
    row("JWT-18 XSUAA issuer of another subaccount signed by that zone's key",
        lambda: sign(xsuaa_claims(iss="https://evil.authentication.eu10.hana.ondemand.com/oauth/token"),
                     key="other-zone"), SignatureInvalid),
    row("JWT-18 XSUAA other iss signed by the bound zone accepted (keys pinned to the zone; "
        "SAP libraries do not compare the XSUAA iss)",
        lambda: xs(iss=f"https://other.{f.UAA_DOMAIN}/oauth/token"), None),
    # JWT-19 audience
    row("JWT-19 XSUAA other audience", lambda: xs(aud=["otherapp!t9"], **OTHER_CLIENT), AudienceMismatch),
    row("JWT-19 XSUAA only foreign audiences",
        lambda: xs(aud=["openid", "sb-otherapp!t9", "otherapp!t9"], **OTHER_CLIENT), AudienceMismatch),
    row("JWT-19 XSUAA audience extending our xsappname",
        lambda: xs(aud=[XSAPPNAME + "0", XSUAA_CLIENT_ID + "0"], **OTHER_CLIENT), AudienceMismatch),
    row("JWT-19 XSUAA audience not a string list", lambda: xs(aud={"aud": XSUAA_CLIENT_ID}, **OTHER_CLIENT),
        (TokenMalformed, AudienceMismatch)),
    row("JWT-19 IAS other audience", lambda: ias(aud=["other-client"], azp="other-client"), AudienceMismatch),
    row("JWT-19 IAS audience a prefix of our client id", lambda: ias(aud=[IAS_CLIENT_ID[:-1]]),
        AudienceMismatch),
    row("JWT-19 IAS empty audience", lambda: ias(aud=[]), AudienceMismatch),
    # JWT-20 several audiences: accepted when ours is among them (policy, as SAP's libraries)
    row("JWT-20 XSUAA aud [other, ours] accepted",
        lambda: xs(aud=["otherapp!t9", XSUAA_CLIENT_ID], **OTHER_CLIENT), None),
    row("JWT-20 IAS aud [other, ours] accepted", lambda: ias(aud=["other-client", IAS_CLIENT_ID]), None),
    row("JWT-20 IAS aud as a string accepted", lambda: ias(aud=IAS_CLIENT_ID), None),
    # JWT-21 cross-JWT confusion
    *[row(f"JWT-21 typ {typ}", lambda typ=typ: sign(xsuaa_claims(), headers={"typ": typ}),
          TokenKindRejected, calls=0) for typ in ("logout+jwt", "secevent+jwt", "dpop+jwt", "JWE")],
    row("JWT-21 typ not a string", lambda: raw(raw_header(typ=5), xsuaa_claims()),
        (TokenKindRejected, TokenMalformed), calls=0),
    row("JWT-21 typ at+jwt accepted", lambda: sign(xsuaa_claims(), headers={"typ": "at+jwt"}), None),
    row("JWT-21 IAS logout token (events)", lambda: ias(
        events={"http://schemas.openid.net/event/backchannel-logout": {}}), TokenKindRejected),
    row("JWT-21 IAS app-to-app token", lambda: ias(sap_id_type="app"), TokenKindRejected),
    row("JWT-21 IAS client credentials token", lambda: ias(grant_type="client_credentials"),
        TokenKindRejected),
    row("JWT-21 XSUAA client credentials token", lambda: xs(
        grant_type="client_credentials", origin=DROP, user_name=DROP, email=DROP), TokenKindRejected),
    row("JWT-21 XSUAA token without origin", lambda: xs(origin=DROP), TokenKindRejected),
    row("JWT-21 exchanged CPI token presented to the app", lambda: sign(f.exchanged_claims()),
        AudienceMismatch),
    row("JWT-21 XSUAA token without the app scope, e.g. an ID token (403)", lambda: xs(scope=["openid"]),
        ScopeMissing),
    # JWT-22 substitution across clients and tenants
    row("JWT-22 XSUAA token of another zone (zid)", lambda: xs(zid=OTHER_ZONE), IssuerUntrusted, calls=0),
    row("JWT-22 XSUAA zid that is no id", lambda: xs(zid="../../x?y=1"), TokenMalformed, calls=0),
    row("JWT-22 XSUAA token of another client of the zone",
        lambda: xs(aud=["sb-otherapp!t9", "otherapp!t9"], **OTHER_CLIENT), AudienceMismatch),
    row("JWT-22 IAS token of another client of the tenant",
        lambda: ias(aud=["other-client"], azp="other-client"), AudienceMismatch),
    row("JWT-22 IAS token of another IAS tenant for another client",
        lambda: sign(ias_claims(iss=OTHER_TENANT, ias_iss=OTHER_TENANT, aud=["other-client"],
                                azp="other-client"), key="other-ias"), AudienceMismatch,
        serve=_serve_other_tenant,
        trusted=frozenset({f"{OTHER_TENANT}/.well-known/openid-configuration",
                           f"{OTHER_TENANT}/oauth2/certs"})),
    row("JWT-22 IAS token of another subaccount (app_tid), JWKS serves keys",
        lambda: ias(app_tid=OTHER_ZONE), TokenError, marks=fixed(UNTRUSTED_FOREIGN_TENANT)),
    row("JWT-22 IAS token of another subaccount (app_tid), JWKS refuses the tenant",
        lambda: ias(app_tid=OTHER_ZONE), TokenError, serve=_serve_ias_jwks_checking_tenant,
        marks=fixed(UNTRUSTED_FOREIGN_TENANT)),
    # JWT-23 crit / b64
    row("JWT-23 crit with an unknown header", lambda: raw(raw_header(crit=["unknown"], unknown=1),
                                                          xsuaa_claims()), TokenMalformed),
    row("JWT-23 crit b64 false", lambda: raw(raw_header(crit=["b64"], b64=False), xsuaa_claims()),
        TokenMalformed),
    row("JWT-23 crit not a list", lambda: raw(raw_header(crit="b64"), xsuaa_claims()), TokenMalformed),
    row("JWT-23 crit naming a registered header",
        lambda: raw(raw_header(crit=["exp"], exp=1), xsuaa_claims()), TokenMalformed),
    # JWT-24 psychic signature: ES256 is not allowlisted
    *[row(f"JWT-24 ES256 {name}", lambda sig=sig: unsigned({"alg": "ES256", "kid": KID, "typ": "JWT"},
                                                           xsuaa_claims(), sig), TokenMalformed, calls=0)
      for name, sig in (("r=s=0 (P1363)", bytes(64)), ("r=s=0 (DER)", bytes.fromhex("3006020100020100")),
                        ("r=s=n", P256_ORDER.to_bytes(32, "big") * 2))],
    # JWT-25 size
    row("JWT-25 200 KB header", lambda: raw(raw_header(x="a" * 200_000), xsuaa_claims()), TokenMalformed,
        calls=0),
    row("JWT-25 token over 8 KB", lambda: padded_xsuaa_token(8300), TokenMalformed, calls=0),
    row("JWT-25 token just under 8 KB accepted", lambda: padded_xsuaa_token(8192), None),
    # JWT-26 JSON nesting
    row("JWT-26 header nested 2000 deep", lambda: raw(
        f'{{"alg":"RS256","kid":"{RAW_KID}","x":{"[" * 2000}{"]" * 2000}}}', "{}"), TokenMalformed, calls=0),
    row("JWT-26 header nested 5000 deep, unclosed", lambda: raw('{"alg":"RS256","x":' + "[" * 5000, "{}"),
        TokenMalformed, calls=0),
    row("JWT-26 payload nested 5000 deep", lambda: raw(raw_header(), "[" * 5000), TokenMalformed, calls=0),
    row("JWT-26 payload objects nested 1100 deep, unclosed", lambda: raw(raw_header(), '{"a":' * 1100),
        TokenMalformed, calls=0),
    row("JWT-26 payload nested 100000 deep", lambda: raw(raw_header(), "[" * 100_000), TokenMalformed,
        calls=0),
    # JWT-27 malformed encoding
    row("JWT-27 bad base64url character", lambda: swap(xs(), header="eyJh!GciOiJSUzI1NiJ9"), TokenMalformed,
        calls=0),
    row("JWT-27 padding in the header", lambda: swap(xs(), header=xs().split(".")[0] + "="), TokenMalformed,
        calls=0),
    row("JWT-27 padding in the signature", lambda: swap(xs(), signature=xs().split(".")[2] + "=="),
        (TokenMalformed, SignatureInvalid)),
    row("JWT-27 NBSP in the token", lambda: xs().replace(".", ".\u00a0", 1), TokenMalformed, calls=0),
    row("JWT-27 space in the token", lambda: xs().replace(".", ". ", 1), TokenMalformed, calls=0),
    row("JWT-27 trailing newline", lambda: xs() + "\n", (TokenMalformed, SignatureInvalid)),
    row("JWT-27 non-ASCII character", lambda: xs().replace(".", ".\u00e9", 1), TokenMalformed, calls=0),
    row("JWT-27 four segments", lambda: xs() + ".e30", TokenMalformed, calls=0),
    row("JWT-27 empty segments", lambda: "..", TokenMalformed, calls=0),
    row("JWT-27 empty token", lambda: "", TokenMissing, calls=0),
    row("JWT-27 no token", lambda: None, TokenMissing, calls=0),
    *[row(f"JWT-27 header {name}", lambda header=header: raw(header, xsuaa_claims()), TokenMalformed, calls=0)
      for name, header in (("not JSON", "{alg"), ("JSON array", '["RS256"]'), ("null", "null"),
                           ("a number", "5"), ("a string", '"RS256"'),
                           ("non-UTF-8", b'{"alg":"RS256","kid":"\xff"}'))],
    *[row(f"JWT-27 payload {name}", lambda payload=payload: raw(raw_header(), payload), TokenMalformed,
          calls=0)
      for name, payload in (("null", "null"), ("JSON array", "[1]"), ("a number", "1"),
                            ("not JSON", "hello"), ("non-UTF-8", b'{"sub":"\xff"}'), ("empty", ""))],
    row("JWT-27 payload UTF-16", lambda: raw(raw_header(), json.dumps(xsuaa_claims()).encode("utf-16")),
        TokenMalformed, marks=fixed("the payload is parsed with json.loads(bytes), which detects and accepts "
                                  "UTF-16/32; RFC 7515/7519 require UTF-8 (parser differential with the "
                                  "Node gateway)")),
    row("JWT-27 header UTF-16", lambda: raw(json.dumps(raw_header()).encode("utf-16"), xsuaa_claims()),
        TokenMalformed, marks=fixed("the header is parsed from bytes by joserfc, which accepts UTF-16/32")),
    row("JWT-27 payload with a UTF-8 BOM", lambda: raw(raw_header(), b"\xef\xbb\xbf" + json.dumps(
        xsuaa_claims()).encode()), TokenMalformed,
        marks=fixed("json.loads(bytes) skips a UTF-8 BOM; JSON.parse in the Node gateway does not")),
    # JWT-28 duplicate members: the lexically last one wins, as in Node's JSON.parse
    row("JWT-28 duplicate sub: the last wins",
        lambda: raw(raw_header(), with_duplicate(xsuaa_claims(sub="alice"), "sub", "admin")), None,
        check=_sub_is("admin")),
    row("JWT-28 duplicate exp: the last (past) wins",
        lambda: raw(raw_header(), with_duplicate(xsuaa_claims(), "exp", _now() - 3600)), TokenExpired),
    row("JWT-28 duplicate aud: the last (foreign) wins", lambda: raw(raw_header(), with_duplicate(
        xsuaa_claims(**OTHER_CLIENT), "aud", ["otherapp!t9"])), AudienceMismatch),
    row("JWT-28 duplicate alg in the header: the last (RS256) wins",
        lambda: raw(f'{{"alg":"none","kid":"{RAW_KID}","alg":"RS256"}}', xsuaa_claims()), None),
    row("JWT-28 duplicate alg in the header: the last (none) wins",
        lambda: raw(f'{{"alg":"RS256","kid":"{RAW_KID}","alg":"none"}}', xsuaa_claims()), TokenMalformed,
        calls=0),
    # JWT-29 alg variants
    *[row(f"JWT-29 alg {name}", lambda header=header: raw(header, xsuaa_claims()), TokenMalformed, calls=0)
      for name, header in (("rs256", {"alg": "rs256", "kid": RAW_KID}),
                           ("as a list", {"alg": ["RS256"], "kid": RAW_KID}),
                           ("missing", {"kid": RAW_KID}),
                           ("null", {"alg": None, "kid": RAW_KID}),
                           ("'RS256 '", {"alg": "RS256 ", "kid": RAW_KID}))],
    *[row(f"JWT-29 alg {alg}", lambda alg=alg: sign(xsuaa_claims(), alg=alg), TokenMalformed, calls=0)
      for alg in ("PS256", "RS384", "RS512")],
    # JWT-32 malleability: a non-canonical encoding of a valid token is not accepted
    row("JWT-32 non-canonical last character of the signature", lambda: _noncanonical_signature(xs()),
        SignatureInvalid),
    row("JWT-32 base64 (not base64url) alphabet in the signature", lambda: _std_alphabet_signature(xs()),
        SignatureInvalid),
    row("JWT-32 payload re-encoded with padding", lambda: swap(xs(), payload=xs().split(".")[1] + "="),
        (TokenMalformed, SignatureInvalid)),
    # JWT-34 weak keys in the JWKS are never used
    row("JWT-34 token signed by a 1024-bit key published in the JWKS",
        lambda: weak_token(xsuaa_claims()), SignatureInvalid, marks=QUIET_WEAK_KEY,
        serve=_serve_jwks(XSUAA_JWKS_URL, WEAK_JWKS)),
    row("JWT-34 IAS token signed by a 1024-bit key published in the JWKS",
        lambda: weak_token(ias_claims()), SignatureInvalid, marks=QUIET_WEAK_KEY,
        serve=_serve_jwks(IAS_JWKS_URL, WEAK_IAS_JWKS)),
    row("JWT-34 kid of an HMAC (oct) key published in the JWKS",
        lambda: forged(kid="hmac-1"), SignatureInvalid, serve=_serve_jwks(XSUAA_JWKS_URL, OCT_JWKS)),
    row("JWT-34 HS256 with the secret of an oct key published in the JWKS",
        lambda: hmac_token(b"secret", kid="hmac-1"), TokenMalformed, calls=0,
        serve=_serve_jwks(XSUAA_JWKS_URL, OCT_JWKS)),
    # SSRF-01 / SSRF-03: header URLs are ignored, keys only from the binding
    row("SSRF-01 valid XSUAA token with jku and x5u to the attacker accepted with the bound keys",
        lambda: sign(xsuaa_claims(), headers={"jku": JKU_ATTACKER, "x5u": X5U_ATTACKER}), None),
    row("SSRF-01 valid IAS token with jku to the metadata address accepted with the bound keys",
        lambda: sign(ias_claims(), key="ias", headers={"jku": JKU_METADATA}), None),
    row("SSRF-03 XSUAA key URL composed from uaadomain and zid", lambda: xs(), None,
        check=_only_binding_jwks),
]


def _noncanonical_signature(token: str) -> str:
    """Flip the unused low bits of the signature's last base64url character (256 bytes -> 4 bits)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    signature = token.split(".")[2]
    index = alphabet.index(signature[-1])
    return swap(token, signature=signature[:-1] + alphabet[index ^ 0b0001])


def _std_alphabet_signature(token: str) -> str:
    for _ in range(50):  # a 342-character signature without '-' or '_' is very rare; sign again
        signature = token.split(".")[2]
        if "-" in signature or "_" in signature:
            return swap(token, signature=signature.replace("-", "+").replace("_", "/"))
        token = xs(jti=uuid.uuid4().hex)
    raise AssertionError("no signature with a base64url-only character")


# --------------------------------------------------------------------------------------------------
# Fixtures and checks
# --------------------------------------------------------------------------------------------------

def make_validator(clock: Callable[[], float] | None = None) -> TokenValidator:
    session = make_session(retries=0, retry_statuses=False)
    if clock is None:
        return TokenValidator(jwks=JwksCache(session), xsuaa=f.xsuaa_binding(), ias=f.ias_binding(),
                              required_scope="$XSAPPNAME.Display")
    return TokenValidator(jwks=JwksCache(session, clock=clock), xsuaa=f.xsuaa_binding(), ias=f.ias_binding(),
                          required_scope="$XSAPPNAME.Display", clock=clock)


@pytest.fixture
def validator() -> TokenValidator:
    return make_validator()


@pytest.fixture
def mocked() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(XSUAA_JWKS_URL, json=f.jwks(public_jwk(), RAW_JWK))
        rsps.get(DISCOVERY_URL, json={"issuer": IAS_ISSUER, "jwks_uri": IAS_JWKS_URL})
        rsps.get(IAS_JWKS_URL, json=f.jwks(public_jwk("ias")))
        for url in ATTACKER_URLS:
            rsps.get(url, json=ATTACKER_JWKS)
        yield rsps


def assert_rejected(exc: SecurityError, expected: type[SecurityError] | tuple[type[SecurityError], ...],
                    token: str | None) -> None:
    assert isinstance(exc, expected), f"{type(exc).__name__}: {exc}"
    assert exc.status == (403 if isinstance(exc, ScopeMissing) else 401)
    assert exc.step == "validate"
    texts = (str(exc), exc.cause, exc.fix, json.dumps(exc.to_dict()))
    for part in [token or "", *(token or "").split(".")]:
        if len(part) >= 16:
            assert not any(part in text for text in texts), "the diagnosis contains the token"


def fetched(rsps: responses.RequestsMock) -> list[str]:
    return [call.request.url for call in rsps.calls]


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", TABLE)
def test_catalogue_row(case: Case, validator: TokenValidator, mocked: responses.RequestsMock) -> None:
    if case.serve is not None:
        case.serve(mocked)
    token = case.make()
    if case.expect is None:
        assert token is not None
        result = validator.validate(token)
        assert result.raw == token
        if case.check is not None:
            case.check(result, list(mocked.calls))
    else:
        with pytest.raises(SecurityError) as info:  # any other exception escaping is a bug
            validator.validate(token)
        assert_rejected(info.value, case.expect, token)
    urls = fetched(mocked)
    assert set(urls) <= TRUSTED_URLS | case.trusted, f"fetched a URL not derived from the bindings: {urls}"
    if case.calls is not None:
        assert len(urls) <= case.calls, urls


FLOOD = [
    pytest.param("xsuaa", id="JWT-13 XSUAA random kids"),
    pytest.param("ias", id="JWT-13 IAS random kids"),
    pytest.param("ias-tenants", id="JWT-13 IAS random kids and random app_tid", marks=fixed(
        "JwksCache keeps one key set per (url, unverified app_tid): each forged app_tid opens a new set "
        "and fetches the JWKS at once (no cooldown applies to a new set), and 64 of them evict the warm "
        "sets (MAX_KEY_SETS)")),
]


@pytest.mark.parametrize("variant", FLOOD)
def test_unknown_kid_flood(variant: str, mocked: responses.RequestsMock) -> None:
    clock = FakeClock(time.time())
    validator = make_validator(clock)
    jwks_url = XSUAA_JWKS_URL if variant == "xsuaa" else IAS_JWKS_URL
    good = xs() if variant == "xsuaa" else ias()
    validator.validate(good)
    clock.advance(COOLDOWN + 1)  # the refetch budget is available again

    def key_fetches() -> int:
        return fetched(mocked).count(jwks_url)

    def flood(count: int) -> None:
        for _ in range(count):
            claims = xsuaa_claims() if variant == "xsuaa" else ias_claims()
            if variant == "ias-tenants":
                claims["app_tid"] = str(uuid.uuid4())
            token = sign(claims, key="attacker", kid=uuid.uuid4().hex)
            with pytest.raises(SecurityError) as info:
                validator.validate(token)
            # a foreign app_tid may also be refused before any key lookup
            assert_rejected(info.value, (SignatureInvalid, IssuerUntrusted) if foreign else SignatureInvalid,
                            token)

    foreign = variant == "ias-tenants"
    before = key_fetches()
    flood(20)
    assert key_fetches() - before <= 1, "unknown kids amplified into JWKS fetches"
    if not foreign:
        assert key_fetches() - before == 1, "an unknown kid must cause one refetch (key rotation)"
    clock.advance(COOLDOWN + 1)
    flood(5)
    assert key_fetches() - before <= 2, "more than one refetch per cooldown"
    if not foreign:
        assert key_fetches() - before == 2, "one refetch per cooldown, not more, not never"
    assert validator.validate(good).raw == good
    assert set(fetched(mocked)) <= TRUSTED_URLS


def _jwt30_offenders(source: str) -> list[str]:
    """Unverified decoding in ``source``: verify_signature, algorithms=None, decode() without algorithms."""
    found = []
    if re.search(r"""["']verify_signature["']|\bverify_signature\s*=""", source):  # the option, not a name
        found.append("verify_signature")
    if re.search(r"algorithms\s*=\s*None", source):
        found.append("algorithms=None")
    tree = ast.parse(source)
    modules: set[str] = set()
    functions: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names
                        if a.name in ("jwt", "joserfc.jwt", "jose.jwt")}
        elif isinstance(node, ast.ImportFrom):
            if node.module in ("jwt", "joserfc.jwt", "jose.jwt", "jwt.api_jwt"):
                functions |= {a.asname or a.name for a in node.names if a.name.startswith("decode")}
            modules |= {a.asname or a.name for a in node.names if a.name == "jwt"}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        is_decode = (isinstance(func, ast.Attribute) and func.attr.startswith("decode")
                     and isinstance(func.value, ast.Name) and func.value.id in modules) or (
            isinstance(func, ast.Name) and func.id in functions)
        names = {k.arg for k in node.keywords}
        if is_decode and "algorithms" not in names and None not in names:
            found.append(f"decode() without algorithms at line {node.lineno}")
        for keyword in node.keywords:
            if keyword.arg == "algorithms" and isinstance(keyword.value, ast.Constant) \
                    and keyword.value.value is None:
                found.append(f"algorithms=None at line {node.lineno}")
    return found


GREP = [pytest.param(d, id=f"JWT-30 no unverified decode in {d}") for d in ("seccore", "app")]


@pytest.mark.parametrize("folder", GREP)
def test_no_unverified_decode(folder: str) -> None:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"no Python files under {ROOT / folder}"
    offenders = {str(p.relative_to(ROOT)): hits for p in files if (hits := _jwt30_offenders(p.read_text()))}
    assert offenders == {}


@pytest.mark.parametrize("snippet", [
    'import jwt\njwt.decode(t, options={"verify_signature": False})',
    "import jwt\njwt.decode(t, key, algorithms=['RS256'], options=dict(verify_signature=False))",
    "import jwt\nclaims = jwt.decode(t, key)",
    "import jwt as pyjwt\npyjwt.decode(t, key, algorithms=None)",
    "from jwt import decode\ndecode(t, key)",
    "from joserfc import jwt\njwt.decode(t, key)",
])
def test_jwt30_detector_flags_unverified_decode(snippet: str) -> None:
    assert _jwt30_offenders(snippet)


@pytest.mark.parametrize("snippet", [
    "def _verify_signature(obj, key):\n    return obj",
    "import jwt\njwt.decode(t, key, algorithms=['RS256'])",
    "from joserfc import jwt\njwt.decode(t, key, algorithms=['RS256'])",
    "data = raw.decode('utf-8')",
])
def test_jwt30_detector_passes_verified_decode(snippet: str) -> None:
    assert _jwt30_offenders(snippet) == []


ISSUERS = [pytest.param(issuer, id=f"SSRF-02 {name}", marks=marks) for issuer, name, marks in (
    ("https://evil.com", "foreign host", ()),
    (f"{IAS_ISSUER}.evil.com", "bound tenant as prefix of a foreign host", ()),
    ("https://a.b.accounts.ondemand.com", "two labels under the domain", ()),
    (f"{IAS_ISSUER}?x", "query", ()),
    (f"{IAS_ISSUER}#frag", "fragment", ()),
    ("http://mytenant.accounts.ondemand.com", "http", ()),
    ("https://169.254.169.254", "metadata address", ()),
    ("https://127.0.0.1", "loopback", ()),
    ("https://[::1]", "IPv6 loopback", ()),
    ("https://user@mytenant.accounts.ondemand.com", "userinfo", ()),
    (f"{IAS_ISSUER}@evil.com", "userinfo pointing elsewhere", ()),
    (f"{IAS_ISSUER}/path", "path", ()),
    (f"{IAS_ISSUER}/.well-known/x?", "path and empty query", ()),
    ("https://accounts.ondemand.com", "bare domain", ()),
    (f"{IAS_ISSUER}:8443", "port", ()),
    (f"{IAS_ISSUER}.", "trailing dot", ()),
    (f"{IAS_ISSUER}%2F@evil.com", "percent-encoding", ()),
    ("https://evil.com\\.accounts.ondemand.com", "backslash", ()),
    ("https://evil.com/.accounts.ondemand.com", "domain in the path", ()),
    (f"{IAS_ISSUER}\n", "control character", ()),
    ("mytenant.accounts.ondemand.com", "no scheme", ()),
    ("https:mytenant.accounts.ondemand.com", "no authority", ()),
    (f"{IAS_ISSUER}?", "empty query", fixed(
        "'?' and '#' with nothing after them pass the no-query/fragment check (urlsplit gives ''): the "
        "token causes a discovery fetch of '<tenant>/?/.well-known/...' and a 503 instead of a 401, "
        "on every request (a failed discovery is not remembered)")),
    (f"{IAS_ISSUER}#", "empty fragment", fixed("as '?': an empty fragment passes the check and is fetched")),
    ("https://[mytenant.accounts.ondemand.com", "unbalanced bracket", fixed(
        "urlsplit raises ValueError('Invalid IPv6 URL') out of _trusted_ias_issuer: an unsigned token "
        "turns into a 500")),
    (f" {IAS_ISSUER}", "leading space", fixed(
        "urlsplit strips the leading space, so the check passes and the discovery document is fetched "
        "before the issuer is refused; not remembered, so every such token costs one fetch")),
    ("HTTPS://MYTENANT.accounts.ondemand.com", "upper case", fixed(
        "the check lower-cases the host but the fetch uses the issuer as sent: one discovery fetch per "
        "token before the mismatch refuses it")),
)] + [pytest.param(issuer, id=f"SSRF-08 {name}") for issuer, name in (
    ("https://2130706433", "loopback as a decimal number"),
    ("https://0177.0.0.1", "loopback in octal"),
    ("https://0x7f.1", "loopback in hex, short form"),
    ("https://[::ffff:127.0.0.1]", "loopback IPv4-mapped in IPv6"),
    ("https://[::ffff:a9fe:a9fe]", "metadata address IPv4-mapped, in hex"),
    ("https://2852039166", "metadata address as a decimal number"),
)]


@pytest.mark.parametrize("issuer", ISSUERS)
def test_ias_issuer_refused_before_any_fetch(issuer: str, validator: TokenValidator,
                                             mocked: responses.RequestsMock) -> None:
    token = ias(iss=issuer, ias_iss=issuer)  # with app_tid, as a token of another tenant must have
    with pytest.raises(SecurityError) as info:
        validator.validate(token)
    assert_rejected(info.value, IssuerUntrusted, token)
    assert fetched(mocked) == []


DISCOVERY_DOCS = [pytest.param(doc, id=f"SSRF-05 {name}", marks=marks) for doc, name, marks in (
    ({"issuer": "https://evil.com", "jwks_uri": IAS_JWKS_URL}, "issuer of another host", ()),
    ({"issuer": IAS_ISSUER + "/", "jwks_uri": IAS_JWKS_URL}, "issuer with a trailing slash", ()),
    ({"issuer": OTHER_TENANT, "jwks_uri": IAS_JWKS_URL}, "issuer of another tenant", ()),
    ({"jwks_uri": IAS_JWKS_URL}, "no issuer", ()),
    ({"issuer": IAS_ISSUER, "jwks_uri": JKU_ATTACKER}, "jwks_uri on a foreign host", ()),
    ({"issuer": IAS_ISSUER, "jwks_uri": JKU_METADATA}, "jwks_uri on the metadata address", ()),
    ({"issuer": IAS_ISSUER, "jwks_uri": f"{IAS_ISSUER}.attacker.example/certs"}, "jwks_uri host extends ours",
     ()),
    ({"issuer": IAS_ISSUER, "jwks_uri": f"{IAS_ISSUER}@attacker.example/certs"}, "jwks_uri with userinfo",
     ()),
    ({"issuer": IAS_ISSUER, "jwks_uri": IAS_JWKS_URL.replace("https", "http")}, "jwks_uri over http", ()),
    ({"issuer": IAS_ISSUER, "jwks_uri": f"{IAS_ISSUER}:8443/oauth2/certs"}, "jwks_uri on another port", ()),
    ({"issuer": IAS_ISSUER, "jwks_uri": [IAS_JWKS_URL]}, "jwks_uri not a string", ()),
    ({"issuer": IAS_ISSUER}, "no jwks_uri", ()),
    ({"issuer": IAS_ISSUER, "jwks_uri": "https://[::1"}, "unparsable jwks_uri", fixed(
        "_same_origin calls urlsplit on the document's jwks_uri; 'https://[::1' raises ValueError out of "
        "jwks_uri_of (500 instead of 401)")),
)]


@pytest.mark.parametrize("doc", DISCOVERY_DOCS)
def test_discovery_document_refused(doc: dict[str, Any], validator: TokenValidator,
                                    mocked: responses.RequestsMock) -> None:
    mocked.replace(responses.GET, DISCOVERY_URL, json=doc)
    token = ias()
    with pytest.raises(SecurityError) as info:
        validator.validate(token)
    assert_rejected(info.value, IssuerUntrusted, token)
    assert fetched(mocked) == [DISCOVERY_URL]


def test_every_row_is_covered() -> None:
    ids = {p.id for p in [*TABLE, *FLOOD, *GREP]}
    covered = {m.group(0) for i in ids if (m := re.match(r"JWT-\d\d(?= )", i))}
    expected = {f"JWT-{n:02d}" for n in range(1, 37)}
    assert covered.isdisjoint(NOT_APPLICABLE), "a row is both tested and marked not applicable"
    assert all(reason.strip() for reason in NOT_APPLICABLE.values())
    assert sorted(expected - covered - NOT_APPLICABLE.keys()) == []
    assert sorted((covered | NOT_APPLICABLE.keys()) - expected) == []
    assert len(ids) == len([*TABLE, *FLOOD, *GREP]), "duplicate test ids"
