"""Signing keys of the identity services, fetched only from URLs derived from the bindings.

``JwksCache`` keeps one key set per (JWKS URL, tenant). It refetches a set when it is older
than ``ttl`` or when a token names an unknown ``kid`` (at most once per ``cooldown``, so a
flood of random kids cannot turn into a flood of fetches), and keeps serving the keys it
has when a refetch fails (an outage of the key endpoint must not log everybody out).
Fetches are single-flight per key set. Only RSA signing keys of at least 2048 bits are kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from joserfc.util import urlsafe_b64decode

from seccore.errors import IssuerUntrusted, KeysUnavailable, SignatureInvalid
from seccore.outbound import Timeouts, read_capped

__all__ = ["JwksCache"]

log = logging.getLogger(__name__)

MIN_RSA_BITS = 2048
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_KEY_SETS = 64
Headers = Mapping[str, str] | Callable[[], Mapping[str, str]] | None


@dataclass
class _KeySet:
    keys: dict[str, RSAKey] = field(default_factory=dict)
    fetched_at: float = float("-inf")  # last successful fetch
    tried_at: float = float("-inf")  # last attempt, successful or not
    missed_at: float = float("-inf")  # last refetch caused by an unknown kid
    generation: int = 0  # completed attempts; tells a waiting thread that a fetch happened
    pinned: bool = False  # a set of the bindings themselves: never evicted by others
    lock: threading.Lock = field(default_factory=threading.Lock)


class JwksCache:
    """Key sets by URL, with TTL, kid-miss refetch under a cooldown, and stale-on-error."""

    def __init__(self, session: requests.Session, *, timeouts: Timeouts = Timeouts(),
                 ttl: float = 900.0, cooldown: float = 30.0, stale_grace: float = 6 * 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._session = session
        self._timeouts = timeouts
        self._ttl = ttl
        self._cooldown = cooldown
        self._stale_grace = stale_grace
        self._clock = clock
        self._sets: dict[tuple[str, str], _KeySet] = {}
        self._issuers: dict[str, tuple[str, float]] = {}
        self._bound_issuers: set[str] = set()
        self._foreign_admitted = float("-inf")
        self._failed: dict[str, float] = {}  # discovery could not be fetched
        self._refused: dict[str, float] = {}  # discovery named another issuer or key host
        self._lock = threading.Lock()

    def get_key(self, url: str, kid: str, headers: Headers = None, tenant: str = "",
                pinned: bool = False) -> RSAKey:
        """The key ``kid`` of the set at ``url``; fetch or refetch as the rules allow.

        ``headers`` (or a function making them, called only when a fetch happens) go with
        the fetch. A ``pinned`` set (the bound tenant's own) is never evicted for others.
        """
        entry = self._entry((url, tenant), pinned)
        key = entry.keys.get(kid)
        if key is not None and self._clock() - entry.fetched_at < self._ttl:
            return key
        # Stale set or unknown kid: refetch, at most once per cooldown each; a fetch already in
        # flight is joined, not repeated. An unknown kid counts from the last unknown kid, not
        # from the last routine fetch: a key rotated in just after one is found at once, and a
        # flood of random kids still costs one fetch per cooldown.
        seen, now = entry.generation, self._clock()
        unknown = key is None and bool(entry.keys)  # a kid the known set lacks (not a cold start)
        last = entry.missed_at if unknown else entry.tried_at
        if entry.lock.locked() or now - last >= self._cooldown:
            if unknown:
                entry.missed_at = now
            self._refresh(entry, url, (headers() if callable(headers) else headers) or {}, seen=seen)
        key = entry.keys.get(kid)
        if key is not None and self._clock() - entry.fetched_at < self._ttl + self._stale_grace:
            return key
        if key is not None or not entry.keys:
            raise KeysUnavailable("the signing keys of the identity service could not be fetched",
                                  step="validate")
        raise SignatureInvalid(f"the token names a signing key (kid) that the identity service "
                               f"does not publish: {kid[:64]!r}", step="validate")

    def jwks_uri_of(self, issuer: str, headers: Mapping[str, str] | None = None, *,
                    bound: bool = False) -> str:
        """The ``jwks_uri`` from the issuer's OIDC discovery document (cached for ``ttl``).

        The document's ``issuer`` must equal ``issuer`` and its ``jwks_uri`` must be https on
        the issuer's own host (OIDC Discovery §4.3; no key URL on a foreign host). An issuer
        that is not the ``bound`` tenant and was never seen may cause a fetch at most once per
        cooldown in all: forged tenant names must not turn into a stream of outbound calls.
        """
        cached = self._issuers.get(issuer)
        now = self._clock()
        if cached is None and not bound:
            with self._lock:
                if now - self._foreign_admitted < self._cooldown:
                    raise KeysUnavailable(f"the keys of the IAS tenant {issuer} are not known yet and "
                                          "another unknown tenant was looked up moments ago",
                                          step="validate")
                self._foreign_admitted = now
        if cached and (now - cached[1] < self._ttl or now - self._failed.get(issuer, -1e18) < self._cooldown):
            return cached[0]  # fresh, or kept through an outage that failed recently
        if now - self._refused.get(issuer, -1e18) < self._cooldown:
            raise IssuerUntrusted(f"the discovery document of {issuer} names another issuer or "
                                  "a key URL on another host", step="validate")
        if not cached and now - self._failed.get(issuer, -1e18) < self._cooldown:
            raise KeysUnavailable(f"the OIDC discovery document of {issuer} could not be fetched "
                                  "(failed recently; retried after a pause)", step="validate")
        try:
            doc = self._get_json(f"{issuer}/.well-known/openid-configuration", headers or {})
        except _FetchFailed as exc:
            self._remember(self._failed, issuer)
            if cached:  # keep the known jwks_uri through an outage
                return cached[0]
            raise KeysUnavailable(f"the OIDC discovery document of {issuer} could not be fetched: "
                                  f"{exc}", step="validate") from exc
        uri = doc.get("jwks_uri")
        if doc.get("issuer") != issuer or not isinstance(uri, str) or not _same_origin(uri, issuer):
            self._remember(self._refused, issuer)
            raise IssuerUntrusted(f"the discovery document of {issuer} names another issuer or "
                                  "a key URL on another host", step="validate")
        with self._lock:
            if not bound:
                _evict_oldest(self._issuers, keep=self._bound_issuers)
            else:
                self._bound_issuers.add(issuer)
            self._issuers[issuer] = (uri, self._clock())
            self._failed.pop(issuer, None)
        return uri

    def _remember(self, outcomes: dict[str, float], issuer: str) -> None:
        """A failed or refused discovery is not repeated for ``cooldown``: no fetch per request."""
        with self._lock:
            while len(outcomes) >= MAX_KEY_SETS:
                del outcomes[next(iter(outcomes))]
            outcomes[issuer] = self._clock()

    def _entry(self, cache_key: tuple[str, str], pinned: bool) -> _KeySet:
        entry = self._sets.get(cache_key)  # a dict read is atomic: no lock on the hot path
        if entry is not None:
            return entry
        with self._lock:
            entry = self._sets.get(cache_key)
            if entry is None:
                pinned_keys = {k for k, v in self._sets.items() if v.pinned}
                _evict_oldest(self._sets, keep=pinned_keys)
                entry = self._sets[cache_key] = _KeySet(pinned=pinned)
            return entry

    def _refresh(self, entry: _KeySet, url: str, headers: Mapping[str, str], seen: int) -> None:
        with entry.lock:
            if entry.generation != seen:  # another thread fetched while we waited
                return
            entry.tried_at = self._clock()
            try:
                keys = _parse_keys(self._get_json(url, headers))
            except _FetchFailed as exc:
                log.warning("JWKS fetch failed; keeping %d cached keys", len(entry.keys),
                            extra={"jwks_url": url, "reason": str(exc)})
                return
            finally:
                entry.generation += 1
            entry.keys = keys
            entry.fetched_at = self._clock()

    def _get_json(self, url: str, headers: Mapping[str, str]) -> dict[str, Any]:
        try:
            with self._session.get(url, headers=dict(headers), timeout=self._timeouts.as_tuple(),
                                   allow_redirects=False, stream=True) as response:
                body, truncated = read_capped(response, MAX_DOCUMENT_BYTES)
                status = response.status_code
        except requests.RequestException as exc:
            raise _FetchFailed(type(exc).__name__) from exc
        if status != 200 or truncated:
            raise _FetchFailed(f"HTTP {status}" if status != 200 else "document too large")
        try:
            doc = requests.compat.json.loads(body)
        except ValueError as exc:
            raise _FetchFailed("not JSON") from exc
        if not isinstance(doc, dict):
            raise _FetchFailed("not a JSON object")
        return doc


class _FetchFailed(Exception):
    pass


def _evict_oldest(cache: dict[Any, Any], keep: set[Any]) -> None:
    """Make room for one more entry, oldest first, never evicting ``keep``."""
    evictable = [k for k in cache if k not in keep]
    while len(cache) >= MAX_KEY_SETS and evictable:
        del cache[evictable.pop(0)]


def _parse_keys(doc: Mapping[str, Any]) -> dict[str, RSAKey]:
    raw_keys = doc.get("keys")
    if not isinstance(raw_keys, list):
        raise _FetchFailed("no 'keys' list")
    keys: dict[str, RSAKey] = {}
    for raw in raw_keys:
        key = _rsa_signing_key(raw)
        if key is not None:
            keys[raw["kid"]] = key
    if not keys:
        raise _FetchFailed("no usable RSA signing key")
    return keys


def _rsa_signing_key(raw: object) -> RSAKey | None:
    if not isinstance(raw, dict) or raw.get("kty") != "RSA" or not isinstance(raw.get("kid"), str):
        return None
    if raw.get("use", "sig") != "sig" or raw.get("alg", "RS256") != "RS256":
        return None
    n, e = raw.get("n"), raw.get("e")
    if not isinstance(n, str) or not isinstance(e, str) or _modulus_bits(n) < MIN_RSA_BITS:
        return None  # unreadable or weak: skip it, keep the others
    try:
        # Only the public parameters: a JWKS entry with private parts is never trusted as such.
        return RSAKey.import_key({"kty": "RSA", "n": n, "e": e})
    except (JoseError, ValueError, TypeError) as exc:
        log.warning("skipping an unreadable JWKS key", extra={"kid": raw["kid"][:64], "reason": repr(exc)})
        return None


def _modulus_bits(n: str) -> int:
    try:
        return int.from_bytes(urlsafe_b64decode(n.encode("ascii")), "big").bit_length()
    except (ValueError, UnicodeError):
        return 0


def _same_origin(url: str, issuer: str) -> bool:
    try:
        a, b = urlsplit(url), urlsplit(issuer)
    except ValueError:
        return False
    return a.scheme == "https" and a.netloc.lower() == b.netloc.lower()
