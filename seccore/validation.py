"""Validation of the user's JWT, issued by XSUAA or by SAP Cloud Identity Services (IAS).

Policy (``../shared/reference/btp-security.md`` §2.17), as data where it can be:

* RS256 only; keys only from URLs derived from the bindings, never from ``jku``/``x5u``/``jwk``.
* XSUAA: keys from ``https://<uaadomain>/token_keys?zid=<zid>``; ``kid`` required; audience as
  SAP's Java and Python libraries (client id or xsappname, entries cut at the first dot,
  derived from the scopes when ``aud`` is empty, the ``|`` suffix rule of broker clones);
  the required ``$XSAPPNAME`` scope.
* IAS: issuer (``ias_iss`` or ``iss``) equal to the binding ``url`` or one DNS label under a
  binding domain, checked before any fetch; keys from the issuer's discovery ``jwks_uri``;
  ``aud`` contains the binding client id; ``app_tid`` required when the issuer is not the
  binding url.
* ``exp``, ``iat``, ``iss``, ``sub`` required, NumericDates must be JSON numbers, 60 s leeway.
* Tokens that carry no user (client credentials, IAS app-to-app) or are not access/ID
  tokens (logout tokens, other ``typ``) are refused: the exchange needs a user token.

A validated token is cached by the SHA-256 of its text until it expires.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from cachetools import TLRUCache
from joserfc import jws
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry

from seccore.bindings import IasBinding, XsuaaBinding
from seccore.errors import (
    AudienceMismatch,
    IssuerUntrusted,
    ScopeMissing,
    SignatureInvalid,
    TokenExpired,
    TokenKindRejected,
    TokenMalformed,
    TokenMissing,
)
from seccore.jwks import JwksCache

__all__ = ["LEEWAY_SECONDS", "TokenValidator", "ValidatedToken"]

ALGORITHMS = ("RS256",)
LEEWAY_SECONDS = 60
REQUIRED_CLAIMS = ("exp", "iat", "iss", "sub")
#: Header ``typ`` values of access and ID tokens; anything else (logout+jwt, …) is refused.
ACCEPTED_TYP = frozenset({"", "jwt", "at+jwt"})
#: Larger than any real BTP token, and what gunicorn accepts in one header line.
MAX_TOKEN_BYTES = 8192
CACHE_SIZE = 10_000
_SAFE_ID = re.compile(r"[A-Za-z0-9._!|-]{1,128}")

_JWS_REGISTRY = JWSRegistry(algorithms=list(ALGORITHMS))
TokenKind = Literal["xsuaa", "ias"]


@dataclass(frozen=True)
class ValidatedToken:
    """A token whose signature, times, issuer, audience and kind were checked."""

    kind: TokenKind
    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    expires_at: float
    raw: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """A short, non-reversible id for logs and pages (never the token itself)."""
        return hashlib.sha256(self.raw.encode()).hexdigest()[:12]

    @property
    def scopes(self) -> list[str]:
        return _str_list(self.claims.get("scope"))

    @property
    def audiences(self) -> list[str]:
        return _str_list(self.claims.get("aud"))


class TokenValidator:
    """Validates user tokens against the bound XSUAA and/or IAS instance."""

    def __init__(self, *, jwks: JwksCache, xsuaa: XsuaaBinding | None = None,
                 ias: IasBinding | None = None, required_scope: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._jwks = jwks
        self._xsuaa = xsuaa
        self._ias = ias
        self._clock = clock
        self._required_scope = _expand_xsappname(required_scope, xsuaa)
        self._time_rules = JWTClaimsRegistry(now=lambda: int(self._clock()), leeway=LEEWAY_SECONDS)
        self._cache: TLRUCache[bytes, ValidatedToken] = TLRUCache(
            maxsize=CACHE_SIZE, ttu=lambda _k, v, _now: v.expires_at + LEEWAY_SECONDS, timer=clock)
        self._cache_lock = threading.Lock()

    @property
    def required_scope(self) -> str | None:
        return self._required_scope

    def validate(self, token: str | None) -> ValidatedToken:
        """Return the validated token, or raise a TokenError / ScopeMissing / KeysUnavailable."""
        if not token:
            raise TokenMissing("no bearer token was sent", step="validate")
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        with self._cache_lock:
            cached = self._cache.get(digest)
        if cached is None:
            cached = self._validate_uncached(token)
            with self._cache_lock:
                self._cache[digest] = cached
        self._check_scope(cached)
        return cached

    def _validate_uncached(self, token: str) -> ValidatedToken:
        obj = _parse(token)
        header = obj.headers()
        claims = _payload(obj.payload)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise TokenMalformed("the token header has no key id (kid)", step="validate")
        kind = _kind(claims)
        if kind == "xsuaa":
            binding = self._need(self._xsuaa, kind)
            key = self._xsuaa_key(binding, claims, kid)
        else:
            ias = self._need(self._ias, kind)
            key = self._ias_key(ias, claims, kid)
        try:
            if not jws.validate_compact(obj, key, registry=_JWS_REGISTRY):
                raise SignatureInvalid("the token's signature does not verify", step="validate")
        except JoseError as exc:
            raise TokenMalformed(f"the token header is not acceptable: {exc.error}", step="validate") from exc
        self._check_times(claims)
        if kind == "xsuaa":
            _check_xsuaa_audience(claims, self._need(self._xsuaa, kind))
        else:
            _check_ias_audience(claims, self._need(self._ias, kind))
        _check_user_token(kind, claims)
        return ValidatedToken(kind=kind, header=header, claims=claims,
                              expires_at=float(claims["exp"]), raw=token)

    def _need(self, binding: Any, kind: TokenKind) -> Any:
        if binding is not None:
            return binding
        other = "identity" if kind == "xsuaa" else "xsuaa"
        raise TokenKindRejected(
            f"this is an {kind.upper()} token, but this app has no '{_LABEL[kind]}' binding "
            f"and accepts only tokens of its '{other}' binding",
            f"bind the app to the {_LABEL[kind]} instance whose users should reach it, "
            "or log in through the identity service the app is bound to", step="validate")

    def _xsuaa_key(self, binding: XsuaaBinding, claims: Mapping[str, Any], kid: str) -> Any:
        zid = claims.get("zid")
        if not isinstance(zid, str) or not _SAFE_ID.fullmatch(zid):
            raise TokenMalformed("the XSUAA token has no valid zone id (zid)", step="validate")
        if binding.zone_id and zid != binding.zone_id:
            raise IssuerUntrusted(
                "the XSUAA token comes from another subaccount (its zid is not the zone of the "
                "bound xsuaa instance)", "log in through this subaccount's XSUAA", step="validate")
        url = f"https://{binding.uaadomain}/token_keys?zid={quote(zid, safe='')}"
        return self._jwks.get_key(url, kid, headers={"X-zid": zid}, tenant=zid)

    def _ias_key(self, binding: IasBinding, claims: Mapping[str, Any], kid: str) -> Any:
        issuer = _trusted_ias_issuer(claims, binding)
        headers = {"x-client_id": binding.client_id}
        for header, claim in (("x-app_tid", "app_tid"), ("x-azp", "azp")):
            value = claims.get(claim)
            if isinstance(value, str) and _SAFE_ID.fullmatch(value):
                headers[header] = value
        jwks_uri = self._jwks.jwks_uri_of(issuer)
        return self._jwks.get_key(jwks_uri, kid, headers=headers, tenant=headers.get("x-app_tid", ""))

    def _check_times(self, claims: dict[str, Any]) -> None:
        missing = [c for c in REQUIRED_CLAIMS if c not in claims]
        if missing:
            raise TokenMalformed(f"the token lacks required claims: {', '.join(missing)}", step="validate")
        try:
            self._time_rules.validate(claims)
        except ExpiredTokenError as exc:
            raise TokenExpired("the token has expired", step="validate") from exc
        except (InvalidClaimError, MissingClaimError) as exc:
            raise TokenMalformed(f"the token's claims are not acceptable: {exc.description}",
                                 step="validate") from exc

    def _check_scope(self, token: ValidatedToken) -> None:
        scope = self._required_scope
        if token.kind == "xsuaa" and scope and scope not in token.scopes:
            raise ScopeMissing(
                f"the XSUAA token lacks the scope {scope!r} that this app requires",
                "assign the user a role collection that contains the role template of "
                "xs-security.json (it grants this scope), then log in again", step="validate")


_LABEL: dict[str, str] = {"xsuaa": "xsuaa", "ias": "identity"}


def _parse(token: str) -> jws.CompactSignature:
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenMalformed(f"the token is larger than {MAX_TOKEN_BYTES} bytes", step="validate")
    if not token.isascii() or token.count(".") != 2:
        raise TokenMalformed("the token is not a signed JWT (three base64url parts)", step="validate")
    try:
        obj = jws.extract_compact(token.encode("ascii"))
        alg = obj.headers().get("alg")
    except (JoseError, ValueError, TypeError, RecursionError) as exc:
        raise TokenMalformed("the token is not a well-formed signed JWT", step="validate") from exc
    if alg not in ALGORITHMS:
        raise TokenMalformed(f"the token's algorithm {str(alg)[:16]!r} is not accepted; only RS256",
                             step="validate")
    typ = obj.headers().get("typ", "")
    if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYP:
        raise TokenKindRejected(f"the token's type {str(typ)[:32]!r} is not an access or ID token",
                                step="validate")
    return obj


def _payload(payload: bytes) -> dict[str, Any]:
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise TokenMalformed("the token's payload is not JSON", step="validate") from exc
    if not isinstance(claims, dict):
        raise TokenMalformed("the token's payload is not a JSON object", step="validate")
    return claims


def _kind(claims: Mapping[str, Any]) -> TokenKind:
    """XSUAA tokens carry ``ext_attr.enhancer: XSUAA`` (or cid + zid); all others are IAS."""
    ext = claims.get("ext_attr")
    if isinstance(ext, dict) and ext.get("enhancer") == "XSUAA":
        return "xsuaa"
    return "xsuaa" if "cid" in claims and "zid" in claims else "ias"


def _trusted_ias_issuer(claims: Mapping[str, Any], binding: IasBinding) -> str:
    issuer = claims.get("ias_iss") or claims.get("iss")
    untrusted = IssuerUntrusted(
        f"the token's issuer {str(issuer)[:100]!r} is not the bound IAS tenant "
        f"({binding.url}) nor a tenant under its domains ({', '.join(binding.domains)})",
        "log in through the IAS tenant of the bound identity instance", step="validate")
    if not isinstance(issuer, str) or len(issuer) > 256:
        raise untrusted
    parts = urlsplit(issuer)
    if (parts.scheme != "https" or parts.path not in ("", "/") or parts.query or parts.fragment
            or "@" in parts.netloc or "%" in issuer or not issuer.isprintable()):
        raise untrusted
    issuer = issuer.rstrip("/")
    netloc = parts.netloc.lower()
    if issuer != binding.url and not any(_one_label_under(netloc, d) for d in binding.domains):
        raise untrusted
    if issuer != binding.url and not claims.get("app_tid"):
        raise IssuerUntrusted("an IAS token from another tenant than the bound url must carry app_tid",
                              step="validate")
    return issuer


def _one_label_under(netloc: str, domain: str) -> bool:
    label, dot, rest = netloc.partition(".")
    return bool(dot) and rest == domain and re.fullmatch(r"[a-z0-9-]{1,63}", label) is not None


def _check_xsuaa_audience(claims: Mapping[str, Any], binding: XsuaaBinding) -> None:
    trusted = {binding.client_id, binding.xsappname}
    aud = _str_list(claims.get("aud"))
    if claims.get("cid") == binding.client_id:  # SAP's documented shortcut
        return
    derived = {a.split(".", 1)[0] for a in aud}
    if not aud:
        derived = {s.split(".", 1)[0] for s in _str_list(claims.get("scope"))}
        derived.add(str(claims.get("cid", "")))
    if trusted & derived:
        return
    if any("!b" in t and a.endswith("|" + t) for t in trusted for a in aud):
        return
    raise AudienceMismatch(
        f"the XSUAA token is not issued for this app: its audience {sorted(aud)[:5]} names neither "
        f"the client {binding.client_id!r} nor the xsappname {binding.xsappname!r}",
        "send a token of this app's own xsuaa instance (a token exchanged for CPI or issued to "
        "another app is not accepted here)", step="validate")


def _check_ias_audience(claims: Mapping[str, Any], binding: IasBinding) -> None:
    aud = _str_list(claims.get("aud"))
    if binding.client_id not in aud:
        raise AudienceMismatch(
            f"the IAS token is not issued for this app: its audience lacks the client "
            f"{binding.client_id!r} of the bound identity instance",
            "log in through the IAS application of this app's identity instance", step="validate")


def _check_user_token(kind: TokenKind, claims: Mapping[str, Any]) -> None:
    if claims.get("grant_type") == "client_credentials" or (kind == "xsuaa" and "origin" not in claims):
        raise TokenKindRejected(
            "this is a technical (client credentials) token; the exchange needs a user's token",
            "call the app with the token of a logged-in user", step="validate")
    if kind == "ias" and (claims.get("sap_id_type") == "app" or "events" in claims):
        raise TokenKindRejected("this IAS token carries no user (app-to-app or logout token)",
                                "call the app with the ID token of a logged-in user", step="validate")


def _str_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _expand_xsappname(scope: str | None, xsuaa: XsuaaBinding | None) -> str | None:
    if scope and scope.startswith("$XSAPPNAME.") and xsuaa is not None:
        return xsuaa.xsappname + scope[len("$XSAPPNAME"):]
    return scope
