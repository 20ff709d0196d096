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

A validated token is cached by its text until it expires.

The JWS itself is read in ``seccore.compact`` (joserfc's decoder, header registry and RS256
algorithm). The time claims are checked by a few lines here rather than joserfc's claims
registry, which costs half an RSA verify per token (bench/README.md).
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import orjson

from seccore.bindings import IasBinding, XsuaaBinding
from seccore.compact import parse_compact
from seccore.errors import (
    AudienceMismatch,
    IssuerUntrusted,
    ScopeMissing,
    TokenExpired,
    TokenKindRejected,
    TokenMalformed,
    TokenMissing,
)
from seccore.jwks import JwksCache

__all__ = ["LEEWAY_SECONDS", "TokenValidator", "ValidatedToken", "fingerprint"]

LEEWAY_SECONDS = 60
REQUIRED_CLAIMS = ("exp", "iat", "iss", "sub")
#: Validated tokens kept (~3 KiB each): 2,000 is ~6 MiB per worker.
CACHE_SIZE = 2000
MAX_NUMERIC_DATE = 2**53  # exact in a float; far beyond any real expiry
_SAFE_ID = re.compile(r"[A-Za-z0-9._!|-]{1,128}")
#: What an IAS issuer URL may contain at all: https://host[:port][/], lower case.
_ISSUER_CHARS = re.compile(r"https://[a-z0-9.-]+(:[0-9]{1,5})?/?")

TokenKind = Literal["xsuaa", "ias"]


def fingerprint(token: str) -> str:
    """A short, non-reversible id of a token for logs and pages (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class ValidatedToken:
    """A token whose signature, times, issuer, audience and kind were checked.

    The claims are kept as the payload's JSON bytes and parsed on access: a cache of
    thousands of nested claim dicts would make every garbage collection walk them, which
    costs more per fresh token than the parse does (bench/README.md).
    """

    kind: TokenKind
    header: Mapping[str, Any]
    payload: bytes = field(repr=False)
    expires_at: float
    raw: str = field(repr=False)

    @property
    def claims(self) -> dict[str, Any]:
        """The decoded claims; a new dict on each access, so no caller can alter another's."""
        return orjson.loads(self.payload)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw)

    @property
    def scopes(self) -> list[str]:
        return _str_list(self.claims.get("scope"))

    def __repr__(self) -> str:
        return f"ValidatedToken(kind={self.kind!r}, fingerprint={self.fingerprint!r})"


class TokenValidator:
    """Validates user tokens against the bound XSUAA and/or IAS instance."""

    def __init__(self, *, jwks: JwksCache, xsuaa: XsuaaBinding | None = None,
                 ias: IasBinding | None = None, required_scope: str | None = None,
                 clock: Callable[[], float] = time.time, cache_size: int = CACHE_SIZE) -> None:
        self._jwks = jwks
        self._xsuaa = xsuaa
        self._ias = ias
        self._clock = clock
        self._required_scope = _expand_xsappname(required_scope, xsuaa)
        # Validated tokens by their text, oldest first; bounded, expiry checked on every hit.
        self._cache: dict[str, ValidatedToken] = {}
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._key_urls: dict[str, str] = {}
        self._issuers: dict[str, str] = {}

    def validate(self, token: str | None) -> ValidatedToken:
        """Return the validated token, or raise a TokenError / ScopeMissing / KeysUnavailable."""
        if not token:
            raise TokenMissing("no bearer token was sent", step="validate")
        cached = self._cache.get(token)  # a dict read is atomic: no lock on the hit path
        if cached is None or self._clock() >= cached.expires_at + LEEWAY_SECONDS:
            cached = self._validate_uncached(token)
            self._remember(token, cached)
        return cached

    def _remember(self, token: str, validated: ValidatedToken) -> None:
        with self._cache_lock:
            self._cache.pop(token, None)
            while len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]
            self._cache[token] = validated

    def _validate_uncached(self, token: str) -> ValidatedToken:
        compact = parse_compact(token)
        claims = _payload(compact.payload)
        kid = compact.kid
        kind = _kind(claims)
        if kind == "xsuaa":
            binding = self._need(self._xsuaa, kind)
            key = self._xsuaa_key(binding, claims, kid)
        else:
            ias = self._need(self._ias, kind)
            key = self._ias_key(ias, claims, kid)
        compact.check_signature(key)
        _check_times(claims, self._clock())
        if kind == "xsuaa":
            _check_xsuaa_audience(claims, self._need(self._xsuaa, kind))
        else:
            _check_ias_audience(claims, self._need(self._ias, kind))
        _check_user_token(kind, claims)
        validated = ValidatedToken(kind=kind, header=compact.header, payload=compact.payload,
                                   expires_at=float(claims["exp"]), raw=token)
        self._check_scope(kind, claims)  # before caching: a cached token has the scope
        return validated

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
        if zid != binding.zone_id:
            raise IssuerUntrusted(
                "the XSUAA token comes from another subaccount (its zid is not the zone of the "
                "bound xsuaa instance)", "log in through this subaccount's XSUAA", step="validate")
        url = self._key_urls.get(zid)
        if url is None:
            url = f"https://{binding.uaadomain}/token_keys?zid={quote(zid, safe='')}"
            if len(self._key_urls) < 1024:  # one per zone; only the bound zone in dedicated mode
                self._key_urls[zid] = url
        return self._jwks.get_key(url, kid, headers={"X-zid": zid}, tenant=zid, pinned=True)

    def _ias_key(self, binding: IasBinding, claims: Mapping[str, Any], kid: str) -> Any:
        raw_issuer = claims.get("ias_iss") or claims.get("iss")
        issuer = self._issuers.get(raw_issuer) if isinstance(raw_issuer, str) else None
        if issuer is None:
            issuer = _trusted_ias_issuer(raw_issuer, binding)
            if len(self._issuers) < 64:  # trusted issuers only; a handful per binding
                self._issuers[raw_issuer] = issuer
        if issuer != binding.url and not claims.get("app_tid"):
            raise IssuerUntrusted("an IAS token from another tenant than the bound url must carry app_tid",
                                  step="validate")
        if binding.app_tid and claims.get("app_tid", binding.app_tid) != binding.app_tid:
            raise IssuerUntrusted(
                "the IAS token belongs to another subaccount (its app_tid is not the bound tenant)",
                "log in through this subaccount's application", step="validate")
        bound = issuer == binding.url
        jwks_uri = self._jwks.jwks_uri_of(issuer, bound=bound)
        # One key set per bound tenant: unverified claims never open new sets.
        return self._jwks.get_key(jwks_uri, kid, headers=lambda: _ias_fetch_headers(binding, claims),
                                  tenant=binding.app_tid or "", pinned=bound)

    def _check_scope(self, kind: TokenKind, claims: Mapping[str, Any]) -> None:
        scope = self._required_scope
        if scope and kind == "xsuaa" and scope not in _str_list(claims.get("scope")):
            raise ScopeMissing(
                f"the XSUAA token lacks the scope {scope!r} that this app requires",
                "assign the user a role collection that contains the role template of "
                "xs-security.json (it grants this scope), then log in again", step="validate")


_LABEL: dict[str, str] = {"xsuaa": "xsuaa", "ias": "identity"}


def _check_times(claims: Mapping[str, Any], now: float) -> None:
    """exp, iat (and nbf) are JSON numbers (RFC 7519 §2); 60 s leeway both ways."""
    missing = [c for c in REQUIRED_CLAIMS if c not in claims]
    if missing:
        raise TokenMalformed(f"the token lacks required claims: {', '.join(missing)}", step="validate")
    exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf", 0)
    if not (_numeric_date(exp) and _numeric_date(iat) and _numeric_date(nbf)):
        raise TokenMalformed("the token's exp, iat or nbf is not a number", step="validate")
    if exp <= now - LEEWAY_SECONDS:
        raise TokenExpired("the token has expired", step="validate")
    if iat > now + LEEWAY_SECONDS or nbf > now + LEEWAY_SECONDS:
        raise TokenMalformed("the token is not valid yet (iat or nbf in the future)", step="validate")
    if not isinstance(claims["iss"], str) or not isinstance(claims["sub"], str):
        raise TokenMalformed("the token's iss or sub is not a string", step="validate")
    aud = claims.get("aud", "")
    if not isinstance(aud, str) and not (isinstance(aud, list) and all(isinstance(a, str) for a in aud)):
        raise TokenMalformed("the token's aud is neither a string nor a list of strings", step="validate")


def _numeric_date(value: object) -> bool:
    # bool is an int in Python, NaN/inf compare false, and an int beyond a float's range
    # would overflow later: none of them is a usable NumericDate.
    if type(value) is int:
        return -MAX_NUMERIC_DATE < value < MAX_NUMERIC_DATE
    return type(value) is float and math.isfinite(value)


def _payload(payload: bytes) -> dict[str, Any]:
    try:
        # orjson takes UTF-8 only (no BOM, no UTF-16/32, no lone surrogates), no NaN or
        # infinity, nesting up to 1024, and the last of duplicate names, as JSON.parse does.
        claims = orjson.loads(payload)
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


def _ias_fetch_headers(binding: IasBinding, claims: Mapping[str, Any]) -> dict[str, str]:
    """What SAP's libraries send to the IAS key endpoint (it may answer per tenant)."""
    headers = {"x-client_id": binding.client_id}
    for header, claim in (("x-app_tid", "app_tid"), ("x-azp", "azp")):
        value = claims.get(claim)
        if isinstance(value, str) and _SAFE_ID.fullmatch(value):
            headers[header] = value
    return headers


def _trusted_ias_issuer(issuer: object, binding: IasBinding) -> str:
    """``issuer`` if it is the bound tenant or one label under a bound domain; else raise."""
    untrusted = IssuerUntrusted(
        f"the token's issuer {str(issuer)[:100]!r} is not the bound IAS tenant "
        f"({binding.url}) nor a tenant under its domains ({', '.join(binding.domains)})",
        "log in through the IAS tenant of the bound identity instance", step="validate")
    if not isinstance(issuer, str) or len(issuer) > 256 or not _ISSUER_CHARS.fullmatch(issuer):
        raise untrusted  # also refuses "?", "#", "%", "@", whitespace and upper case outright
    try:
        parts = urlsplit(issuer)
    except ValueError:
        raise untrusted from None
    if parts.scheme != "https" or parts.path not in ("", "/"):
        raise untrusted
    issuer = issuer.rstrip("/")
    netloc = parts.netloc.lower()
    if issuer != binding.url and not any(_one_label_under(netloc, d) for d in binding.domains):
        raise untrusted
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
